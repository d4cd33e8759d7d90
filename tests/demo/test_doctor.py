"""``brushwork doctor`` and the demo package's import promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from brushwork.demo import commands

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_demo_package_and_its_commands_imports_no_torch():
    code = ("import sys, brushwork.demo, brushwork.demo.commands, brushwork.demo.manifest; "
            "brushwork.demo.weights_dir(); brushwork.demo.info(); "
            "print(sorted(m for m in ('torch', 'diffusers', 'numpy', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_doctor_passes_and_writes_nothing_outside_a_temp_dir(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "BRUSHWORK_HOME": str(home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "brushwork.cli", "doctor", "--json"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["generation"]["status"] == "ok" and "1 step at 64x64" in by_name["generation"]["detail"]
    assert by_name["demo model"]["status"] == "ok"
    assert "not running" in by_name["worker"]["detail"]
    assert not home.exists(), "doctor wrote into BRUSHWORK_HOME"
    assert list(tmp_path.iterdir()) == [], "doctor wrote into the working folder"


def test_doctor_reports_a_broken_import_and_fails(monkeypatch, capsys):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "diffusers":
            raise ImportError("libsomething.so: cannot open shared object file")
        return real(name, *a, **k)

    monkeypatch.setattr(commands.importlib, "import_module", fake)
    checks = commands.run_checks(generate=True)
    by_name = {c.name: c for c in checks}
    assert by_name["diffusers"].status == commands.FAIL and "libsomething" in by_name["diffusers"].detail
    assert by_name["device"].status == commands.FAIL and "skipped" in by_name["device"].detail
    assert by_name["generation"].status == commands.FAIL


def test_doctor_text_report_and_exit_code(monkeypatch, capsys):
    monkeypatch.setattr(commands, "run_checks", lambda **kw: [
        commands.Check("python", commands.OK, "3.11"), commands.Check("demo model", commands.FAIL, "missing")])

    class Args:
        device, json, no_generate = None, False, True

    assert commands.cmd_doctor(Args()) == 1
    out = capsys.readouterr().out
    assert "FAIL  demo model" in out and "1 problem(s): demo model" in out


def test_doctor_with_a_missing_demo_model_says_how_to_get_it(monkeypatch):
    import brushwork.demo as demo

    monkeypatch.setattr(demo, "weights_dir", lambda: None)
    check = commands._demo_model()
    assert check.status == commands.FAIL and "python -m brushwork.demo.train" in check.detail
