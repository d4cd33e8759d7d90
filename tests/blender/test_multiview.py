"""Multi-view, occlusion-aware texturing baked into the mesh's own UVs, in real bpy 5.0.1.

Truth is computed in the script (scripts/multiview_checks.py), not taken from the add-on: ray-box
occlusion, face orientation, a 3D colour field seen through Blender's ray casts, triangle
centroids of the UV map. No worker: the views' pictures are made in the script.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("blender-multiview")


@pytest.fixture(scope="module")
def checks(bpy_run):
    return bpy_run("multiview_checks.py", timeout=600)


def _no_exception(checks, step):
    assert f"{step}_exception" not in checks, checks[f"{step}_exception"]


def test_hidden_cube_faces_get_no_pixels_and_visible_ones_do(checks):
    _no_exception(checks, "occlusion")
    assert checks["occ_targets"] == ["Cube", "Plane"]
    assert checks["cube_visible_faces"] == 3
    assert checks["cube_hidden_faces_seen_texels"] == 0
    assert checks["cube_visible_faces_min_share"] > 0.95


def test_the_plane_behind_the_cube_gets_nothing_where_the_cube_hides_it(checks):
    assert checks["plane_occluded_texels"] > 500  # the shadow of the cube is a real region
    assert checks["plane_occluded_seen"] == 0
    assert checks["plane_clear_seen_share"] > 0.99
    assert checks["plane_outside_frame_seen"] == 0


def test_two_opposite_views_cover_a_sphere_without_a_seam(checks):
    _no_exception(checks, "sphere")
    assert checks["sphere_coverage"] > 0.95
    assert checks["sphere_max_colour_error"] < 0.1  # occluder/background colours never bleed in
    assert checks["sphere_boundary_pairs"] > 500
    # colour change per unit of surface across the boundary is no larger than inside one view
    assert checks["sphere_grad_across_max"] <= checks["sphere_grad_inside_max"]


def test_what_earlier_views_painted_seen_from_a_new_camera(checks):
    # the input of the next view's inpaint: painted where the first view saw, unknown elsewhere
    assert checks["known_east_share"] > 0.97
    assert checks["known_west_share"] == 0.0
    assert checks["known_background"] == 0
    assert checks["known_colour_max_err"] < 0.1


def test_the_bake_lands_in_the_meshs_own_uv_map_with_padding(checks):
    assert checks["bake_uv_layers_unchanged"]
    assert checks["bake_material_uv_maps"] == ["UVMap"]
    assert checks["bake_base_color_linked"]
    assert checks["bake_image_size"] == [256, 128]
    assert checks["bake_centroids_checked"] > 2000
    assert checks["bake_centroid_max_err"] < 0.06
    # no black texel anywhere (the field's darkest value is 0.15): no mip level averages in black
    assert checks["bake_min_value"] > 0.14
    assert checks["bake_ring_texels"] > 100 and checks["bake_ring_max_diff"] < 0.02
    assert checks["bake_unseen_filled"] > 0
    assert "filled from their neighbours" in checks["bake_report_lines"][0]


def test_every_slot_once_for_linked_duplicates_and_uvless_meshes_reported(checks):
    _no_exception(checks, "slots")
    assert checks["slot_targets"] == [["Cube", 0, "Red", 2], ["Cube", 1, "Blue", 2]]
    assert checks["slot_problems"] == [
        "Cube.002: mesh 'Cube.001' has no UV map to bake into (unwrap it, or turn on 'Unwrap meshes without UVs')"]
    assert checks["twin_only_face_seen_share"] > 0.5  # seen through the duplicate only
    assert checks["slot_materials"] == ["Blue Brushwork", "Red Brushwork"]
    assert checks["twin_materials"] == checks["slot_materials"]
    assert checks["originals_kept"]
    assert "1 problem(s)" in checks["slot_report_summary"]
    assert checks["unwrap_uv_layers"] == ["UVMap"] and checks["unwrap_problems"] == []
    assert checks["unwrap_targets"] == 1


def test_hidden_texels_keep_the_slots_existing_texture(checks):
    _no_exception(checks, "keep")
    assert checks["keep_right_max_diff_from_old"] < 0.01  # unseen: exactly what it had
    assert checks["keep_left_max_diff_from_view"] < 0.01  # seen head-on: the view's colour
    filled, kept, right = checks["keep_counts"]
    assert filled == 0 and kept >= right > 100
    assert "kept from the existing texture" in checks["keep_line"]
    assert checks["keep_material"] == "Paint Brushwork"


def test_pbr_maps_from_the_albedo_wired_into_the_principled_bsdf(checks):
    _no_exception(checks, "pbr")
    assert checks["pbr_wiring"] == ["Brushwork Roughness", "NORMAL_MAP", "TANGENT", "UVMap", "Brushwork Normal"]
    r, g, b = checks["pbr_normal_mid"]
    assert r < 0.49 and abs(g - 0.5) < 0.01 and b > 0.9
    assert checks["pbr_height_rises_with_u"] and checks["pbr_rougher_where_dark"]
    assert checks["pbr_colorspaces"] == ["Non-Color"]


def test_cycles_depth_matches_ray_cast_and_follows_render_visibility(checks):
    _no_exception(checks, "passes")
    assert checks["passes_same_misses"]
    assert checks["passes_max_rel_diff"] < 1e-3
    assert checks["passes_settings_restored"]
    assert checks["render_hidden_is_plane_depth"] < 1e-3  # hide_render: absent, like the render
    assert checks["camera_invisible_is_plane_depth"] < 1e-3  # no camera rays: absent
    assert checks["eye_hidden_in_front_of_plane"]  # hidden in the viewport only: still rendered


def test_camera_space_normal_map_in_normalbae_colours(checks):
    assert checks["normal_floor_rgb"] == pytest.approx(checks["normal_floor_truth"], abs=0.02)
    r, g, b = checks["normal_cube_front_rgb"]
    assert b > 0.85 and abs(r - 0.5) < 0.05  # facing the camera: blue
    assert checks["capture_normal_result"] == ["FINISHED"]
    assert checks["capture_normal_size"] == [72, 96]
    assert checks["capture_normal_max_diff"] < 0.5 / 255 + 1e-6  # the same picture, in 8 bits
    assert checks["capture_normal_colorspace"] == "Non-Color"


def test_orbit_views_look_at_the_selection(checks):
    _no_exception(checks, "orbit")
    assert checks["orbit_names"] == ["orbit 1", "orbit 2", "orbit 3", "orbit 4", "top"]
    assert checks["orbit_max_err"] < 1e-9
    assert checks["orbit_first_on_minus_y"]
