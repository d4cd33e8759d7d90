"""Batch throughput: the worker against a plain in-process loop, and Ray with 2 actors against 1.

- ``batch_worker_vs_in_process``: rows/second of ``brushwork batch`` through a real local worker
  (manifest checks, uploads, two rows in flight, PNG fetched, written atomically and verified,
  report line fsynced) divided by rows/second of a plain loop ``studio.generate(r).save(path)``
  in this process. The same tiny model is warm on both sides (one job first), both use the same
  CPU threads, and the sides alternate (A B, B A, ...); the figure is the median of the pairs'
  ratios (the machine is shared: a pair measured back to back sees the same load). Goal >= 0.95.
- ``batch_ray_scaling_2v1``: rows/second of a batch on a local Ray with 2 CPU actors (1 CPU and
  1 torch thread each) divided by the same batch on 1 actor. Actors are warmed by a small batch
  first; then batches on one of the two warm actors and on both alternate; the figure is the median
  of the pairs' ratios of steady rates (rows after a batch's first). Ideal: 2.0.
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
        via_worker, in_process, ratios = [], [], []
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
            ratios.append(via_worker[-1] / in_process[-1])  # a pair measured back to back
    return {"batch_worker_vs_in_process": statistics.median(ratios), "worker_rows_per_s": statistics.median(via_worker),
            "in_process_rows_per_s": statistics.median(in_process), "worker_rates": via_worker,
            "in_process_rates": in_process, "pair_ratios": ratios}


def measure_ray(tmp: Path, *, rows: int, repeats: int, width: int, steps: int) -> dict:
    import brushwork
    import ray
    from brushwork.batch.ray_runner import RayRunner

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rates: dict[int, list[float]] = {1: [], 2: []}
    row_s: dict[int, list[float]] = {1: [], 2: []}  # seconds of a row inside its actor (generate only)
    runner = RayRunner(actors=2)
    try:
        # Warm both actors (an actor's first row loads the model), then run batches on one of them
        # and on both, alternately, so that load from elsewhere on the machine hits both sides.
        brushwork.batch(_rows(6, seed0=1, width=width, steps=steps), tmp / "warm", runner=runner,
                        stream=io.StringIO())
        both = list(runner.actors)
        for rep in range(repeats):
            for actors in ((1, 2) if rep % 2 == 0 else (2, 1)):
                runner.actors = both[:actors]
                result = brushwork.batch(_rows(rows + 1, seed0=5000 + 100 * rep, width=width, steps=steps),
                                         tmp / f"ray{actors}-{rep}", runner=runner, stream=io.StringIO())
                assert result.ok, [r.reason for r in result.failed]
                rates[actors].append(result.rate or 0.0)
                row_s[actors].extend(r.seconds for r in result.rows[1:])
        runner.actors = both
    finally:
        runner.close()
        ray.shutdown()
    ratios = [two / one for one, two in zip(rates[1], rates[2], strict=True)]
    one_s, two_s = statistics.median(row_s[1]), statistics.median(row_s[2])
    # If two actors ran as fast as one, scaling would be 2.0; the slowdown of each row inside its
    # actor shows how much the two cores (shared with the driver, Ray's own processes and anything
    # else on the machine) limit it.
    return {"batch_ray_scaling_2v1": statistics.median(ratios), "ray_pair_ratios": ratios,
            "ray_1_actor_rows_per_s": statistics.median(rates[1]),
            "ray_2_actors_rows_per_s": statistics.median(rates[2]),
            "ray_1_actor_row_s": one_s, "ray_2_actors_row_s": two_s, "ray_row_slowdown_2v1": two_s / one_s}


def measure(quick: bool = False) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .worker_bench import _tiny_models_root

    models = _tiny_models_root()
    width, steps = 64, 8
    rows = 4 if quick else 8
    repeats = 1 if quick else 6
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
        out.update(measure_ray(tmp, rows=rows, repeats=repeats, width=width, steps=steps))
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
