"""Batch preflight of regions and reference images: region masks and reference pictures are read
and opened, a region mask of other proportions is refused, and every LoRA (the row's and its
regions', ``<lora:>`` tags in a region's prompt included) is found, all before any model loads.
A bad row fails alone with a one-line reason; nothing is written for it."""

from __future__ import annotations

import io

import pytest
from batch_helpers import TINY, write_jsonl
from brushwork.batch import run_batch
from brushwork.batch.preflight import FAILED, RUN
from brushwork.batch.runners import InProcessRunner


def region(mask="white.png", prompt="a blue car", **more) -> dict:
    return {"mask": mask, "prompt": prompt, **more}


def run(tmp_path, rows):
    """The rows through a real in-process runner; returns (rows, runner, what was written)."""
    runner = InProcessRunner(device="cpu")
    result = run_batch(write_jsonl(tmp_path / "m.jsonl", rows), tmp_path / "out", runner=runner,
                       stream=io.StringIO())
    return result.rows, runner, sorted(p.name for p in (tmp_path / "out").glob("*.png"))


CASES = [
    ({"regions": [region("gone.png")]}, ["regions[0].mask", "gone.png", "no such file"]),
    ({"regions": [region("junk.png")]}, ["regions[0].mask", "junk.png"]),
    ({"regions": [region("wide.png")]}, ["regions[0].mask", "64x32", "64x64", "proportions"]),
    ({"references": [{"image": "gone.png"}]}, ["references[0].image", "gone.png", "no such file"]),
    ({"references": [{"image": "junk.png"}]}, ["references[0].image", "junk.png"]),
    ({"regions": [region(loras=[{"name": "no-such-lora", "weight": 1.0}])]}, ["regions[0].loras", "no-such-lora"]),
    ({"regions": [region(prompt="a blue car <lora:no-such-lora:0.7>")]}, ["regions[0].loras", "no-such-lora"]),
    ({"loras": [{"name": "no-such-lora", "weight": 1.0}]}, ["loras", "no-such-lora"]),
]


@pytest.mark.parametrize(("fields", "says"), CASES, ids=[
    "mask-missing", "mask-corrupt", "mask-proportions", "reference-missing", "reference-corrupt",
    "region-lora", "region-lora-tag", "recipe-lora"])
def test_a_bad_region_or_reference_fails_its_row_before_any_model(models_env, region_inputs, fields, says):
    rows, runner, written = run(region_inputs, [{**TINY, "seed": 1, **fields}])
    [row] = rows
    assert row.status == FAILED
    assert "\n" not in row.reason and all(word in row.reason for word in says), row.reason
    assert written == []
    assert runner._studio is None  # no Studio was made: no model loaded


def test_good_regions_references_and_region_loras_pass_preflight(models_env, region_inputs):
    """Checked only (preflight with this machine's lookups): the good row keeps its regions, references and
    region LoRAs (a tag moved to the region's loras, as the Studio does), inputs as sha256 refs."""
    from brushwork.batch.manifest import read_manifest
    from brushwork.batch.preflight import plan_rows
    from brushwork.batch.runners import local_lora_check, local_model_check

    m = write_jsonl(region_inputs / "m.jsonl", [{**TINY, "seed": 1, "references": [{"image": "ref.png"}],
                                         "regions": [region(prompt="a blue car <lora:lora-tiny:0.5>")]}])
    [row] = plan_rows(read_manifest(m), region_inputs / "out", region_inputs, check_model=local_model_check,
                      check_lora=local_lora_check)
    assert row.status == RUN, row.reason
    r = row.recipe
    assert r.regions[0].prompt == "a blue car"
    assert [(x.name, x.weight) for x in r.regions[0].loras] == [("lora-tiny", 0.5)]
    assert r.regions[0].mask.startswith("sha256:") and r.references[0].image.startswith("sha256:")
