"""The worker's cost over running in-process, and its round trip.

- ``worker_overhead_ratio``: median wall time of a small tiny-model job through a real worker
  (submit, progress events, result written to disk, PNG fetched) divided by the median of the
  same Recipe run by an in-process ``Studio.generate`` (no file). Measured interleaved.
- ``health_rtt_ms``: median round trip of ``GET /v1/health`` over a kept-alive connection.

    python -m benchmarks --only worker_overhead_ratio health_rtt_ms
    python -m benchmarks.worker_bench            # just these two, printed as JSON
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .common import Figure, side_by_side

REPO = Path(__file__).resolve().parents[1]
KEYS = ("worker_overhead_ratio", "health_rtt_ms")


def _tiny_models_root() -> Path:
    """A models folder holding tiny-sd15, built once under .cache/."""
    root = REPO / ".cache" / "bench" / "worker-models"
    if not (root / "tiny-sd15" / "model_index.json").exists():
        from brushwork.testing.tiny import build_tiny_sd15

        root.mkdir(parents=True, exist_ok=True)
        build_tiny_sd15(root / "tiny-sd15")
    return root


def measure(quick: bool = False, *, width: int = 64, steps: int = 4) -> dict:
    """Both figures and their parts: {"worker_overhead_ratio", "health_rtt_ms", "worker_s", "in_process_s", ...}."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    models = _tiny_models_root()
    from brushwork import Recipe
    from brushwork.worker.testing import WorkerProcess

    recipe = Recipe(prompt="a red brick wall", model="tiny-sd15", width=width, height=width, steps=steps,
                    seed=1, cfg=5.0)
    repeats = 3 if quick else 15  # the ratio moves by ±3 % between runs of 9 on a 2-core machine
    with tempfile.TemporaryDirectory(prefix="brushwork-bench-") as tmp:
        # The in-process Studio and the worker each get their own home (outputs, assets, history).
        os.environ["BRUSHWORK_HOME"] = str(Path(tmp) / "in-process")
        os.environ["BRUSHWORK_MODEL_DIRS"] = str(models)
        import torch

        # Both sides get the same CPU threads (on a GPU this matters little; on a CPU it decides).
        threads = int(os.environ.get("BENCH_THREADS") or torch.get_num_threads())
        torch.set_num_threads(threads)
        with WorkerProcess(Path(tmp) / "worker", model_dirs=[models], wait_engine=True, start_timeout=180,
                           env={"OMP_NUM_THREADS": str(threads)}) as worker:
            import brushwork

            studio = brushwork.Studio()
            client = worker.client()
            via_worker, in_process = side_by_side(lambda: client.generate(recipe), lambda: studio.generate(recipe),
                                                  repeats=repeats, warmup=1)
            rtts = []
            client.health()
            for _ in range(50 if quick else 300):
                start = time.perf_counter()
                client.health()
                rtts.append((time.perf_counter() - start) * 1000)
    return {"worker_overhead_ratio": via_worker / in_process, "health_rtt_ms": statistics.median(rtts),
            "worker_s": via_worker, "in_process_s": in_process, "size": width, "steps": steps,
            "repeats": repeats, "threads": threads}


def run(quick: bool = False, only=None) -> list[Figure]:
    """The benchmark suite's entry (benchmarks/__main__.py)."""
    if only and not set(only) & set(KEYS):
        return []
    m = measure(quick)
    detail = {k: m[k] for k in ("worker_s", "in_process_s", "size", "steps", "repeats", "threads")}
    return [
        Figure("worker_overhead_ratio", m["worker_overhead_ratio"], "x", "<= 1.05", detail,
               note=f"{m['size']}px {m['steps']}-step tiny job: worker {m['worker_s'] * 1000:.0f} ms vs "
                    f"in-process {m['in_process_s'] * 1000:.0f} ms (medians, interleaved)"),
        Figure("health_rtt_ms", m["health_rtt_ms"], "ms", "<= 5", {}, note="GET /v1/health, kept-alive connection"),
    ]


if __name__ == "__main__":
    json.dump(measure(quick="--quick" in sys.argv), sys.stdout, indent=2)
    print()
