"""Measure the estimate's coefficients (engine/estimate.py) on this device with a small model.

Runs a few jobs of different sizes, steps and paths through a real Studio, fits seconds and peak
memory (``VmHWM`` of this process, reset before each job through ``/proc/self/clear_refs``; on a
GPU the allocator's peak) to the plans' work, then measures the error on held-out jobs.

Robust to a busy machine: each job's time is the least of ``repeats`` runs (other processes only
ever add time, so the minimum is the closest to the job's own cost), and the load average per core
is recorded with the calibration, so the printed error says under what conditions it was measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..recipe import Recipe
from .estimate import Calibration, estimate, full_size_bytes, work
from .plan import ModelFacts, plan

FIT: list[dict[str, Any]] = [
    dict(width=64, height=64, steps=8), dict(width=128, height=128, steps=8), dict(width=256, height=256, steps=4),
    dict(width=256, height=256, steps=12), dict(width=192, height=320, steps=6, cfg=1.0)]
HELD_OUT: list[dict[str, Any]] = [dict(width=384, height=384, steps=4), dict(width=640, height=512, steps=4)]


def _peak_reset() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.memory_allocated())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


REPEATS = 3


def load_per_core() -> float:
    """The 1-minute load average per CPU core (NaN where the OS has none)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return float("nan")


def measure_job(changes: dict, device: str = "cpu", repeats: int = REPEATS) -> dict:
    """Run one job in this (fresh) process after a warm-up: its plan, the least seconds of
    ``repeats`` runs, and the peak bytes above the loaded, warm model."""
    from .studio import Studio

    studio = Studio(device=device)
    r = Recipe(prompt="a stone wall", seed=3, sampler="Euler a", cfg=changes.pop("cfg", 5.0), **changes)
    studio.generate(r.replace(width=64, height=64, steps=1))  # loaded and warm
    base = next(iter(studio.pipelines._bases.values()))
    p = plan(r, ModelFacts.of_pipe(base.pipe, base.family))
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    before = _rss(device)
    _peak_reset()
    times = []
    for _ in range(max(1, repeats)):  # the same job again: the peak stays the job's, the time's minimum is kept
        started = time.perf_counter()
        studio.generate(r)
        times.append(time.perf_counter() - started)
    return dict(plan=p, seconds=min(times), times=times, peak=max(0, _peak_bytes(device) - before))


def _in_subprocess(changes: dict, device: str, repeats: int) -> dict:
    """``measure_job`` in a fresh interpreter: a process that ran a bigger job keeps its freed
    memory, so only a fresh one shows a job's own peak."""
    code = ("import json, sys\nfrom brushwork.engine.calibrate import measure_job\n"
            "row = measure_job(json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]))\n"
            "print(json.dumps({'seconds': row['seconds'], 'times': row['times'], 'peak': row['peak']}))\n")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(changes), device, str(repeats)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def calibrate(device: str = "cpu", repeats: int = REPEATS) -> tuple[Calibration, list[dict]]:
    """(the fitted calibration, one row per job: measured and estimated figures). Each job runs in
    its own process on the bundled demo model; its time is the least of ``repeats`` runs."""
    from ..models import bundled

    facts = ModelFacts.of_pipe(_demo_pipe_configs(), "sd15")
    folder = bundled.weights_dir()
    unet_bytes = sum(f.stat().st_size for f in (folder / "unet").glob("*.safetensors")) if folder else 0

    def run(changes: dict) -> dict:
        r = Recipe(prompt="a stone wall", seed=3, sampler="Euler a", **{"cfg": 5.0, **changes})
        p = plan(r, facts)
        loads.append(load_per_core())
        measured = _in_subprocess(dict(changes), device, repeats)
        u, v, u_peak, v_peak = work(p)
        return dict(plan=p, u=u, v=v, u_peak=u_peak, v_peak=v_peak, **measured)

    loads: list[float] = []
    fit = [run(dict(c)) for c in FIT]
    x = np.array([[row["u"], row["v"], 1.0] for row in fit])
    unet_s, vae_s, fixed_s = (max(0.0, float(c)) for c in np.linalg.lstsq(x, [r["seconds"] for r in fit],
                                                                          rcond=None)[0])
    xm = np.array([[row["u_peak"], row["v_peak"]] for row in fit])
    ym = [row["peak"] - full_size_bytes(row["plan"]) for row in fit]
    unet_b, vae_b = (max(0.0, float(c)) for c in np.linalg.lstsq(xm, ym, rcond=None)[0])
    calibration = Calibration(device=device, model="brushwork-demo", unet_bytes=unet_bytes,
                              unet_s=unet_s, vae_s=vae_s, fixed_s=fixed_s, unet_b=unet_b, vae_b=vae_b,
                              time_error=float("nan"), memory_error=float("nan"))
    held = [run(dict(c)) for c in HELD_OUT]
    rows, t_err, m_err = [], [], []
    for row in fit + held:
        e = estimate(row["plan"], calibration)
        rows.append(dict(size=f"{row['plan'].width}x{row['plan'].height}", path=row["plan"].path,
                         steps=row["plan"].steps, held_out=row in held, seconds=round(row["seconds"], 3),
                         runs=[round(t, 3) for t in row["times"]],
                         estimated_seconds=round(e.seconds, 3), peak_mib=round(row["peak"] / 2**20, 1),
                         estimated_peak_mib=round(e.peak_bytes / 2**20, 1)))
        if row in held:
            t_err.append(abs(e.seconds - row["seconds"]) / row["seconds"])
            m_err.append(abs(e.peak_bytes - row["peak"]) / max(1, row["peak"]))
    calibration = Calibration(**{**calibration.__dict__, "time_error": max(t_err), "memory_error": max(m_err),
                                 "load": max(loads + [load_per_core()]), "repeats": max(1, repeats)})
    return calibration, rows


def _demo_pipe_configs():
    """The demo model's UNet and VAE configs, shaped as ModelFacts.of_pipe reads a pipeline."""
    from ..models import bundled

    folder = bundled.weights_dir()
    if folder is None:
        raise RuntimeError("the bundled demo model is not installed: nothing to calibrate on")
    unet = json.loads((folder / "unet" / "config.json").read_text())
    vae = json.loads((folder / "vae" / "config.json").read_text())
    return SimpleNamespace(unet=SimpleNamespace(config=unet),
                           vae_scale_factor=2 ** (len(vae.get("block_out_channels", (0,) * 4)) - 1))
