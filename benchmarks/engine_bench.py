"""Engine figures: task switching, preview cost, and the CPU fast path vs plain diffusers.

task_switch_ratio     steady-state switching txt2img -> inpaint -> ControlNet on a loaded base
                      (the "load" phase of a job: pipeline, adapters, prompt) / a cold load.
preview_overhead_ratio  a job with a latent->RGB preview every step / the same job without.
sd15_cpu_speedup      plain diffusers StableDiffusionPipeline (defaults, fp32) / our Studio's fast
                      path, real SD 1.5 UNet architecture (random weights), 256x256, same work.
"""

from __future__ import annotations

import io
import statistics
import tempfile
from pathlib import Path

from .common import Figure, side_by_side, timed


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _inputs(folder: Path, size: int) -> tuple[str, str, str]:
    """An init image, a mask (centre square) and a scribble, written as files."""
    from PIL import Image, ImageDraw

    init = Image.new("RGB", (size, size), (120, 90, 60))
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rectangle([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=255)
    sketch = Image.new("RGB", (size, size), 0)
    ImageDraw.Draw(sketch).ellipse([size // 8, size // 8, 7 * size // 8, 7 * size // 8],
                                   outline=(255, 255, 255), width=2)
    paths = []
    for name, im in (("init.png", init), ("mask.png", mask), ("sketch.png", sketch)):
        p = folder / name
        im.save(p)
        paths.append(str(p))
    return tuple(paths)


def _tiny_root() -> Path:
    from brushwork.testing.tiny import load_tiny_set, write_tiny_set

    root = Path(__file__).resolve().parent / "out" / "tiny"
    if not (root / "COMPLETE").exists():
        write_tiny_set(root)
        (root / "COMPLETE").write_text("ok")
    return load_tiny_set(root).root


def task_switch(quick: bool) -> Figure:
    import os

    from brushwork import Control, Recipe, Studio

    root = _tiny_root()
    os.environ["BRUSHWORK_MODEL_DIRS"] = str(root)
    size = 64
    with tempfile.TemporaryDirectory() as tmp:
        init, mask, sketch = _inputs(Path(tmp), size)
        base = Recipe(prompt="a red house", model="tiny-sd15", steps=2, width=size, height=size, seed=1)
        jobs = {
            "txt2img": base,
            "inpaint": base.replace(init_image=init, mask=mask, strength=0.9),
            "controlnet": base.replace(
                controls=[Control(kind="scribble", image=sketch, model="controlnet-tiny-scribble")]),
        }
        cold = []
        for _ in range(2 if quick else 4):
            studio = Studio(device="cpu")
            cold.append(studio.generate(jobs["txt2img"]).timings["load"])
        studio = Studio(device="cpu")
        for recipe in jobs.values():  # first use of each task and of the ControlNet weights
            studio.generate(recipe)
        switches = []
        for _ in range(3 if quick else 6):
            for name in ("inpaint", "controlnet", "txt2img"):
                switches.append(studio.generate(jobs[name]).timings["load"])
    c, s = statistics.median(cold), statistics.median(switches)
    return Figure("task_switch_ratio", s / c, "x", "<= 0.05",
                  detail={"cold_load_s": c, "switch_s": s, "model": "tiny-sd15"},
                  note=f"switch {s * 1000:.1f} ms vs cold load {c * 1000:.0f} ms (tiny model)")


def preview_overhead(quick: bool) -> Figure:
    from brushwork import Recipe, Studio

    if quick:
        import os

        os.environ["BRUSHWORK_MODEL_DIRS"] = str(_tiny_root())
        recipe = Recipe(prompt="a red house", model="tiny-sd15", steps=8, width=64, height=64, seed=3)
        label = "tiny-sd15 64x64, 8 steps"
    else:
        import torch

        from .realsize import realsize_pipeline

        recipe = Recipe(prompt="a red house", model=str(realsize_pipeline("sd15", dtype=torch.float32)),
                        steps=4, width=256, height=256, seed=3, sampler="Euler")
        label = "SD 1.5 architecture 256x256, 4 steps"
    studio = Studio(device="cpu")
    previews = []

    def with_preview():
        studio.generate(recipe, on_progress=lambda p: previews.append(p.preview is not None))

    def without():
        studio.generate(recipe)

    t_with, t_without = side_by_side(with_preview, without, repeats=3 if quick else 5)
    assert previews and all(previews), "every step should have produced a preview"
    return Figure("preview_overhead_ratio", t_with / t_without, "x", "<= 1.03",
                  detail={"with_s": t_with, "without_s": t_without}, note=label)


def sd15_cpu_speedup(quick: bool) -> Figure:
    import numpy as np
    import torch
    from brushwork import Recipe, Studio
    from brushwork.engine.fastpath import FastPath
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from .realsize import realsize_pipeline

    folder = realsize_pipeline("sd15", dtype=torch.float32)
    steps, size, prompt = (2 if quick else 6), 256, "a red house on a hill"
    plain = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, safety_checker=None,
                                                    requires_safety_checker=False)
    plain.scheduler = EulerDiscreteScheduler.from_config(plain.scheduler.config)
    plain.set_progress_bar_config(disable=True)
    studio = Studio(device="cpu", fast=FastPath(device="cpu", compile=True))
    recipe = Recipe(prompt=prompt, model=str(folder), steps=steps, width=size, height=size, seed=5,
                    sampler="Euler", cfg=7.0)

    def run_plain():
        g = torch.Generator("cpu").manual_seed(5)
        return plain(prompt, num_inference_steps=steps, height=size, width=size, guidance_scale=7.0,
                     generator=g).images[0]

    def run_ours():
        return studio.generate(recipe).images[0]

    warm = timed(run_ours)  # compiles: minutes on a CPU, paid once per process
    t_plain, t_ours = side_by_side(run_plain, run_ours, repeats=2 if quick else 3)
    a = np.asarray(run_plain(), dtype=np.float32)
    b = np.asarray(run_ours(), dtype=np.float32)
    diff = float(np.abs(a - b).mean())
    return Figure("sd15_cpu_speedup", t_plain / t_ours, "x", ">= 1.3",
                  detail={"plain_s": t_plain, "ours_s": t_ours, "compile_warmup_s": warm,
                          "mean_abs_pixel_diff": diff, "steps": steps, "size": size},
                  note=f"{steps} steps 256², torch.compile warm-up {warm:.0f} s excluded; "
                       f"mean pixel diff {diff:.2f}/255")


FIGURES = {
    "task_switch_ratio": task_switch,
    "preview_overhead_ratio": preview_overhead,
    "sd15_cpu_speedup": sd15_cpu_speedup,
}


def run(quick: bool = False, only=None) -> list[Figure]:
    return [fn(quick) for key, fn in FIGURES.items() if not only or key in only]
