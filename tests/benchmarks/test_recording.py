"""`python -m benchmarks` never overwrites the recorded figures by accident.

A run writes under benchmarks/out/ (or --out); only `--record`, on a full run on a quiet machine,
writes the recorded benchmarks/RESULTS.md and results.json. The suites are replaced by one fake
figure so these tests measure nothing and take no time.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

import benchmarks.__main__ as suite
from benchmarks.common import Figure

REPO = Path(__file__).resolve().parents[2]  # not `from conftest import`: several conftest modules exist


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """One fake suite; the recorded folder is a temporary copy, so a bug cannot touch the real one."""
    module = types.ModuleType("fake_bench")
    module.run = lambda quick, only: [Figure("fake_ratio", 1.01, "x", "<= 1.05", note="quick" if quick else "full")]
    monkeypatch.setitem(sys.modules, "fake_bench", module)
    monkeypatch.setattr(suite, "SUITES", [("fake_bench", "run")])
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    (recorded / "RESULTS.md").write_text("the recorded figures\n")
    (recorded / "results.json").write_text("{}")
    monkeypatch.setattr(suite, "HERE", recorded)
    monkeypatch.setattr(suite, "load_per_core", lambda: 0.0)
    return types.SimpleNamespace(recorded=recorded, out=tmp_path / "out", monkeypatch=monkeypatch)


def _untouched(recorded) -> bool:
    return ((recorded / "RESULTS.md").read_text() == "the recorded figures\n"
            and (recorded / "results.json").read_text() == "{}")


def test_a_plain_run_writes_under_out_and_leaves_the_record_alone(fake):
    assert suite.main(["--out", str(fake.out)]) == 0
    assert _untouched(fake.recorded)
    assert "fake_ratio" in (fake.out / "RESULTS.md").read_text()
    assert json.loads((fake.out / "results.json").read_text())["figures"] == {"fake_ratio": 1.01}


def test_the_default_out_folder_is_benchmarks_out():
    assert suite.OUT == REPO / "benchmarks" / "out"
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "benchmarks/out/" in ignored


@pytest.mark.parametrize("flags", [["--quick"], ["--only", "fake_ratio"]])
def test_record_refuses_a_quick_or_partial_run_before_measuring(fake, flags, capsys):
    assert suite.main(["--record", "--out", str(fake.out), *flags]) == 2
    assert _untouched(fake.recorded) and not fake.out.exists()
    assert "not recording" in capsys.readouterr().err


def test_record_refuses_a_busy_machine_and_keeps_the_figures_under_out(fake, capsys):
    loads = iter([0.0, 0.0, 1.5])  # quiet when asked, busy by the end of the run
    fake.monkeypatch.setattr(suite, "load_per_core", lambda: next(loads))
    assert suite.main(["--record", "--out", str(fake.out)]) == 0
    assert _untouched(fake.recorded)
    assert "fake_ratio" in (fake.out / "RESULTS.md").read_text()
    assert "busy" in capsys.readouterr().err


def test_record_on_a_quiet_full_run_writes_the_recorded_files(fake):
    assert suite.main(["--record", "--out", str(fake.out)]) == 0
    assert "| `fake_ratio` | 1.010 |" in (fake.recorded / "RESULTS.md").read_text()
    assert json.loads((fake.recorded / "results.json").read_text())["figures"] == {"fake_ratio": 1.01}
