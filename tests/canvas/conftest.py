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
