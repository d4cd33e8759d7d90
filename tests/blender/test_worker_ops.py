"""The add-on's operators against a REAL worker process with the tiny models, in real bpy.

The Blender process starts the worker itself, with the python of the Brushwork environment set
in the add-on's preferences (this repo's .venv; BRUSHWORK_MODEL_DIRS = the tiny models), then runs
every check against it; each test asserts one behaviour from the shared RESULT. The worker outlives
its clients on purpose, so the fixture stops it (SIGTERM) at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.xdist_group("blender-worker"), pytest.mark.slow]


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checks(bpy_run, addon_session):
    s = addon_session
    try:
        result = bpy_run("worker_checks.py", str(s.zip_path), s.environment, str(s.workdir), env=s.env, timeout=300)
    finally:
        alive = s.stop_worker()
    result["worker_alive"] = alive
    try:
        result["worker_log"] = (s.home / "state" / "worker.log").read_text(errors="replace")[-2000:]
    except OSError:
        result["worker_log"] = ""
    return result


def _no_exception(checks, step):
    assert f"{step}_exception" not in checks, f"{checks[step + '_exception']}\n{checks['worker_log']}"


def test_no_worker_and_autostart_off_is_one_clear_line(checks):
    _no_exception(checks, "no_start")
    assert "no worker is running" in checks["no_start_error"]
    assert checks["no_start_error"].strip().count("\n") == 0
    assert checks["no_start_worker_json"] is False


def test_worker_started_with_the_python_of_the_environment_in_preferences(checks):
    _no_exception(checks, "unsaved")
    assert Path(checks["worker_python"]).parent == REPO / ".venv" / "bin"


def test_generate_texture_unsaved_blend_packs_the_image_with_its_recipe(checks):
    _no_exception(checks, "unsaved")
    assert checks["unsaved_result"] == ["FINISHED"]
    assert checks["unsaved_packed"] is True
    assert checks["unsaved_size"] == [64, 64]
    assert checks["unsaved_recipe"] == {"prompt": "red bricks", "model": "tiny-sd15", "seed": 5, "steps": 2,
                                        "width": 64, "height": 64}


def test_generate_texture_saved_blend_writes_next_to_it(checks):
    _no_exception(checks, "saved")
    assert checks["saved_filepath"].startswith("//brushwork/")
    assert checks["saved_file_exists"] and checks["saved_png_magic"]
    assert checks["saved_folder_files"] == ["Cube-texture.png"]
    assert checks["saved_tiling"] == "xy"


def test_depth_and_pose_from_the_scene_condition_one_texture(checks):
    _no_exception(checks, "pose")
    assert checks["pose_result"] == ["FINISHED"]
    assert checks["pose_kinds"] == ["depth", "pose"]
    assert checks["pose_seen"] == 3  # neck and both shoulders


def test_project_from_camera_makes_uv_map_material_and_depth_conditioned_image(checks):
    _no_exception(checks, "project")
    assert checks["project_result"] == ["FINISHED"]
    assert checks["project_uv_on_both"] == [True, True]
    lo, hi = checks["project_uv_range"]
    # the cube's top face is the widest part the camera sees; the sides are narrower (farther)
    want_lo, want_hi = checks["project_uv_expected_extent"]
    assert lo == pytest.approx(want_lo, abs=1e-4) and hi == pytest.approx(want_hi, abs=1e-4)
    assert checks["project_material_uv"] == ["Brushwork Projection"]
    assert checks["project_same_image_on_floor"]
    assert checks["project_depth_control"] == {"width": 64, "height": 64, "format": "f32le"}
    assert checks["project_depth_ref"] == "sha256:"
    near, far = checks["project_depth_near_far"]
    assert near == pytest.approx(7.0, rel=1e-3) and far == pytest.approx(9.0, rel=1e-3)


def test_project_with_bake_to_existing_uvs(checks):
    _no_exception(checks, "bake")
    assert checks["bake_uv_map"] == ["UVMap"]
    name, size, has_recipe = checks["bake_image"]
    assert name == "Cube-baked" and size == [64, 64] and has_recipe
    assert checks["bake_nonblack"] > 0.0


def test_inpaint_repaints_only_the_masked_half(checks):
    _no_exception(checks, "inpaint")
    assert checks["inpaint_result"] == ["FINISHED"]
    assert checks["inpaint_image_made"] and checks["inpaint_recipe_task"]
    assert checks["inpaint_left_max_diff"] <= 1.0  # outside the mask: the original, exactly (8-bit)
    assert checks["inpaint_right_mean_diff"] > 5.0  # inside: repainted


def test_ui_path_returns_at_once_and_the_pump_applies_progress_and_result(checks):
    _no_exception(checks, "async")
    assert checks["async_return_seconds"] < 1.0
    assert checks["async_active_after_return"] == 1
    assert checks["async_outcome"] == ["", False, 1]
    assert checks["async_total"] == 3 and 1 <= checks["async_steps_seen_max"] <= 3
    assert checks["async_preview"]  # step previews reach the 'Brushwork Preview' image


def test_cancel_stops_the_job_and_adds_no_image(checks):
    _no_exception(checks, "async")
    error, cancelled = checks["cancel_outcome"]
    assert cancelled is True
    assert checks["cancel_step_reached"] < 200
    assert checks["cancel_images_added"] == []
    assert checks["worker_alive"]


def test_recover_results_imports_a_job_finished_while_blender_was_away(checks):
    _no_exception(checks, "recover")
    assert len(checks["recover_added"]) == 1 and checks["recover_added"][0].startswith("recovered")
    assert checks["recover_recipe_prompt"] == ["lost job"]
    assert checks["recover_again_added"] == []


def test_blender_never_loads_torch_diffusers_or_pil(checks):
    assert checks["forbidden_loaded"] == []
