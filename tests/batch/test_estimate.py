"""The estimate's arithmetic and the memory figures it reads (no models)."""

from __future__ import annotations

import os

import pytest
from brushwork.batch.estimate import Estimate
from brushwork.batch.memory import GIB, Measure, fmt_bytes, parse_size, proc_status
from brushwork.batch.preflight import Row
from brushwork.batch.ray_runner import RayRunner
from brushwork.recipe import Recipe


def row(side: int) -> Row:
    return Row(1, "m.jsonl:1", recipe=Recipe(prompt="x", width=side, height=side, seed=1))


def test_larger_rows_scale_what_is_above_the_warm_models():
    # measured at 512²: 6 GiB resident after the row (weights), 8 GiB at the peak
    est = Estimate(Measure(3.0, 8 * GIB, 6 * GIB), 512 * 512, "512x512", limit=24 * GIB)
    assert est.bytes_for(row(512)) == 8 * GIB
    assert est.bytes_for(row(256)) == 8 * GIB  # never below what was measured
    assert est.bytes_for(row(1024)) == 6 * GIB + 4 * 2 * GIB
    assert est.refusal(row(1024)) == ""
    reason = est.refusal(row(2048))  # 6 + 16 x 2 = 38 GiB
    assert "needs about 38.0 GiB at 2048x2048" in reason and "24.0 GiB" in reason and "512x512" in reason
    assert Estimate(Measure(3.0, None, None), 1, "64x64", 1).refusal(row(4096)) == ""  # nothing measured
    assert Estimate(Measure(3.0, 8 * GIB, 6 * GIB), 1, "64x64", None).refusal(row(4096)) == ""  # no limit


def test_sizes_and_proc_figures():
    assert parse_size("24GiB") == 24 * GIB and parse_size("512 MiB") == 512 * 1024**2 and parse_size("8g") == 8 * GIB
    for bad in ("lots", "-1GiB", "3 parsecs"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert fmt_bytes(None) == "unknown" and fmt_bytes(3 * GIB // 2) == "1.5 GiB"
    status = proc_status(os.getpid())
    if status:  # Linux
        assert status["VmHWM"] >= status["VmRSS"] > 0


def test_cpu_actors_on_one_node_share_its_memory():
    runner = RayRunner()
    runner.actors = [object(), object(), object()]
    cpu = {"host": "a", "device": "cpu", "memory": 64 * GIB}
    runner.info = [cpu, dict(cpu), {"host": "b", "device": "cuda", "memory": 80 * GIB}]
    assert runner.capacity() == 32 * GIB
