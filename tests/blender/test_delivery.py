"""A job's result lands where it was asked for and nothing is lost — real bpy 5.0.1, the packaged
add-on and a REAL worker (tiny models). The interactive path is driven from the script (the pump
the timer would call, Blender's own load_post/undo handlers, real undo/redo); a second Blender
session recovers a job that a crashed one (os._exit, never saved) had started."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.xdist_group("blender-worker"), pytest.mark.slow]


@pytest.fixture(scope="module")
def checks(bpy_run, addon_session):
    s = addon_session
    args = (str(s.zip_path), s.environment, str(s.workdir))
    try:
        result = bpy_run("delivery_checks.py", "one", *args, env=s.env, timeout=400)
        result.update(bpy_run("delivery_checks.py", "two", *args, env=s.env, timeout=300))
    finally:
        s.stop_worker()
    return result


def _ok(checks, step):
    assert f"{step}_exception" not in checks, checks[f"{step}_exception"]


def test_a_renamed_object_gets_its_result_not_the_one_that_took_its_name(checks):
    _ok(checks, "rename")
    assert checks["rename_on_renamed"] is True, checks.get("rename_outcome")
    assert checks["rename_on_namesake"] is False


def test_opening_another_file_mid_job_never_writes_into_it(checks):
    _ok(checks, "switch")
    assert checks["switch_b_cube_image"] is False  # B's own "Cube" untouched
    assert checks["switch_b_images"] == []
    assert checks["switch_b_folder"] is False  # no PNG beside B.blend
    assert checks["switch_pending"] == 1
    assert "kept for A.blend" in checks["switch_note"]


def test_the_kept_result_lands_when_its_file_is_opened_again(checks):
    _ok(checks, "switch")
    assert checks["switch_a_new_image"] is True and checks["switch_a_file"] is True
    assert checks["switch_pending_after"] == 0


def test_a_deleted_target_keeps_the_result_and_undo_brings_both_back(checks):
    _ok(checks, "gone")
    assert "no longer in this file" in checks["gone_note"]
    assert checks["gone_kept_fake_user"] == [True]
    assert checks["gone_pending"] == 1
    assert checks["gone_back_with_result"] is True
    assert checks["gone_pending_after"] == 0


def test_a_result_applied_by_the_timer_is_its_own_undo_step(checks):
    _ok(checks, "undo")
    assert checks["undo_applied"] is True
    assert checks["undo_edit_kept"] is True  # undo took back the result, not the artist's edit with it
    assert checks["undo_result_gone"] is True
    assert checks["redo_result_back"] is True


def test_operators_say_what_they_did_and_could_not(checks):
    _ok(checks, "reports")
    assert "material slot 2" in checks["slots_note"] and "other 2 slot(s) are unchanged" in checks["slots_note"]
    assert checks["slots_materials"][0] == "slot0" and checks["slots_materials"][2] == "slot2"
    assert checks["slots_old_kept"] is True
    assert "'Bare' has no UV map" in checks["no_uv_error"] and checks["no_uv_material"] == 0
    assert "select a mesh object" in checks["nothing_error"]
    assert "select the meshes to project onto" in checks["nothing_project_error"]
    assert "no worker answers at http://127.0.0.1:9" in checks["worker_gone_error"]
    assert "no finished results to recover" in checks["recover_nothing_note"]
    assert "failed: no worker answers at http://127.0.0.1:9" in checks["worker_gone_interactive"]
    assert checks["worker_gone_records_left"] == 0
    for key in ("no_uv_error", "nothing_error", "worker_gone_error"):
        assert "\n" not in checks[key].strip() and "Traceback" not in checks[key]


def test_camera_space_controls_are_refused_for_uv_textures_and_use_the_render_aspect(checks):
    _ok(checks, "camera_space")
    assert "'Depth from camera' is a camera view" in checks["uv_depth_error"]
    assert "Project From Camera" in checks["uv_depth_error"]
    w, h = checks["project_depth_size"]
    assert w > h and abs(w / h - 16 / 9) < 0.1  # the render's 16:9, not the square panel size
    assert checks["project_image_size"] == [w, h]


def test_the_depth_a_projection_recipe_refers_to_is_kept_exactly_in_the_blend(checks):
    _ok(checks, "camera_space")
    assert checks["project_depth_kept"] == [True]  # its bytes hash to the Recipe's sha256: reference


def test_inpaint_keeps_the_previous_picture_and_the_mask_through_save_and_reload(checks):
    _ok(checks, "inpaint")
    assert checks["inpaint_old_kept"] is True
    assert checks["inpaint_old_same_pixels"] == 0.0
    assert checks["inpaint_mask_kept"] == pytest.approx(1.0)  # the live mask, as repainted afterwards
    assert checks["inpaint_used_mask"] == [pytest.approx(1.0)]  # the mask the Recipe used, exactly
    assert checks["inpaint_init_ref_on_old"] is True
    assert checks["inpaint_material_shows"] == "wall-inpaint"
    assert checks["inpaint_previous_back"] == "wall"
    assert checks["inpaint_new_still_there"] is True


def test_the_client_key_is_saved_with_the_file_and_in_preferences(checks):
    _ok(checks, "key")
    assert checks["key_saved_with_file"] is True
    assert checks["key_in_prefs"] is True


def test_a_job_of_a_crashed_session_is_recovered_onto_its_object_in_another_session(checks):
    _ok(checks, "crash")
    assert checks["crash_file_key_before"] is False  # the file was never saved with its key
    assert checks["crash_applied_prompt"] == "lost in a crash"
    assert "recovered 1 result(s) onto their targets" in checks["crash_note"]
    assert checks["crash_records_left"] == 0
    assert "no finished results to recover" in checks["crash_again_note"]


def test_blender_never_loads_torch_diffusers_or_pil(checks):
    assert checks["forbidden_loaded"] == []
