"""Can the canvas start on this Linux desktop? Qt's xcb platform plugin and the system libraries
it needs (``python -m brushwork.demo.qt_libs``; ``brushwork doctor`` runs the same check).

PySide6 wheels bring Qt but not the X11 helper libraries its xcb plugin links to; a stock Debian
or Ubuntu desktop lacks some (``libxcb-cursor0``, ``libxcb-icccm4``, ``libxcb-keysyms1`` ...) and
the canvas then aborts with "Could not load the Qt platform plugin xcb". This finds which are
missing without starting Qt: ``ldd`` on the plugin and its xcb library (what the loader would not
find), plus ``libxcb-cursor``, which Qt 6.5+ opens at run time so ``ldd`` cannot see it, and
names the packages to install.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Debian/Ubuntu package of each library the xcb plugin may need (sonames as ldd prints them).
PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
# Opened with dlopen by Qt 6.5+, so not in the plugin's link table: asked for by name.
RUNTIME_ONLY = {"xcb-cursor": "libxcb-cursor.so.0"}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def package_for(soname: str) -> str:
    """The Debian package that ships ``soname`` (a table, else the usual naming rule)."""
    if soname in PACKAGES:
        return PACKAGES[soname]
    match = re.match(r"lib(.+)\.so\.(\d+)", soname)
    if not match:
        return soname
    name, major = match.group(1).lower(), match.group(2)
    return f"lib{name}{'-' if name[-1].isdigit() else ''}{major}"


def qt_dir() -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "Qt"


def missing_libraries(qt: Path | None = None, ldd: str | None = None) -> list[str]:
    """Sonames the xcb plugin needs that this system lacks (empty: the canvas can start on X11)."""
    qt = qt or qt_dir()
    missing: list[str] = []
    if qt is not None:
        ldd = ldd or shutil.which("ldd")
        targets = [qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))[:1]]
        for target in targets:
            if ldd and target.is_file():
                try:
                    out = subprocess.run([ldd, str(target)], capture_output=True, text=True, timeout=30).stdout
                except (OSError, subprocess.TimeoutExpired):
                    continue
                for name in _NOT_FOUND.findall(out):
                    if name not in missing:
                        missing.append(name)
    for name, soname in RUNTIME_ONLY.items():
        if ctypes.util.find_library(name) is None and soname not in missing:
            missing.append(soname)
    return missing


def advice(missing: list[str]) -> str:
    packages = sorted({package_for(s) for s in missing})
    return f"sudo apt install {' '.join(packages)}"


def check() -> tuple[bool, str]:
    """(ok, one line) for doctor and setup: what is missing and exactly what to install."""
    if not sys.platform.startswith("linux"):
        return True, "not Linux: Qt brings its own platform plugin"
    if qt_dir() is None:
        return False, "PySide6 is not installed (the canvas needs it)"
    missing = missing_libraries()
    if not missing:
        return True, "Qt's xcb platform plugin finds every library it needs"
    return False, (f"the canvas cannot start on X11: Qt's xcb plugin lacks {', '.join(missing)}; "
                   f"on Debian/Ubuntu: {advice(missing)}")


def main() -> int:
    ok, line = check()
    print(f"brushwork canvas: {line}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
