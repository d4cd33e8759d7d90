"""Large textures: peak memory of a big seamless job (the tiled path) / a job at 2x tile size.

large_texture_peak_memory_ratio   peak job memory of a 4096² seamless job / a 1024² job, same model.

Each job runs in a fresh subprocess (``python -m benchmarks.large_texture_bench --job ...``), so one
job's high-water mark never hides the other's. The subprocess first loads the model and runs a
small warm-up job; the figure is the job's peak *above* that baseline (the weights and the
warm-up's buffers are the same for both sizes):
  - CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus what was allocated before;
    model: the real SD 1.5 architecture (random weights, fp16), 4096² vs 1024² (= 2 tiles, the
    largest size that still runs untiled);
  - CPU: the process's peak RSS (VmHWM, reset after the warm-up through /proc/self/clear_refs)
    minus its RSS then; model: the tiny SD 1.5 test model, whose tiles are 256 px
    (engine/tiled.py: MIN_TILE_LATENT), at the same multiples of the tile: 2048² vs 512². The
    real architecture at 4096² would take hours on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from .common import Figure

KEY = "large_texture_peak_memory_ratio"
REPO = Path(__file__).resolve().parents[1]


def _job(model: str, size: int, steps: int, device: str) -> dict:
    """Runs in the subprocess: warm up, then one seamless job of size²; returns peak bytes above the baseline."""
    import torch
    from brushwork import Recipe
    from brushwork.engine import Studio

    studio = Studio(device=device)
    recipe = Recipe(prompt="weathered stone wall, moss in the cracks", model=model, steps=steps, cfg=5.0,
                    sampler="Euler", seed=11, tiling="xy")
    warm = studio.generate(recipe.replace(width=64, height=64, steps=1))
    del warm
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        image = studio.generate(recipe.replace(width=size, height=size)).images[0]
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        before = _reset_peak_rss()
        image = studio.generate(recipe.replace(width=size, height=size)).images[0]
        peak = _peak_rss() - before
    return {"size": size, "peak_bytes": int(peak), "image_size": list(image.size)}


def _status_bytes(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def _reset_peak_rss() -> int:
    """Reset the peak-RSS mark to the current RSS and return that (Linux >= 4.0). Elsewhere the
    mark cannot be reset: the warm-up's own peak then stands as the baseline."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return _status_bytes("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_rss() -> int:
    try:
        return _status_bytes("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(model: str, size: int, steps: int, device: str) -> dict:
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=pythonpath)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.large_texture_bench", "--job", str(size),
                           "--model", model, "--steps", str(steps), "--device", device],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{size}² job failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def large_texture(quick: bool) -> Figure:
    import torch

    steps = 4 if quick else 8
    if torch.cuda.is_available():
        from .realsize import realsize_pipeline

        model, device, big, small = str(realsize_pipeline("sd15")), "cuda", 4096, 1024
        what = "real SD 1.5 architecture (random weights, fp16), CUDA max_memory_allocated"
    else:
        from .engine_bench import _tiny_root

        model, device, big, small = str(_tiny_root() / "tiny-sd15"), "cpu", 2048, 512
        what = "tiny SD 1.5 (256 px tiles) at 8x/2x the tile, CPU peak RSS"
    a = _measure(model, big, steps, device)
    b = _measure(model, small, steps, device)
    # Where the peak mark cannot be reset, a job that stays under the warm-up's mark measures 0,
    # and a ratio against 0 means nothing. Report no value rather than a false one.
    measurable = a["peak_bytes"] > 0 and b["peak_bytes"] > 0
    ratio = a["peak_bytes"] / b["peak_bytes"] if measurable else None
    return Figure(KEY, ratio, "x", "<= 1.5",
                  detail={"big": a, "small": b, "steps": steps, "device": device},
                  note=f"{big}² seamless (tiled) / {small}²: {a['peak_bytes'] / 2**20:.0f} / "
                       f"{b['peak_bytes'] / 2**20:.0f} MiB above the loaded model; {what}; {steps} steps"
                       + ("" if measurable else "; NOT MEASURABLE: a job stayed under the warm-up's RSS mark"))


def run(quick: bool = False, only=None) -> list[Figure]:
    return [large_texture(quick)] if not only or KEY in only else []


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(json.dumps(_job(args.model, args.job, args.steps, args.device)))
