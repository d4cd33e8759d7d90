"""The extension manifest passes Blender's OWN validator (the ``bl_pkg`` code bundled in the bpy
package: what ``blender --command extension validate`` runs), on the source folder and on the
packaged zip, and the add-on ships under a licence the Blender Extensions platform accepts."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from brushwork.addon_package import build_extension_zip

REPO = Path(__file__).resolve().parents[2]
BLENDER_PY = REPO / ".venv-blender" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")

ADDON = REPO / "blender_addon" / "brushwork_blender"
# Licences extensions.blender.org accepts (an add-on imports bpy, so it must be GPL-compatible).
PLATFORM_LICENCES = {"SPDX:GPL-2.0-or-later", "SPDX:GPL-3.0-or-later", "SPDX:LGPL-2.1-or-later",
                     "SPDX:LGPL-3.0-or-later", "SPDX:BSD-1-Clause", "SPDX:BSD-2-Clause", "SPDX:BSD-3-Clause",
                     "SPDX:BSL-1.0", "SPDX:MIT", "SPDX:MIT-0", "SPDX:MPL-2.0", "SPDX:Pixar", "SPDX:Zlib",
                     "SPDX:CC0-1.0"}


def _bpy_scripts() -> Path:
    if not BLENDER_PY.exists():
        pytest.fail(f"{BLENDER_PY} is missing: run `./setup.sh --all`", pytrace=False)
    found = sorted((REPO / ".venv-blender").glob("lib*/python3*/site-packages/bpy/*/scripts"))
    assert found, "bpy's bundled scripts folder not found in .venv-blender"
    return found[-1]


def validate(path: Path) -> subprocess.CompletedProcess:
    scripts = _bpy_scripts()
    return subprocess.run(
        [str(BLENDER_PY), str(scripts / "addons_core/bl_pkg/cli/blender_ext.py"), "validate", str(path),
         "--valid-tags", str(scripts / "modules/_bpy_internal/extensions/tags.py")],
        capture_output=True, text=True, timeout=120)


def test_blenders_validator_accepts_the_source_folder():
    proc = validate(ADDON)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_blenders_validator_accepts_the_packaged_zip(tmp_path):
    zip_path = build_extension_zip(tmp_path / "brushwork_blender.zip")
    proc = validate(zip_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with zipfile.ZipFile(zip_path) as zf:
        assert "LICENSE" in zf.namelist()
        assert "GNU GENERAL PUBLIC LICENSE" in zf.read("LICENSE").decode()


def test_the_validator_is_real_it_refuses_a_long_tagline(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    text = (ADDON / "blender_manifest.toml").read_text("utf-8")
    manifest = tomllib.loads(text)
    (bad / "blender_manifest.toml").write_text(text.replace(manifest["tagline"], "x" * 70), "utf-8")
    (bad / "__init__.py").write_text("")
    proc = validate(bad)
    assert proc.returncode != 0 and "64 characters" in proc.stdout + proc.stderr


def test_the_addon_ships_under_a_licence_the_extensions_platform_accepts():
    manifest = tomllib.loads((ADDON / "blender_manifest.toml").read_text("utf-8"))
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(manifest["license"]) <= PLATFORM_LICENCES
    licence = (ADDON / "LICENSE").read_text("utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 3, 29 June 2007" in licence
    for text in [manifest["tagline"], *manifest.get("permissions", {}).values()]:
        assert len(text) <= 64 and text[-1] not in ".!?,;:", text
