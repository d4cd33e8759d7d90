"""The canvas-start check: which libraries Qt's xcb plugin lacks and exactly what to install."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from brushwork.demo import commands, qt_libs


def fake_qt(tmp_path: Path, ldd_output: str) -> tuple[Path, str]:
    qt = tmp_path / "Qt"
    (qt / "plugins" / "platforms").mkdir(parents=True)
    (qt / "lib").mkdir()
    (qt / "plugins" / "platforms" / "libqxcb.so").write_bytes(b"\x7fELF")
    ldd = tmp_path / "ldd"
    ldd.write_text(f"#!/bin/sh\ncat <<'OUT'\n{ldd_output}\nOUT\n")
    ldd.chmod(0o755)
    return qt, str(ldd)


def test_missing_libraries_are_named_with_their_debian_packages(tmp_path, monkeypatch):
    qt, ldd = fake_qt(tmp_path, "\tlibxcb.so.1 => /usr/lib/libxcb.so.1 (0x1)\n"
                                "\tlibxcb-icccm.so.4 => not found\n\tlibxcb-keysyms.so.1 => not found\n"
                                "\tlibxcb-icccm.so.4 => not found")
    monkeypatch.setattr(qt_libs.ctypes.util, "find_library", lambda name: None)  # no libxcb-cursor either
    missing = qt_libs.missing_libraries(qt, ldd)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"]
    assert qt_libs.advice(missing) == "sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1"


def test_nothing_missing_means_nothing_to_install(tmp_path, monkeypatch):
    qt, ldd = fake_qt(tmp_path, "\tlibxcb.so.1 => /usr/lib/libxcb.so.1 (0x1)")
    monkeypatch.setattr(qt_libs.ctypes.util, "find_library", lambda name: f"lib{name}.so.0")
    assert qt_libs.missing_libraries(qt, ldd) == []


@pytest.mark.parametrize("soname, package", [("libxcb-render-util.so.0", "libxcb-render-util0"),
                                             ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
                                             ("libxcb-foo.so.2", "libxcb-foo2"), ("libfoo2.so.1", "libfoo2-1")])
def test_package_names(soname, package):
    assert qt_libs.package_for(soname) == package


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None, reason="Linux + ldd")
def test_the_real_check_agrees_with_ldd_on_this_machine():
    plugin = qt_libs.qt_dir() / "plugins" / "platforms" / "libqxcb.so"
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    lacking = {line.split()[0] for line in out.splitlines() if "not found" in line}
    ok, line = qt_libs.check()
    assert lacking <= set(qt_libs.missing_libraries())
    assert ok == (not qt_libs.missing_libraries())
    for soname in lacking:
        assert soname in line and qt_libs.package_for(soname) in line


def test_doctor_reports_it_as_a_warning_with_the_command(monkeypatch):
    monkeypatch.setattr(qt_libs, "missing_libraries", lambda: ["libxcb-cursor.so.0"])
    monkeypatch.setattr(qt_libs.sys, "platform", "linux")
    check = commands._canvas_libraries()
    assert check.status == commands.WARN
    assert "sudo apt install libxcb-cursor0" in check.detail
