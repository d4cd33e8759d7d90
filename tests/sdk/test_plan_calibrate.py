"""Calibration of the estimate (engine/calibrate.py) is robust to a busy machine: each job's time is
the least of several runs of the same job (other processes only add time), and the load is recorded
so the printed error says under what conditions it was measured. Runs one tiny job on the demo."""

from __future__ import annotations

import math

from brushwork.engine.calibrate import load_per_core, measure_job


def test_a_job_s_time_is_the_least_of_its_runs_and_the_plan_is_the_studio_s():
    row = measure_job({"width": 64, "height": 64, "steps": 2}, "cpu", repeats=2)
    assert len(row["times"]) == 2 and row["seconds"] == min(row["times"]) > 0
    assert row["plan"].width == 64 and row["plan"].steps == 2 and row["peak"] >= 0
    load = load_per_core()
    assert math.isnan(load) or load >= 0
