"""GPU figures: our engine vs a plain diffusers pipeline on the same GPU (issue 6).

Every "ours" figure is measured interleaved with its plain twin (``common.side_by_side``, medians)
in one process; weights are random, architectures the published ones (benchmarks/realsize.py).
On CUDA: fp16, SD 1.5 512² / SDXL 1024², 25 steps, Euler, CFG 7. Keys:

sd15_unet_its              UNet steps/s at 512² (latent 64², CFG batch 2): the Studio's own tuned
                           UNet (FastPath.for_device: fp16, channels_last, fused QKV, SDPA).
                           detail plain_its: the same UNet as diffusers loads it in fp16. Goal >= 100.
sd15_e2e_s, sd15_speedup   one SD 1.5 512² 25-step job through our Studio vs StableDiffusionPipeline
                           fp16 (same seed, same CPU noise; detail: mean pixel difference).
preview_overhead_cuda_ratio  our SD 1.5 job with a preview every step / without (goal <= 1.03).
controlnet_overhead_ratio  our SD 1.5 job with one depth ControlNet / without, per job (goal <= 1.40).
                           detail plain_ratio: StableDiffusionControlNetPipeline / StableDiffusionPipeline.
live_frame_ms, live_frame_speedup  SD-Turbo architecture (SD 2.1: a "sd2" folder through the Studio),
                           1 step, 512², CFG 0 (goal <= 25 ms) vs the plain pipeline.
sdxl_e2e_s, sdxl_speedup   SDXL 1024² 25 steps vs StableDiffusionXLPipeline fp16.
<job>_peak_vram_gib        for job in sd15, controlnet, live_frame, sdxl: weights of the models the
                           job uses + the job's peak allocation above what was allocated before it
                           (torch.cuda.max_memory_allocated). detail: plain_gib and ratio.
The 4096² seamless texture (tiled path, real SD 1.5, peak ratio vs 1024²) is
large_texture_bench's ``large_texture_peak_memory_ratio``.

``smoke(tiny_root, work)`` runs every figure's code on the CPU with the tiny test models (and a
tiny SD-Turbo built from the same configs, benchmarks/realsize.SHRINK): the GPU run differs only
by the Plan (device, dtype, sizes, steps, models). Peak memory on a CPU is the process RSS sampled
by a thread (a rough figure; the smoke only proves the code runs).
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .common import Figure, side_by_side

PROMPT, SEED = "a red house on a hill", 1
GROUPS = {
    "sd15": ("sd15_unet_its", "sd15_e2e_s", "sd15_speedup", "sd15_peak_vram_gib", "preview_overhead_cuda_ratio",
             "controlnet_overhead_ratio", "controlnet_peak_vram_gib"),
    "live": ("live_frame_ms", "live_frame_speedup", "live_frame_peak_vram_gib"),
    "sdxl": ("sdxl_e2e_s", "sdxl_speedup", "sdxl_peak_vram_gib"),
}
KEYS = tuple(k for keys in GROUPS.values() for k in keys)


@dataclass
class Plan:
    """Everything that differs between the GPU run and the CPU smoke run."""

    device: str
    dtype: object  # torch.dtype
    size: int  # SD 1.5 and live frame side
    steps: int
    xl_size: int
    repeats: int
    xl_repeats: int
    live_repeats: int
    unet_iters: int  # UNet calls per timed run
    models: dict[str, Callable[[], Path]]  # sd15, sdxl, controlnet, turbo -> folder (built on demand)
    work: Path  # scratch: the control picture
    _built: dict = field(default_factory=dict)

    def model(self, name: str) -> Path:
        if name not in self._built:
            self._built[name] = self.models[name]()
        return self._built[name]


def gpu_plan(quick: bool) -> Plan:
    import tempfile

    import torch

    from .realsize import realsize_controlnet, realsize_pipeline

    return Plan(device="cuda", dtype=torch.float16, size=512, steps=25, xl_size=1024,
                repeats=3 if quick else 5, xl_repeats=2 if quick else 3, live_repeats=10 if quick else 20,
                unet_iters=25,
                models={"sd15": lambda: realsize_pipeline("sd15", device="cuda"),
                        "sdxl": lambda: realsize_pipeline("sdxl", device="cuda"),
                        "controlnet": lambda: realsize_controlnet("sd15", device="cuda"),
                        "turbo": lambda: realsize_pipeline("sd-turbo", device="cuda")},
                work=Path(tempfile.mkdtemp(prefix="gpu-bench-")))


def tiny_plan(tiny_root: Path, work: Path) -> Plan:
    import torch
    from brushwork.testing.tiny import load_tiny_set

    from .realsize import SHRINK, realsize_pipeline

    tiny = load_tiny_set(tiny_root)
    return Plan(device="cpu", dtype=torch.float32, size=64, steps=2, xl_size=64, repeats=1, xl_repeats=1,
                live_repeats=1, unet_iters=2,
                models={"sd15": lambda: tiny.sd15, "sdxl": lambda: tiny.sdxl,
                        "controlnet": lambda: tiny.controlnets["depth"],
                        "turbo": lambda: realsize_pipeline("sd-turbo", dtype=torch.float16, shrink=SHRINK,
                                                           folder=Path(work) / "tiny-sd-turbo")},
                work=Path(work))


# ---- measuring ------------------------------------------------------------------------------------

def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _synced(fn: Callable[[], object], device: str) -> Callable[[], None]:
    def run():
        fn()
        _sync(device)  # CUDA work is asynchronous: a run ends when the GPU is done
    return run


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak bytes one job allocates above what was allocated before it.

    CUDA: the caching allocator's counter (max_memory_allocated after a reset). CPU: the process
    RSS, sampled every 2 ms by a thread."""

    def __init__(self, device: str):
        self.device, self.bytes = device, 0

    def __enter__(self):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self._before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._before = self._peak = _rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, _rss())

    def __exit__(self, *exc):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self._before
        else:
            self._stop.set()
            self._thread.join()
            self.bytes = max(self._peak, _rss()) - self._before
        return False


def _peak_gib(run: Callable[[], object], weights: int, device: str) -> float:
    with PeakMemory(device) as peak:
        run()
    return (weights + peak.bytes) / 1024**3


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _pixels_diff(a, b) -> float:
    import numpy as np

    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


# ---- the two sides --------------------------------------------------------------------------------

def _plain(folder: Path, plan: Plan, *, xl: bool = False):
    """The twin: a diffusers pipeline as its docs load it (fp16 on CUDA), Euler like ours."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    kwargs = {} if xl else {"safety_checker": None, "requires_safety_checker": False}
    cls = StableDiffusionXLPipeline if xl else StableDiffusionPipeline
    pipe = cls.from_pretrained(str(folder), torch_dtype=plan.dtype, **kwargs).to(plan.device)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _plain_call(pipe, size: int, steps: int, cfg: float, **extra):
    import torch

    # The starting noise our engine draws (float32 from the CPU generator, cast: engine/noise.py):
    # diffusers would draw it in fp16, other numbers on some torch builds, and the figures' pixel
    # difference would then compare two seeds instead of two implementations.
    side = size // pipe.vae_scale_factor
    latents = torch.randn((1, pipe.unet.config.in_channels, side, side),
                          generator=torch.Generator("cpu").manual_seed(SEED)).to(pipe.dtype)
    return pipe(PROMPT, num_inference_steps=steps, width=size, height=size, guidance_scale=cfg,
                generator=torch.Generator("cpu").manual_seed(SEED), latents=latents, **extra).images[0]


def _studio(plan: Plan):
    from brushwork import Studio

    return Studio(device=plan.device)


def _recipe(folder: Path, size: int, steps: int, cfg: float, **extra):
    from brushwork import Recipe

    return Recipe(prompt=PROMPT, model=str(folder), steps=steps, width=size, height=size, seed=SEED,
                  sampler="Euler", cfg=cfg, **extra)


def _studio_weights(studio, *, controlnets: bool) -> int:
    return sum(m["bytes"] for m in studio.loaded_models() if m["kind"] == "model" or
               (controlnets and m["kind"] == "controlnet"))


def _studio_unet(studio, folder: Path):
    """The UNet the Studio runs (after a job: tuned, fused): measured as it really is."""
    from brushwork.engine import bridge

    def not_loaded():
        raise RuntimeError(f"{folder}: run a Studio job before measuring its UNet")

    key = bridge.resolve(str(folder), "pipeline", studio.settings).key
    return studio.pipelines.base(key, not_loaded).pipe.unet


def _pair(key: str, label: str, plan: Plan, run_plain, run_ours, *, repeats: int,
          plain_weights: int, ours_weights: Callable[[], int]) -> list[Figure]:
    """ours vs plain, interleaved: <key>_e2e_s (or _ms), <key>_speedup, <key>_peak_vram_gib."""
    last = {}
    t_plain, t_ours = side_by_side(_synced(lambda: last.__setitem__("plain", run_plain()), plan.device),
                                   _synced(lambda: last.__setitem__("ours", run_ours()), plan.device),
                                   repeats=repeats)
    diff = _pixels_diff(last["plain"], last["ours"])
    peak_plain = _peak_gib(_synced(run_plain, plan.device), plain_weights, plan.device)
    peak_ours = _peak_gib(_synced(run_ours, plan.device), ours_weights(), plan.device)
    live = key == "live_frame"
    value, unit, goal = (t_ours * 1000, "ms", "<= 25") if live else (t_ours, "s", "")
    timing_key = f"{key}_ms" if live else f"{key}_e2e_s"
    plain_text = f"{t_plain * 1000:.1f} ms" if live else f"{t_plain:.3f} s"
    return [
        Figure(timing_key, value, unit, goal, note=f"{label}; plain diffusers {plain_text}",
               detail={"plain_s": t_plain, "ours_s": t_ours, "mean_abs_pixel_diff": diff}),
        Figure(f"{key}_speedup", t_plain / t_ours, "x", ">= 1.0", note=f"{label}; plain / ours"),
        Figure(f"{key}_peak_vram_gib", peak_ours, "GiB", note=f"{label}; plain {peak_plain:.2f} GiB",
               detail={"plain_gib": peak_plain, "ratio": peak_ours / peak_plain}),
    ]


# ---- figure groups --------------------------------------------------------------------------------

def _unet_its(plan: Plan, ours_unet, plain) -> Figure:
    import torch

    plain_unet, cfg = plain.unet, plain.unet.config
    side = plan.size // plain.vae_scale_factor
    x = torch.randn(2, cfg.in_channels, side, side, device=plan.device, dtype=plan.dtype)
    e = torch.randn(2, 77, cfg.cross_attention_dim, device=plan.device, dtype=plan.dtype)
    t = torch.tensor([500], device=plan.device)

    def steps(unet):
        def run():
            with torch.inference_mode():
                for _ in range(plan.unet_iters):
                    unet(x, t, encoder_hidden_states=e)
        return _synced(run, plan.device)

    t_plain, t_ours = side_by_side(steps(plain_unet), steps(ours_unet), repeats=plan.repeats)
    its, plain_its = plan.unet_iters / t_ours, plan.unet_iters / t_plain
    return Figure("sd15_unet_its", its, "it/s", ">= 100",
                  note=f"{plan.size}², CFG batch 2, {str(plan.dtype).split('.')[-1]}; plain diffusers UNet "
                       f"{plain_its:.1f} it/s (anchor: stable-fast 104.6, vanilla ~54.5 on H100)",
                  detail={"plain_its": plain_its, "speedup": its / plain_its, "iters": plan.unet_iters})


def _control_picture(plan: Plan):
    from PIL import Image

    plan.work.mkdir(parents=True, exist_ok=True)
    path = plan.work / f"depth-{plan.size}.png"
    picture = Image.linear_gradient("L").resize((plan.size, plan.size)).convert("RGB")  # near at the top
    picture.save(path)
    return path, picture


def _sd15_group(plan: Plan) -> list[Figure]:
    from brushwork import Control
    from brushwork.engine.memory import pipeline_bytes
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    folder, steps, size = plan.model("sd15"), plan.steps, plan.size
    label = f"SD 1.5 {size}² {steps} steps"
    plain, studio = _plain(folder, plan), _studio(plan)
    recipe = _recipe(folder, size, steps, 7.0)

    def ours():
        return studio.generate(recipe).images[0]

    def plain_job():
        return _plain_call(plain, size, steps, 7.0)

    ours()  # loads and tunes the Studio's pipeline
    figs = [_unet_its(plan, _studio_unet(studio, folder), plain)]
    figs += _pair("sd15", label, plan, plain_job, ours, repeats=plan.repeats,
                  plain_weights=pipeline_bytes(plain), ours_weights=lambda: _studio_weights(studio, controlnets=False))

    seen = []
    t_with, t_without = side_by_side(_synced(lambda: studio.generate(recipe, on_progress=seen.append), plan.device),
                                     _synced(ours, plan.device), repeats=plan.repeats)
    assert seen and all(p.preview is not None for p in seen), "every step should have had a preview"
    figs.append(Figure("preview_overhead_cuda_ratio", t_with / t_without, "x", "<= 1.03",
                       note=f"{label}; preview every step / none ({plan.device})",
                       detail={"with_s": t_with, "without_s": t_without}))

    path, picture = _control_picture(plan)
    net_folder = plan.model("controlnet")
    control = _recipe(folder, size, steps, 7.0,
                      controls=[Control(kind="depth", image=str(path), model=str(net_folder))])
    net = ControlNetModel.from_pretrained(str(net_folder), torch_dtype=plan.dtype).to(plan.device)
    plain_cn = StableDiffusionControlNetPipeline.from_pipe(plain, controlnet=net)
    plain_cn.set_progress_bar_config(disable=True)

    def ours_cn():
        return studio.generate(control).images[0]

    def plain_cn_job():
        return _plain_call(plain_cn, size, steps, 7.0, image=picture)

    ours_cn()
    t_cn, t_base = side_by_side(_synced(ours_cn, plan.device), _synced(ours, plan.device), repeats=plan.repeats)
    p_cn, p_base = side_by_side(_synced(plain_cn_job, plan.device), _synced(plain_job, plan.device),
                                repeats=plan.repeats)
    peak_ours = _peak_gib(_synced(ours_cn, plan.device), _studio_weights(studio, controlnets=True), plan.device)
    peak_plain = _peak_gib(_synced(plain_cn_job, plan.device), pipeline_bytes(plain_cn), plan.device)
    figs += [
        Figure("controlnet_overhead_ratio", t_cn / t_base, "x", "<= 1.40",
               note=f"{label} + one depth ControlNet / without, per job; plain diffusers {p_cn / p_base:.3f}",
               detail={"with_s": t_cn, "without_s": t_base, "plain_ratio": p_cn / p_base,
                       "plain_with_s": p_cn, "plain_without_s": p_base}),
        Figure("controlnet_peak_vram_gib", peak_ours, "GiB", note=f"{label} + ControlNet; plain {peak_plain:.2f} GiB",
               detail={"plain_gib": peak_plain, "ratio": peak_ours / peak_plain}),
    ]
    studio.unload(None)
    return figs


def _live_group(plan: Plan) -> list[Figure]:
    from brushwork.engine.memory import pipeline_bytes

    folder, size = plan.model("turbo"), plan.size
    plain, studio = _plain(folder, plan), _studio(plan)
    recipe = _recipe(folder, size, 1, 0.0)
    figs = _pair("live_frame", f"SD-Turbo architecture (sd2 folder), 1 step {size}², CFG 0", plan,
                 lambda: _plain_call(plain, size, 1, 0.0), lambda: studio.generate(recipe).images[0],
                 repeats=plan.live_repeats, plain_weights=pipeline_bytes(plain),
                 ours_weights=lambda: _studio_weights(studio, controlnets=False))
    from brushwork.engine import bridge

    # "sd2" as resolved from the folder; the engine then runs it with SD 1.5's pipeline classes
    figs[0].detail["resolved_family"] = bridge.resolve(str(folder), "pipeline", studio.settings).family
    figs[0].detail["studio_family"] = sorted({m["family"] for m in studio.loaded_models() if m["kind"] == "model"})
    studio.unload(None)
    return figs


def _sdxl_group(plan: Plan) -> list[Figure]:
    from brushwork.engine.memory import pipeline_bytes

    folder, size, steps = plan.model("sdxl"), plan.xl_size, plan.steps
    plain, studio = _plain(folder, plan, xl=True), _studio(plan)
    recipe = _recipe(folder, size, steps, 7.0)
    figs = _pair("sdxl", f"SDXL {size}² {steps} steps", plan, lambda: _plain_call(plain, size, steps, 7.0),
                 lambda: studio.generate(recipe).images[0], repeats=plan.xl_repeats,
                 plain_weights=pipeline_bytes(plain), ours_weights=lambda: _studio_weights(studio, controlnets=False))
    studio.unload(None)
    return figs


GROUP_FUNCTIONS = {"sd15": _sd15_group, "live": _live_group, "sdxl": _sdxl_group}


def measure(plan: Plan, only=None) -> list[Figure]:
    """The figures of every group with a key in ``only`` (all groups when empty)."""
    figs = []
    for group, keys in GROUPS.items():
        if only and not set(keys) & set(only):
            continue
        figs += GROUP_FUNCTIONS[group](plan)
        _free(plan.device)  # the group's pipelines died with its frame: give their memory back
    return [f for f in figs if not only or f.key in only]


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def run(quick: bool = False, only=None) -> list[Figure]:
    """The suite's entry (benchmarks/__main__.py): GPU figures, where CUDA is."""
    if only and not set(KEYS) & set(only):
        return []
    if not _cuda():
        raise ModuleNotFoundError("no CUDA device here: GPU figures need the GPU machine")
    return measure(gpu_plan(quick), only)


def smoke(tiny_root: Path, work: Path, only=None) -> list[Figure]:
    """Every figure's code on the CPU with the tiny models (tests/benchmarks)."""
    return measure(tiny_plan(tiny_root, work), only)
