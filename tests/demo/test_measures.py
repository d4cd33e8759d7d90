"""The pattern and colour measures the meaning tests use, checked on pictures whose truth we know:
the procedural training textures (and on what must fail them)."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork.demo import dataset, measures


@pytest.mark.parametrize("colour", list(dataset.COLOURS))
def test_every_training_colour_is_named_right(colour):
    rng = np.random.default_rng(3)
    for pattern in dataset.PATTERNS:
        for _ in range(3):
            image = dataset.texture_image(colour, pattern, 64, rng)
            assert measures.colour_name(image) == colour, (pattern, measures.mean_rgb(image))


def test_grey_is_no_colour():
    assert measures.colour_name(np.full((8, 8, 3), 0.5, np.float32)) is None


@pytest.mark.parametrize("pattern", measures.MEASURED_PATTERNS)
def test_training_patterns_pass_their_measure(pattern):
    rng = np.random.default_rng(4)
    for colour in dataset.COLOURS:
        for _ in range(3):
            ok, figures = measures.pattern_ok(pattern, dataset.texture_image(colour, pattern, 64, rng))
            assert ok, f"{colour} {pattern}: {figures}"


def test_each_measured_pattern_passes_only_its_own_measure():
    """A brick wall is no checker and no tile floor (a generated "checker" that drew bricks passed
    the first measure, which asked only for equal periods along both axes)."""
    rng = np.random.default_rng(11)
    for truth in measures.MEASURED_PATTERNS:
        for colour in dataset.COLOURS:
            image = dataset.texture_image(colour, truth, 64, rng)
            passed = [p for p in measures.MEASURED_PATTERNS if measures.pattern_ok(p, image)[0]]
            assert passed == [truth], f"{colour} {truth} passes {passed}: {measures.pattern_ok(truth, image)[1]}"


def test_the_grid_and_opposition_figures_mean_what_they_say():
    size = 64
    u = np.arange(size, dtype=np.float32) / size
    checker = ((np.floor(u * 4)[None, :] + np.floor(u * 4)[:, None]) % 2).astype(np.float32)
    assert measures.half_period_opposition(np.repeat(checker[..., None], 3, 2), "x", 32) < -0.9
    grid = np.ones((size, size), np.float32)
    grid[::16, :] = 0
    grid[:, ::16] = 0
    assert measures.aligned_joints(np.repeat(grid[..., None], 3, 2), "x") > 0.9
    offset = grid.copy()
    offset[:, ::16] = 1
    for course in range(4):  # bricks: each course's joints half a brick from the last one's
        offset[course * 16 + 1:(course + 1) * 16, (course % 2) * 8::16] = 0
    assert 0.3 < measures.aligned_joints(np.repeat(offset[..., None], 3, 2), "x") < 0.7


def test_the_measures_can_fail():
    rng = np.random.default_rng(5)
    for other in ("wood", "marble", "noise"):  # planks and clouds are not bricks, checkers or tiles
        image = dataset.texture_image("red", other, 64, rng)
        assert not any(measures.pattern_ok(p, image)[0] for p in ("bricks", "checker", "tiles")), other
    u = np.arange(64, dtype=np.float32) / 64
    stripes = np.repeat((np.sin(2 * np.pi * 4 * u)[None, :] > 0)[..., None], 3, axis=2).astype(np.float32)
    assert measures.pattern_ok("stripes", stripes)[0]
    assert not measures.pattern_ok("bricks", stripes)[0]  # one axis only: planks, not bricks
    assert not measures.pattern_ok("checker", stripes)[0]
    assert not measures.pattern_ok("stripes", stripes * stripes.transpose(1, 0, 2))[0]  # a grid


def test_checker_periods_are_equal_on_both_axes():
    rng = np.random.default_rng(6)
    p = measures.periodicity(dataset.texture_image("white", "checker", 64, rng))
    assert p["x"].period == p["y"].period == 32  # 16 px cells: the pattern repeats every 2 cells


def test_bricks_have_vertical_joints_in_the_training_data():
    """Issue 19: 'planks, not bricks'. Each training brick row repeats along x (the joints)."""
    rng = np.random.default_rng(7)
    for _ in range(10):
        p = measures.periodicity(dataset.texture_image("red", "bricks", 64, rng))
        assert p["x"].strength > 0.5 and p["y"].strength > 0.5


def test_captions_use_the_presets_wording_and_negatives_are_preset_words():
    rng = np.random.default_rng(8)
    captions = [dataset.caption_for("red", "bricks", rng) for _ in range(200)]
    assert any(c.endswith(dataset.PRESET_SUFFIXES[0]) for c in captions)
    from brushwork.presets import load_preset

    assert load_preset("texture-seamless").prompt_suffix == dataset.PRESET_SUFFIXES[0]
    negative = dataset.random_negative(rng)
    assert negative and all(word.strip() in dataset.NEGATIVE_WORDS for word in negative.split(","))


def test_claims_are_only_what_held_in_every_case():
    from brushwork.demo.evaluate import claims_from

    def case(colour, pattern, colour_ok, pattern_ok):
        return {"colour": colour, "pattern": pattern, "colour_ok": colour_ok, "pattern_ok": pattern_ok}

    cases = [case(c, p, c != "green" or p != "tiles", not (p == "stripes" and c == "red"))
             for c in dataset.COLOURS for p in measures.MEASURED_PATTERNS for _ in (1, 2)]
    claims = claims_from({"cases": cases, "colour_right": "x", "pattern_right": "y"})
    assert "green" not in claims["colours"] and "red" in claims["colours"]
    # red stripes failed once: stripes are claimed in every other colour, the rest in all of them
    assert claims["patterns"]["stripes"] == [c for c in dataset.COLOURS if c != "red"]
    assert claims["patterns"]["bricks"] == list(dataset.COLOURS)
    nothing = [case(c, p, True, p != "checker") for c in dataset.COLOURS for p in measures.MEASURED_PATTERNS]
    assert "checker" not in claims_from({"cases": nothing, "colour_right": "x", "pattern_right": "y"})["patterns"]
