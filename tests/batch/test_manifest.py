"""Manifests: the three formats, expansion into rows, presets, and the identity of a row (no models)."""

from __future__ import annotations

import pytest
from batch_helpers import TINY, write_jsonl
from brushwork.batch.identity import derived_seed, output_name, recipe_hash
from brushwork.batch.manifest import ManifestError, read_manifest
from brushwork.batch.preflight import FAILED, RUN, plan_rows
from brushwork.recipe import Recipe


def plan(tmp_path, manifest, **kw):
    return plan_rows(read_manifest(manifest), tmp_path / "out", manifest.parent, **kw)


def test_prompts_seeds_and_models_expand_into_one_row_each(tmp_path):
    m = write_jsonl(tmp_path / "m.jsonl", [{**TINY, "prompts": ["moss", "bark"], "seeds": "1-3",
                                             "models": ["tiny-sd15", "other"]}])
    entries = read_manifest(m)
    assert len(entries) == 12
    combos = {(e.fields["prompt"], e.fields["model"], e.fields["seed"]) for e in entries}
    assert len(combos) == 12 and ("bark", "other", 3) in combos
    assert entries[0].where == "m.jsonl:1 [prompt 1, model 1, seed 1]"


def test_batch_n_becomes_n_rows_with_consecutive_seeds(tmp_path):
    m = write_jsonl(tmp_path / "m.jsonl", [{**TINY, "prompt": "a", "batch": 3, "seed": 10},
                                            {**TINY, "prompt": "b", "batch": 2}])
    rows = plan(tmp_path, m)
    assert [r.recipe.seed for r in rows[:3]] == [10, 11, 12]
    assert all(r.recipe.batch == 1 for r in rows)
    # No seed: one derived from the recipe (the same on every run), then + i.
    assert rows[4].recipe.seed == rows[3].recipe.seed + 1
    assert plan(tmp_path, m)[3].recipe.seed == rows[3].recipe.seed


def test_csv_rows_with_lists_ranges_and_json_controls(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("prompts,seeds,steps,cfg,width,height,model,loras\n"
                 "moss|bark,1-2,3,5,64,64,tiny-sd15,\n"
                 "stone,7,4,6.5,64,64,tiny-sd15,lora-tiny:0.5\n"
                 "broken,x,3,5,64,64,tiny-sd15,\n", encoding="utf-8")
    rows = plan(tmp_path, m)
    assert [(r.recipe.prompt, r.recipe.seed) for r in rows[:5]] == [("moss", 1), ("moss", 2), ("bark", 1),
                                                                    ("bark", 2), ("stone", 7)]
    assert rows[4].recipe.cfg == 6.5 and rows[4].recipe.loras[0].weight == 0.5
    assert rows[5].status == FAILED and "seeds" in rows[5].reason and rows[5].where == "m.csv:4"


def test_toml_defaults_under_rows_and_a_preset_applied(tmp_path):
    m = tmp_path / "m.toml"
    m.write_text('[defaults]\nmodel = "tiny-sd15"\nsteps = 3\nwidth = 64\nheight = 64\n\n'
                 '[[rows]]\nprompt = "moss"\nseeds = [1, 2]\n\n'
                 '[[rows]]\npreset = "texture-seamless"\nprompt = "bark"\nseed = 5\n', encoding="utf-8")
    rows = plan(tmp_path, m)
    assert len(rows) == 3 and all(r.status == RUN for r in rows)
    textured = rows[2].recipe
    # the preset's suffix, tiling and sampler; the row's (and defaults') fields win over the preset's
    assert textured.prompt.startswith("bark, seamless tileable texture") and textured.tiling == "xy"
    assert textured.sampler == "DPM++ 2M Karras" and textured.steps == 3 and textured.preset == "texture-seamless"


def test_a_whole_recipe_keeps_its_recorded_preset_without_applying_it_again(tmp_path):
    made = Recipe(prompt="bark, seamless tileable texture", preset="texture-seamless", seed=3, **TINY)
    m = write_jsonl(tmp_path / "m.jsonl", [{"recipe": made.to_dict()}])
    [row] = plan(tmp_path, m)
    assert row.recipe.prompt == made.prompt and row.recipe.tiling == ""


def test_each_bad_entry_fails_alone_with_its_reason(tmp_path):
    m = write_jsonl(tmp_path / "m.jsonl", [
        {**TINY, "prompt": "fine", "seed": 1},
        "{not json",
        [1, 2],
        {**TINY, "width": 65},
        {**TINY, "preset": "no-such-preset"},
        {**TINY, "colour": "red"},
        {**TINY, "seeds": "9-1"},
        {**TINY, "seeds": [1], "seed": 2},
        {**TINY, "init_image": "missing.png", "strength": 0.5},
        {**TINY, "init_image": "sha256:" + "0" * 64, "strength": 0.5},
        {**TINY, "width": 8192},
    ])
    rows = plan(tmp_path, m, missing=lambda refs: refs)
    assert rows[0].status == RUN
    reasons = [r.reason for r in rows[1:]]
    assert all(r.status == FAILED for r in rows[1:]), reasons
    for reason, expected in zip(reasons, ["not valid JSON", "a row is a JSON object", "multiple of 8",
                                          "unknown preset", "colour: unknown field", "runs backwards",
                                          "either seed or seeds", "no such file", "not in the asset store",
                                          "between 64 and 4096"], strict=True):
        assert expected in reason
        assert "\n" not in reason


def test_unreadable_pictures_and_a_mask_of_another_size_fail_before_any_model(tmp_path, picture):
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    from PIL import Image

    Image.new("L", (32, 32), 255).save(tmp_path / "small-mask.png")
    m = write_jsonl(tmp_path / "m.jsonl", [
        {**TINY, "init_image": "junk.png", "strength": 0.5},
        {**TINY, "init_image": "init.png", "mask": "small-mask.png"},
        {**TINY, "init_image": "init.png", "strength": 0.5, "seed": 1},
    ])
    rows = plan(tmp_path, m)
    assert rows[0].status == FAILED and "junk.png" in rows[0].reason
    assert rows[1].status == FAILED and "32x32" in rows[1].reason and "64x64" in rows[1].reason
    # A good input is read once, by path relative to the manifest, and travels by content hash.
    ok = rows[2]
    assert ok.status == RUN and ok.recipe.init_image.startswith("sha256:")
    assert ok.blobs[ok.recipe.init_image] == picture.resolve()


def test_missing_or_unknown_manifests_are_one_error(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "m.yaml").write_text("x", encoding="utf-8")
    with pytest.raises(ManifestError, match=".jsonl, .json, .csv or .toml"):
        read_manifest(tmp_path / "m.yaml")
    (tmp_path / "m.toml").write_text("[[rows]\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="not valid TOML"):
        read_manifest(tmp_path / "m.toml")


def test_the_hash_follows_the_recipe_not_its_spelling():
    a = Recipe(prompt="x", cfg=7, seed=1, **{k: v for k, v in TINY.items() if k != "cfg"})
    b = Recipe.from_json(a.to_json().replace('"cfg": 7', '"cfg": 7.0'))
    assert recipe_hash(a) == recipe_hash(b)
    assert recipe_hash(a) != recipe_hash(a.replace(seed=2)) != recipe_hash(a.replace(prompt="y"))
    assert output_name(a) == recipe_hash(a)[:16] + ".png"
    assert output_name(a, "bricks").startswith("bricks-")
    assert derived_seed(a) == derived_seed(a.replace(seed=99))  # the seed itself is not part of it


def test_the_same_content_under_two_paths_is_one_row(tmp_path, picture):
    other = tmp_path / "sub" / "copy.png"
    other.parent.mkdir()
    other.write_bytes(picture.read_bytes())
    m = write_jsonl(tmp_path / "m.jsonl", [{**TINY, "init_image": "init.png", "strength": 0.5, "seed": 1},
                                            {**TINY, "init_image": "sub/copy.png", "strength": 0.5, "seed": 1}])
    a, b = plan(tmp_path, m)
    assert a.output == b.output


def test_a_json_file_may_hold_one_array_of_rows(tmp_path):
    m = tmp_path / "m.json"
    m.write_text('[{"prompt": "a", "seeds": [1, 2]}, 3]', encoding="utf-8")
    entries = read_manifest(m)
    assert [e.fields.get("seed") for e in entries[:2]] == [1, 2]
    assert entries[2].where == "m.json[1]" and "JSON object" in entries[2].error


class RecordingRunner:
    """A runner that makes no images: it records which rows reach it."""

    def __init__(self):
        self.ran: list[int] = []

    def missing(self, refs):
        return list(refs)

    def check_model(self, model):
        if model != "tiny-sd15":
            from brushwork.errors import ModelNotFoundError

            raise ModelNotFoundError(f"model {model!r} not found")

    def describe(self):
        return "a recording runner"

    def capacity(self):
        return None

    def run(self, rows, emit):
        from brushwork.batch.runners import Outcome

        for row in rows:
            self.ran.append(row.index)
            emit(row, Outcome(error="recorded only"))

    def close(self):
        raise AssertionError("a runner passed in stays the caller's")


def test_bad_rows_never_reach_the_runner(tmp_path):
    import io

    from brushwork.batch import run_batch

    m = write_jsonl(tmp_path / "m.jsonl", [{**TINY, "seed": 1}, {**TINY, "model": "elsewhere"}, {**TINY, "width": 9},
                                            {**TINY, "init_image": "sha256:" + "1" * 64, "strength": 0.5}])
    runner = RecordingRunner()
    result = run_batch(m, tmp_path / "out", runner=runner, stream=io.StringIO())
    assert runner.ran == [1]
    assert [r.status for r in result.rows] == ["failed"] * 4
    assert "elsewhere" in result.rows[1].reason and "not in the asset store" in result.rows[3].reason
