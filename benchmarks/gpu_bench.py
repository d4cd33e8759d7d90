"""GPU figures (only where CUDA is): ours vs a plain diffusers pipeline on the same GPU.

sd15_unet_its / sd15_e2e_s    SD 1.5 512², 25 steps (fp16 random weights, real architecture)
sdxl_e2e_s                    SDXL 1024², 25 steps
controlnet_overhead           + one ControlNet, per-step cost ratio - 1
live_frame_ms                 1 step 512² (the live preset's shape; SDXL-Turbo architecture)
peak_vram_gib                 the SD 1.5 job's peak allocation
Each "ours" figure has its "plain" twin measured side by side in the same process.
"""

from __future__ import annotations

from .common import Figure, side_by_side


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _plain_pipeline(folder, family):
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    pipe = cls.from_pretrained(folder, torch_dtype=torch.float16).to("cuda")
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _synced(fn):
    import torch

    def run():
        fn()
        torch.cuda.synchronize()
    return run


def _pair(family: str, size: int, steps: int, repeats: int, *, label: str, key: str) -> list[Figure]:
    import torch

    from brushwork import Recipe, Studio

    from .realsize import realsize_pipeline

    folder = realsize_pipeline(family)
    plain = _plain_pipeline(folder, family)
    studio = Studio(device="cuda")
    recipe = Recipe(prompt="a red house", model=str(folder), steps=steps, width=size, height=size,
                    seed=1, sampler="Euler", cfg=7.0)

    def run_plain():
        plain("a red house", num_inference_steps=steps, width=size, height=size, guidance_scale=7.0,
              generator=torch.Generator("cpu").manual_seed(1))

    def run_ours():
        studio.generate(recipe)

    t_plain, t_ours = side_by_side(_synced(run_plain), _synced(run_ours), repeats=repeats)
    torch.cuda.reset_peak_memory_stats()
    _synced(run_ours)()
    peak = torch.cuda.max_memory_allocated() / 1024**3
    figs = [Figure(f"{key}_e2e_s", t_ours, "s", note=f"{label}; plain diffusers {t_plain:.3f} s",
                   detail={"plain_s": t_plain, "speedup": t_plain / t_ours}),
            Figure(f"{key}_speedup", t_plain / t_ours, "x", ">= 1.0", note=label)]
    if family == "sd15":
        figs.append(Figure("peak_vram_gib", peak, "GiB", note=label))
    return figs  # plain, studio and their closures die here; the caller empties the CUDA cache


def _unet_its(repeats: int) -> Figure:
    import time

    import torch
    from diffusers import UNet2DConditionModel

    from brushwork.engine.fastpath import FastPath, tune_module

    from .realsize import realsize_pipeline

    folder = realsize_pipeline("sd15")
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float16).to("cuda")
    tune_module(unet, FastPath.for_device("cuda"))
    x = torch.randn(2, 4, 64, 64, device="cuda", dtype=torch.float16)
    e = torch.randn(2, 77, 768, device="cuda", dtype=torch.float16)
    t = torch.tensor([500], device="cuda")
    with torch.inference_mode():
        for _ in range(5):
            unet(x, t, encoder_hidden_states=e)
        torch.cuda.synchronize()
        start = time.perf_counter()
        n = 25 * repeats
        for _ in range(n):
            unet(x, t, encoder_hidden_states=e)
        torch.cuda.synchronize()
    its = n / (time.perf_counter() - start)
    return Figure("sd15_unet_its", its, "it/s", ">= 100", note="512², CFG batch 2, fp16 (anchor: stable-fast 104.6 on H100)")


def run(quick: bool = False, only=None) -> list[Figure]:
    if not _cuda():
        raise ModuleNotFoundError("no CUDA device here: GPU figures need the GPU machine")
    import torch

    reps = 2 if quick else 5
    figs = [_unet_its(reps)]
    figs += _pair("sd15", 512, 25, reps, label="SD 1.5 512² 25 steps", key="sd15")
    torch.cuda.empty_cache()
    figs += _pair("sd15", 512, 1, reps * 4, label="1 step 512² (live frame)", key="live_frame")
    torch.cuda.empty_cache()
    if not quick:
        figs += _pair("sdxl", 1024, 25, 3, label="SDXL 1024² 25 steps", key="sdxl")
    return [f for f in figs if not only or f.key in only]
