"""Real worker processes for the worker tests (see brushwork.worker.testing.WorkerProcess).

Starting a worker costs seconds (its GPU thread imports torch and diffusers), so each group of
tests shares one: ``http_worker`` (no models: protocol, auth, uploads, fuzzing) and
``jobs_worker`` (the tiny models). Tests using one are in the same xdist group so they share it.
"""

from __future__ import annotations

import pytest
from brushwork.worker.testing import WorkerProcess


@pytest.fixture(scope="session")
def http_worker(tmp_path_factory):
    # A default model that resolves to nothing: a fuzzed recipe that happens to be valid fails
    # at once instead of running a real generation.
    # No preloading: these tests never need the engine, so it is imported only if a job runs.
    env = {"BRUSHWORK_DEFAULT_MODEL": "no-such-model-for-tests", "BRUSHWORK_WORKER_PRELOAD": "0"}
    with WorkerProcess(tmp_path_factory.mktemp("http-worker"), env=env) as worker:
        yield worker


@pytest.fixture(scope="session")
def jobs_worker(tmp_path_factory, tiny_models):
    with WorkerProcess(tmp_path_factory.mktemp("jobs-worker"), model_dirs=[tiny_models.root],
                       wait_engine=True, start_timeout=120) as worker:
        yield worker
