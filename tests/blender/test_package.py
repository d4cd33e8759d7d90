"""`brushwork blender package`: the zip bundles the stdlib modules, installs and enables in real
Blender, and the installed add-on works (and fails in one clear line) without torch or PIL."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from brushwork import addon_package
from brushwork.addon_package import PackageError, build_extension_zip, check_stdlib_only

pytestmark = pytest.mark.xdist_group("blender-package")
REPO = Path(__file__).resolve().parents[2]
ADDON = REPO / "blender_addon" / "brushwork_blender"


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory):
    return build_extension_zip(tmp_path_factory.mktemp("pkg") / "brushwork_blender.zip")


def test_zip_holds_the_addon_and_copies_of_the_stdlib_modules(extension_zip):
    with zipfile.ZipFile(extension_zip) as zf:
        names = set(zf.namelist())
        assert "blender_manifest.toml" in names and "__init__.py" in names
        for module in addon_package.VENDORED_MODULES:
            copied = zf.read(f"vendor/brushwork/{module}.py")
            assert copied == (REPO / "sdk" / "brushwork" / f"{module}.py").read_bytes()  # one source of truth
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert "vendor/brushwork/presets/texture-seamless.toml" in names


def test_cli_command_builds_the_zip(tmp_path):
    out = tmp_path / "ext.zip"
    proc = subprocess.run([sys.executable, "-m", "brushwork", "blender", "package", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert zipfile.is_zipfile(out) and f"wrote {out}" in proc.stdout
    # the module runs on its own too (no CLI plugins needed)
    proc = subprocess.run([sys.executable, "-m", "brushwork.addon_package", "package", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    # register() is what `brushwork` itself mounts: `brushwork blender package --out X`
    parser = argparse.ArgumentParser()
    addon_package.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["blender", "package", "--out", str(tmp_path / "b.zip")])
    assert args.func(args) == 0 and zipfile.is_zipfile(tmp_path / "b.zip")


def test_cli_errors_are_one_line_and_leave_no_file(tmp_path):
    out = tmp_path / "ext.tar"
    proc = subprocess.run([sys.executable, "-m", "brushwork", "blender", "package", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "must be a .zip" in proc.stderr
    assert not out.exists()


def test_missing_module_fails_the_build_without_a_partial_zip(tmp_path):
    sdk = tmp_path / "sdk"
    sdk.mkdir()
    for module in addon_package.VENDORED_MODULES:
        if module != "client":
            (sdk / f"{module}.py").write_text("import json\n")
    (sdk / "__init__.py").write_text('__version__ = "9.9"\n')
    with pytest.raises(PackageError, match="client.py: missing"):
        build_extension_zip(tmp_path / "x.zip", sdk_dir=sdk)
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("source,message", [
    ("import torch\n", "imports torch"),
    ("def f():\n    from PIL import Image\n", "imports PIL"),
    ("from brushwork import recipe\n", "absolute import of brushwork"),
    ("from .engine import Studio\n", "imports .engine"),
    ("from ..x import y\n", "outside the package"),
    ("def broken(:\n", "does not parse"),
])
def test_heavy_or_escaping_imports_are_refused(source, message):
    with pytest.raises(PackageError, match=message):
        check_stdlib_only("mod", source)


def test_stdlib_relative_and_optional_imports_are_allowed():
    check_stdlib_only("mod", "import json, os.path\nfrom . import paths\nfrom .recipe import Recipe\n"
                             "try:\n    from PIL import Image\nexcept ImportError:\n    Image = None\n")


def test_addon_source_never_imports_torch_diffusers_or_pil():
    forbidden = {"torch", "diffusers", "transformers", "PIL", "safetensors", "PySide6"}
    for path in ADDON.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not {n.split(".")[0] for n in names} & forbidden, f"{path.name} imports {names}"


@pytest.fixture(scope="module")
def installed(bpy_run, extension_zip, tmp_path_factory):
    user = tmp_path_factory.mktemp("blender-user")
    return bpy_run("install_checks.py", str(extension_zip), env={"BLENDER_USER_RESOURCES": str(user)})


def test_extension_installs_and_enables_from_the_zip(installed):
    assert "install_error" not in installed, installed.get("install_error")
    assert installed["install_result"] == ["FINISHED"]
    assert installed["enabled"]
    assert installed["installed_under_temp"]  # never the user's real Blender folder
    assert "vendor" in installed["installed_files"]


def test_operators_and_panels_exist_with_their_idnames(installed):
    assert installed["operators"] == {name: True for name in installed["operators"]}
    assert {"generate_texture", "capture_depth", "capture_pose", "project_from_camera", "inpaint_texture",
            "cancel"} <= set(installed["operators"])
    assert installed["panels"] == [True, True]


def test_installed_addon_uses_its_vendored_copies(installed):
    assert installed["vendored"] is True
    assert installed["recipe_module"] == "bl_ext.user_default.brushwork_blender.vendor.brushwork.recipe"
    assert installed["client_module"].endswith(".vendor.brushwork.client")
    assert installed["prefs"]["output_policy"] == "BLEND" and installed["prefs"]["start_worker"] is True


def test_installed_capture_depth_operator(installed):
    size, near, far = installed["depth_image"]
    assert size == [88, 64]  # the render's 4:3 aspect, shortest side 64, multiples of 8
    assert near == pytest.approx(4.0, rel=1e-3) and far == pytest.approx(4.0, rel=1e-3)


def test_background_mode_reports_worker_failures_in_one_line(installed):
    err = installed["unreachable_error"].strip()
    assert err.count("\n") == 0 and "no worker answers at http://127.0.0.1:9" in err
    assert "Traceback" not in err
    assert installed["images_added_on_failure"] == 0


def test_remote_worker_needs_online_access_and_bad_environment_is_named(installed):
    assert "online access is off" in installed["online_error"]
    assert "'/nonexistent/brushwork-env' has no Python in it" in installed["env_error"]


def test_nothing_heavy_is_imported_in_blender(installed):
    assert installed["forbidden_loaded"] == []


def test_disable_unregisters_everything(installed):
    assert installed["disabled_clean"]


def test_operator_unhappy_paths_are_one_clear_line(installed):
    u = installed["unhappy"]
    for key, message in u.items():
        assert "\n" not in message and "Traceback" not in message, key
    assert "select the meshes to project onto" in u["project_no_selection"]
    assert "PANO cameras are not supported" in u["depth_panorama"]
    assert "PANO cameras are not supported" in u["project_panorama"]
    assert "camera 'cam' sees no surface to project onto" in u["project_sees_nothing"]
    assert "no armature to capture" in u["pose_no_armature"]
    assert "no text block named 'Brushwork Bone Map'" in u["bone_map_text_missing"]
    assert "no active camera" in u["depth_no_camera"]
    assert "no active camera to project from" in u["project_no_camera"]
    assert "'odd' is 60×64: inpainting needs sides that are multiples of 8" in u["inpaint_odd_size"]
    assert "no mask for 'wall'" in u["inpaint_no_mask"]
    assert "mask 'wall mask' is 32×32, image 'wall' is 64×64" in u["inpaint_mask_size"]
    assert "no image to inpaint" in u["inpaint_no_image"]
    assert u["cancel_nothing"] == ""
    assert "unknown preset 'no-such-preset'" in u["unknown_preset"]
    assert "'wall' was not made by Brushwork" in u["load_recipe_plain_image"]


def test_an_image_gives_its_recipe_back_to_the_panel(installed):
    assert installed["loaded_recipe"] == ["old bricks", "blur", "m1", 1234, 17, 6.5, 320, 192, "xy", "DDIM",
                                          True, 0.7, "cn-pose"]


def test_a_recipe_that_left_fields_to_its_model_keeps_the_panels_values(installed):
    assert installed["load_unset"] == ["FINISHED"]
    assert installed["loaded_unset"] == ["new bricks", 5, 17, 6.5, 320, 192, "DDIM"]


def test_presets_travel_in_the_zip_and_fill_the_panel(installed):
    assert installed["preset_settings"] == ["texture-seamless", "DPM++ 2M Karras", 30, "xy", "seam"]
    name, prompt, steps = installed["preset_recipe"]
    assert name == "texture-seamless" and steps == 30
    assert prompt.startswith("mossy stone, seamless tileable texture")
    assert installed["preset_pose"] == [True, 768]
    # the panel's strength wins; the preset's end (0.9) fills what the control left out
    assert installed["preset_pose_control"] == [0.5, 0.9]
    assert installed["preset_cleared"] == ""


def test_the_panel_takes_its_choices_and_limits_from_the_recipe(installed):
    """No copies of the Recipe's limits in the add-on: steps, CFG, sizes, samplers and all four tiling modes."""
    from brushwork import recipe

    limits = installed["panel_limits"]
    assert limits["steps"] == recipe.MAX_STEPS and limits["cfg"] == recipe.MAX_CFG
    assert limits["width"] == [recipe.MIN_SIDE, recipe.MAX_SIDE]
    assert limits["samplers"] == list(recipe.SAMPLERS)
    assert [m if m != "none" else "" for m in limits["tiling"]] == list(recipe.TILING_MODES)
