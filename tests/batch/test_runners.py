"""The three ways of running a batch make the same pixels: the local worker, one in-process
Studio, and Ray actors (a local Ray with 2 CPU actors); a Ray actor killed mid-batch loses nothing.

One Ray session and one worker serve the whole module (starting either costs seconds on 2 cores);
the module is one xdist group so they start once."""

from __future__ import annotations

import io
import threading
import time

import brushwork
import numpy as np
import pytest
from batch_helpers import TINY, outputs, write_jsonl
from brushwork import Recipe
from brushwork.batch.ray_runner import RayRunner
from brushwork.batch.report import REPORT_NAME, read_report
from brushwork.batch.runners import local_store
from brushwork.worker.testing import WorkerProcess

pytestmark = [pytest.mark.xdist_group("batch-runners"), pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def batch_worker(tmp_path_factory, tiny_models):
    with WorkerProcess(tmp_path_factory.mktemp("batch-worker"), model_dirs=[tiny_models.root], wait_engine=True,
                       start_timeout=180) as worker:
        yield worker


def rows_with_a_picture():
    return [{**TINY, "prompt": "a red brick wall", "seeds": [1, 2]},
            {**TINY, "prompt": "moss <lora:lora-tiny:0.7>", "seed": 3},
            {**TINY, "prompt": "from a picture", "init_image": "init.png", "strength": 0.6, "seed": 4}]


def test_same_pixels_through_the_worker_in_process_and_ray(models_env, tmp_path, picture, batch_worker,
                                                          ray_session):
    m = write_jsonl(tmp_path / "m.jsonl", rows_with_a_picture())
    quiet = dict(stream=io.StringIO())
    local = brushwork.batch(m, tmp_path / "in-process", runner="in-process", device="cpu", **quiet)
    # A sha256: input the worker lacks but this machine's store has is uploaded from the store.
    ref = local_store().put(picture.read_bytes())
    assert batch_worker.client().missing([ref]) == [ref]
    by_ref = brushwork.batch([{**rows_with_a_picture()[2], "init_image": ref}], tmp_path / "by-ref",
                             client=batch_worker.client(), **quiet)
    assert by_ref.counts["done"] == 1
    via_worker = brushwork.batch(m, tmp_path / "worker", client=batch_worker.client(), **quiet)
    on_ray = brushwork.batch(m, tmp_path / "ray", runner="ray", actors=2, **quiet)
    for result in (local, via_worker, on_ray):
        assert result.counts == {"done": 4, "failed": 0, "skipped": 0}, [r.reason for r in result.failed]
    a, b, c = (outputs(tmp_path / d) for d in ("in-process", "worker", "ray"))
    assert a.keys() == b.keys() == c.keys() and len(a) == 4
    for name in a:
        assert np.array_equal(a[name], b[name]), name
        assert np.array_equal(a[name], c[name]), name
    [(name, arr)] = outputs(tmp_path / "by-ref").items()  # the same recipe, so the same name
    assert np.array_equal(arr, a[name])
    # A rerun through the worker recognises the worker's own files (their recipe verifies).
    again = brushwork.batch(m, tmp_path / "worker", client=batch_worker.client(), **quiet)
    assert again.counts == {"done": 0, "failed": 0, "skipped": 4}


def test_a_ray_actor_killed_mid_batch_loses_and_duplicates_nothing(models_env, tmp_path, ray_session):
    m = write_jsonl(tmp_path / "m.jsonl", [{**TINY, "prompt": "bricks", "steps": 8, "seeds": "1-6"}])
    dispatched = []
    killed = []

    def kill_third(actor, row):
        dispatched.append(row.index)
        if len(dispatched) == 3 and not killed:  # the actor now holds rows in flight
            ray_session.kill(actor)
            killed.append(row.index)

    runner = RayRunner(actors=2, on_dispatch=kill_third)
    try:
        result = brushwork.batch(m, tmp_path / "out", runner=runner, stream=io.StringIO())
        assert len(runner.actors) == 1  # the killed one is gone, the other ran its rows
    finally:
        runner.close()
    assert result.counts == {"done": 6, "failed": 0, "skipped": 0}, [r.reason for r in result.failed]
    assert killed
    retried = [r for r in result.rows if r.attempts > 1]
    assert retried and any(r.index == killed[0] for r in retried)
    report = read_report(tmp_path / "out" / REPORT_NAME)
    assert sorted(r["row"] for r in report) == [1, 2, 3, 4, 5, 6]  # every row once
    assert len(outputs(tmp_path / "out")) == 6
    # the same images as a run with no kill
    plain = brushwork.batch(m, tmp_path / "plain", runner="in-process", device="cpu", stream=io.StringIO())
    assert plain.counts["done"] == 6
    killed_run, plain_run = outputs(tmp_path / "out"), outputs(tmp_path / "plain")
    assert killed_run.keys() == plain_run.keys()
    assert all(np.array_equal(killed_run[k], plain_run[k]) for k in plain_run)


def test_a_batch_on_the_worker_leaves_room_for_the_canvas(models_env, tmp_path, batch_worker):
    """Another client's job (the canvas, Blender) waits behind at most the running batch row and
    one queued one, and finishes while the batch still runs."""
    rows = 8
    m = write_jsonl(tmp_path / "m.jsonl", [{**TINY, "prompt": "bricks", "steps": 20, "seeds": f"1-{rows}"}])
    report = tmp_path / "out" / REPORT_NAME
    done: list = []
    batch = threading.Thread(target=lambda: done.append(
        brushwork.batch(m, tmp_path / "out", client=batch_worker.client(), stream=io.StringIO())))
    batch.start()
    try:
        deadline = time.monotonic() + 120
        while not (report.exists() and read_report(report)):
            assert time.monotonic() < deadline and batch.is_alive()
            time.sleep(0.05)
        canvas = batch_worker.client()
        job = canvas.submit(Recipe(prompt="the canvas", seed=9, **TINY))
        assert job.position is not None and job.position <= 2
        job.result(timeout=120)
        assert batch.is_alive() and len(read_report(report)) < rows  # the batch was still going
    finally:
        batch.join(300)
    assert done and done[0].counts["done"] == rows
