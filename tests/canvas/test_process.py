"""The canvas as a process: it survives PySide6 6.12.0's reference bug (None/True lose a reference on
every void call / emit on Python 3.11) and never loads torch or diffusers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DESKTOP = Path(__file__).resolve().parents[2] / "desktop"

SCRIPT = """
import sys
sys.path.insert(0, {desktop!r})
from PySide6.QtCore import QObject
QObject()  # Qt loaded, guard not yet applied: how many references do None and True have?
calls = 2 * max(sys.getrefcount(None), sys.getrefcount(True))  # enough to kill an unguarded app
if {guard}:
    import brushwork_canvas  # applies the guard
from PySide6.QtCore import QObject, Signal, QTimer
from PySide6.QtWidgets import QApplication

class Source(QObject):
    changed = Signal(str)

app = QApplication([])
src, timer = Source(), QTimer()
for _ in range(calls):
    src.changed.emit("x")
    timer.stop()
print("survived", calls)
"""


def run(guard: bool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(desktop=str(DESKTOP), guard=guard)],
                          capture_output=True, text=True, timeout=120,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})


def test_the_app_survives_more_calls_than_none_and_true_have_references():
    proc = run(guard=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "survived" in proc.stdout


def test_the_guard_is_what_saves_it_where_the_bug_exists():
    from brushwork_canvas import qtcompat

    if not any(qtcompat.STEALS.values()):
        pytest.skip("this PySide6/Python does not have the reference bug")
    proc = run(guard=False)
    assert proc.returncode != 0 and "dealloc" in proc.stderr


def test_the_canvas_process_never_loads_torch_or_diffusers(tmp_path):
    script = f"""
import sys
sys.path.insert(0, {str(DESKTOP)!r})
from PySide6.QtWidgets import QApplication
app = QApplication([])
from brushwork_canvas.app import build
win = build(width=64, height=64, restore=False)
win.session.run("generate")  # builds a recipe with presets; the job fails (no worker), no matter
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "PIL") if m in sys.modules)
print("heavy:", heavy)
"""
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "BRUSHWORK_HOME": str(tmp_path),
           "BRUSHWORK_WORKER_URL": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "heavy: []" in proc.stdout
