"""Results on a shared machine are the artist's alone: the worker's dated result folders are 0700
and its PNGs 0600 (it runs with umask 077), with the tiny models through a real worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from worker_helpers import tiny_recipe

pytestmark = pytest.mark.xdist_group("worker-jobs")


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_results_and_their_folders_are_private(jobs_worker):
    result = jobs_worker.client().generate(tiny_recipe(steps=1, seed=3))
    png = Path(result.paths[0])
    assert png.stat().st_mode & 0o777 == 0o600
    assert png.parent.stat().st_mode & 0o777 == 0o700  # the <YYYY-MM-DD> folder the worker made
    assert (jobs_worker.state_dir / "history.sqlite").stat().st_mode & 0o777 == 0o600
