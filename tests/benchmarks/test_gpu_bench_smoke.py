"""The GPU benchmarks' code, run on the CPU with tiny models: the GPU run differs only by its Plan.

benchmarks/gpu_bench.py has never had a GPU to itself; this proves every figure's code path
(the Studio side, the plain diffusers twin, peak memory, the SD-Turbo "sd2" folder) works, so the
one GPU call that measures it cannot die on a typo.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_bench, realsize

REPO = Path(__file__).resolve().parents[2]  # not `from conftest import`: several conftest modules exist


def test_sd_turbo_configs_are_the_published_sd21_architecture():
    """Parameter counts of SD 2.1 (and so SD-Turbo): UNet 865.9 M, VAE 83.7 M, OpenCLIP-H text 340.4 M."""
    from brushwork.models.family import detect_folder
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = realsize.config_dir("sd-turbo")
    cfg = {part: json.loads((folder / part / "config.json").read_text()) for part in ("unet", "vae", "text_encoder")}
    with torch.device("meta"):  # shapes only: no memory, no time
        models = {"unet": UNet2DConditionModel.from_config(cfg["unet"]), "vae": AutoencoderKL.from_config(cfg["vae"]),
                  "text_encoder": CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))}
    counts = {part: sum(p.numel() for p in m.parameters()) for part, m in models.items()}
    assert counts == {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840}
    assert detect_folder(folder).family == "sd2"
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert (scheduler["_class_name"], scheduler["timestep_spacing"]) == ("EulerDiscreteScheduler", "trailing")


def test_unknown_architecture_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown architecture 'sd3'"):
        realsize.config_dir("sd3")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Scratch shared by this module's tests: the tiny SD-Turbo is built once."""
    return tmp_path_factory.mktemp("gpu-bench")


@pytest.mark.slow
def test_every_gpu_figure_runs_on_the_cpu_with_tiny_models(tiny_models, work):
    figures = gpu_bench.smoke(tiny_models.root, work)
    by_key = {f.key: f for f in figures}
    assert sorted(by_key) == sorted(gpu_bench.KEYS)
    for fig in figures:
        assert fig.value is not None and math.isfinite(fig.value) and fig.value > 0, fig
    for key in ("sd15", "controlnet", "live_frame", "sdxl"):
        detail = by_key[f"{key}_peak_vram_gib"].detail
        assert detail["plain_gib"] > 0 and math.isfinite(detail["ratio"])
    assert by_key["sd15_unet_its"].detail["plain_its"] > 0
    assert by_key["controlnet_overhead_ratio"].detail["plain_ratio"] > 0
    # the tiny SD-Turbo is a 1024-wide-cross-attention ("sd2") folder, loaded by the real Studio
    assert by_key["live_frame_ms"].detail["resolved_family"] == "sd2"
    # same seed, same CPU noise, fp32 on both sides: our image is the plain pipeline's
    assert by_key["sd15_e2e_s"].detail["mean_abs_pixel_diff"] < 1.0


def test_only_runs_the_groups_asked_for(tiny_models, work):
    figures = gpu_bench.smoke(tiny_models.root, work, only=["live_frame_ms"])
    assert [f.key for f in figures] == ["live_frame_ms"]


def test_the_suite_entry_needs_cuda_only_when_asked_for_gpu_figures():
    assert gpu_bench.run(only=["worker_overhead_ratio"]) == []
    if not torch.cuda.is_available():
        with pytest.raises(ModuleNotFoundError, match="no CUDA device"):
            gpu_bench.run(quick=True)


def test_gpu_session_script_off_the_gpu_records_what_it_could_not_run(tmp_path):
    """The device call's script, minus the GPU: stages are checked first, a spent time budget is
    recorded per group in $OUT/results.json and RESULTS.md, and the repository's RESULTS.md stays."""
    import os
    import subprocess

    script = REPO / "benchmarks" / "gpu_session.sh"
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, ALLOW_NO_GPU="1", BUDGET_S="0")
    bad = subprocess.run(["bash", str(script), "sd15", "bogus"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown stage bogus" in bad.stdout
    results_md = (REPO / "benchmarks" / "RESULTS.md").read_bytes()
    done = subprocess.run(["bash", str(script), "live", "sdxl"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["figures"] == {} and results["not_measured"] == [
        "live: not run (session time budget spent)", "sdxl: not run (session time budget spent)"]
    assert "sdxl: not run" in (tmp_path / "RESULTS.md").read_text()
    assert (tmp_path / "session.log").stat().st_size > 0
    assert (REPO / "benchmarks" / "RESULTS.md").read_bytes() == results_md
