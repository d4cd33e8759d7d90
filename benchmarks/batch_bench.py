"""Batch throughput: the worker against a plain in-process loop, and Ray with 2 actors against 1.

- ``batch_worker_vs_in_process``: rows/second of ``brushwork batch`` through a real local worker
  (manifest checks, uploads, two rows in flight, PNG fetched, written atomically and verified,
  report line fsynced) divided by rows/second of a plain loop ``studio.generate(r).save(path)``
  in this process. The same tiny model is warm on both sides (one job first), both use the same
  CPU threads, and the sides alternate (A B A B ...). Goal >= 0.95.
- ``batch_ray_scaling_2v1``: rows/second of a batch on a local Ray with 2 CPU actors (1 CPU and
  1 torch thread each) divided by the same batch on 1 actor. Actors are warmed by a small batch
  first; the figure is each batch's steady rate (rows after the first). Ideal: 2.0.
  ``ray_row_slowdown_2v1`` (a row's time inside its actor, 2 actors vs 1) shows what limits it:
  the two actors, the driver and Ray's own processes share the machine's cores.

Rates are rows after a batch's first row divided by their wall time (``BatchResult.rate``).

    python -m benchmarks.batch_bench [--quick]     # prints JSON, writes benchmarks/out/batch_bench.json
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .common import Figure

HERE = Path(__file__).resolve().parent
KEYS = ("batch_worker_vs_in_process", "batch_ray_scaling_2v1")


def _rows(n: int, *, seed0: int, width: int, steps: int) -> list[dict]:
    return [{"prompt": "a red brick wall", "model": "tiny-sd15", "width": width, "height": width, "steps": steps,
             "cfg": 5.0, "seeds": f"{seed0}-{seed0 + n - 1}"}]


def _plain_loop_rate(studio, recipes, out: Path) -> float:
    start = time.perf_counter()
    for i, recipe in enumerate(recipes):
        studio.generate(recipe).save(out / f"{i}.png")
    return len(recipes) / (time.perf_counter() - start)


def measure_worker(models: Path, tmp: Path, *, rows: int, repeats: int, width: int, steps: int,
                   threads: int) -> dict:
    import brushwork
    import torch
    from brushwork import Recipe
    from brushwork.worker.testing import WorkerProcess

    torch.set_num_threads(threads)
    with WorkerProcess(tmp / "worker", model_dirs=[models], wait_engine=True, start_timeout=180,
                       env={"OMP_NUM_THREADS": str(threads)}) as worker:
        client = worker.client()
        studio = brushwork.Studio()
        warm = Recipe(prompt="warm", model="tiny-sd15", width=width, height=width, steps=steps, seed=0)
        client.generate(warm)
        studio.generate(warm)
        via_worker, in_process = [], []
        for rep in range(repeats):
            seed0 = 1000 * (rep + 1)
            manifest = _rows(rows + 1, seed0=seed0, width=width, steps=steps)  # +1: the batch's first row
            recipes = [Recipe(prompt="a red brick wall", model="tiny-sd15", width=width, height=width,
                              steps=steps, cfg=5.0, seed=seed0 + i) for i in range(rows)]
            loop_dir, batch_dir = tmp / f"loop{rep}", tmp / f"batch{rep}"
            loop_dir.mkdir()
            for side in (("worker", "loop") if rep % 2 == 0 else ("loop", "worker")):
                if side == "worker":
                    result = brushwork.batch(manifest, batch_dir, client=client, stream=io.StringIO())
                    assert result.ok, [r.reason for r in result.failed]
                    via_worker.append(result.rate)
                else:
                    in_process.append(_plain_loop_rate(studio, recipes, loop_dir))
    w, p = statistics.median(via_worker), statistics.median(in_process)
    return {"batch_worker_vs_in_process": w / p, "worker_rows_per_s": w, "in_process_rows_per_s": p,
            "worker_rates": via_worker, "in_process_rates": in_process}


def measure_ray(tmp: Path, *, rows: int, width: int, steps: int) -> dict:
    import brushwork
    import ray
    from brushwork.batch.ray_runner import RayRunner

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rates: dict[int, float] = {}
    row_s: dict[int, float] = {}  # median seconds of a row inside its actor (generate only)
    try:
        for actors in (1, 2):
            runner = RayRunner(actors=actors)
            try:
                # Warm every actor: its first row loads the model.
                brushwork.batch(_rows(2 * actors + 2, seed0=1, width=width, steps=steps), tmp / f"warm{actors}",
                                runner=runner, stream=io.StringIO())
                result = brushwork.batch(_rows(rows + 1, seed0=5000, width=width, steps=steps),
                                         tmp / f"ray{actors}", runner=runner, stream=io.StringIO())
                assert result.ok, [r.reason for r in result.failed]
                rates[actors] = result.rate or 0.0
                row_s[actors] = statistics.median(r.seconds for r in result.rows[1:])
            finally:
                runner.close()
    finally:
        ray.shutdown()
    # If two actors ran as fast as one, scaling would be 2.0; the slowdown of each row inside its
    # actor shows how much the two cores (shared with the driver, Ray's own processes and anything
    # else on the machine) limit it.
    return {"batch_ray_scaling_2v1": rates[2] / rates[1], "ray_1_actor_rows_per_s": rates[1],
            "ray_2_actors_rows_per_s": rates[2], "ray_1_actor_row_s": row_s[1], "ray_2_actors_row_s": row_s[2],
            "ray_row_slowdown_2v1": row_s[2] / row_s[1]}


def measure(quick: bool = False) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .worker_bench import _tiny_models_root

    models = _tiny_models_root()
    width, steps = 64, 8
    rows = 6 if quick else 16
    repeats = 1 if quick else 3
    threads = int(os.environ.get("BENCH_THREADS") or 1)
    with tempfile.TemporaryDirectory(prefix="brushwork-batch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["BRUSHWORK_HOME"] = str(tmp / "home")
        os.environ["BRUSHWORK_MODEL_DIRS"] = str(models)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        load_before = os.getloadavg()[0]
        out = {"rows": rows, "size": width, "steps": steps, "repeats": repeats, "threads": threads,
               "cpus": os.cpu_count()}
        out.update(measure_worker(models, tmp, rows=rows, repeats=repeats, width=width, steps=steps,
                                  threads=threads))
        out.update(measure_ray(tmp, rows=rows, width=width, steps=steps))
        out["load_1min_before_after"] = [load_before, os.getloadavg()[0]]
    return out


def run(quick: bool = False, only=None) -> list[Figure]:
    """The benchmark suite's entry (benchmarks/__main__.py may list it)."""
    if only and not set(only) & set(KEYS):
        return []
    m = measure(quick)
    detail = {k: v for k, v in m.items() if k not in KEYS}
    return [
        Figure("batch_worker_vs_in_process", m["batch_worker_vs_in_process"], "x", ">= 0.95", detail,
               note=f"{m['worker_rows_per_s']:.2f} vs {m['in_process_rows_per_s']:.2f} rows/s, {m['size']}px "
                    f"{m['steps']}-step tiny rows, warm"),
        Figure("batch_ray_scaling_2v1", m["batch_ray_scaling_2v1"], "x", "", detail,
               note=f"local Ray, CPU actors: 2 actors {m['ray_2_actors_rows_per_s']:.2f} vs 1 actor "
                    f"{m['ray_1_actor_rows_per_s']:.2f} rows/s on {m['cpus']} cores"),
    ]


if __name__ == "__main__":
    result = measure(quick="--quick" in sys.argv)
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "batch_bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    json.dump(result, sys.stdout, indent=2)
    print()
