"""Canvas tests run Qt offscreen; the canvas package is importable from the source tree."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The editable install predates desktop/brushwork_canvas on some machines: import from source.
_DESKTOP = str(Path(__file__).resolve().parents[2] / "desktop")
if _DESKTOP not in sys.path:
    sys.path.insert(0, _DESKTOP)


import pytest  # noqa: E402


@pytest.fixture
def doc(qapp):
    from brushwork_canvas.document import Document

    return Document(64, 64)


@pytest.fixture
def window(qtbot, qapp):
    """The real main window on an empty 128x128 document, with no worker behind it yet."""
    from brushwork_canvas.app import build

    win = build(width=128, height=128, restore=False)
    qtbot.addWidget(win)
    win.resize(1100, 760)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.session.set_live(False)
    assert win.session.runner.shutdown(10000)
