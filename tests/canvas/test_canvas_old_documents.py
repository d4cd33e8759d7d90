"""Documents written before regions, references and model defaults (format 1) still open.

``fixtures/format1_before_regions.bwcanvas`` was written by the canvas of commit 3b7b5ad (format
1: an image layer at 50 % opacity, a sketch used as a scribble control, a mask, a pose, settings
with steps 12 / CFG 5.5 / seamless xy, one history entry), before the format grew.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from brushwork_canvas import imaging
from brushwork_canvas.docfile import VERSION, load_document, save_document
from brushwork_canvas.document import CanvasError
from brushwork_canvas.recipes import build_job

OLD = Path(__file__).parent / "fixtures" / "format1_before_regions.bwcanvas"


def test_the_fixture_is_a_format_1_document():
    with zipfile.ZipFile(OLD) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["version"] == 1 and "references" not in manifest and "explicit" not in manifest["settings"]


def test_a_format_1_document_opens_with_everything_it_had(qapp):
    doc = load_document(OLD)
    assert (doc.width, doc.height) == (64, 64)
    assert [(la.kind, la.name, la.opacity) for la in doc.layers] == \
        [("image", "photo", 0.5), ("sketch", "Sketch 1", 1.0), ("mask", "Mask 1", 1.0), ("pose", "Pose 1", 1.0)]
    photo = imaging.rgba_array(doc.layers[0].image)
    assert photo[10, 10].tolist() == [200, 40, 30, 255] and photo[10, 50].tolist() == [30, 60, 200, 255]
    assert doc.layers[1].control.enabled and doc.layers[1].control.kind == "scribble"
    assert len(doc.layers[3].people) == 1 and doc.references == []
    s = doc.settings
    assert (s.prompt, s.model, s.steps, s.cfg, s.sampler, s.tiling, s.seed, s.seed_locked) == \
        ("red brick wall", "brushwork-demo", 12, 5.5, "Euler a", "xy", 1234, True)
    assert sorted(s.explicit) == ["cfg", "sampler", "steps"], "what it ran with before stays the artist's choice"
    assert (s.upscale_factor, s.upscale_model, s.upscale_refine) == (2, "", 0.0)
    assert [(h.task, h.recipe.seed, h.job) for h in doc.history] == [("generate", 99, "job-1")]
    r = build_job(doc, "generate").recipe
    assert (r.steps, r.cfg, r.sampler, r.tiling, r.regions, r.references) == (12, 5.5, "Euler a", "xy", [], [])


def test_saving_an_old_document_writes_the_current_format_and_keeps_its_content(qapp, tmp_path):
    doc = load_document(OLD)
    path = save_document(doc, tmp_path / "again.bwcanvas")
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("manifest.json"))["version"] == VERSION
    back = load_document(path)
    assert [(la.id, la.kind) for la in back.layers] == [(la.id, la.kind) for la in doc.layers]
    assert back.settings == doc.settings


@pytest.mark.parametrize("change, message", [
    (lambda m: m["settings"].update(explicit=["width"]), "settings.explicit must list some of steps, cfg, sampler"),
    (lambda m: m["settings"].update(upscale_factor=3), "settings.upscale_factor must be one of 2, 4"),
    (lambda m: m["settings"].update(upscale_refine=1.5), "settings.upscale_refine must be from 0 to 1"),
    (lambda m: m["settings"].update(reference_model=5), "settings.reference_model must be a model name"),
    (lambda m: m.update(version=3), "document version 3 is not one this canvas reads"),
    (lambda m: m["layers"][1].update(kind="region", region={"prompt": "x", "weight": 9}), "region weight"),
    (lambda m: m.update(references=[{"file": "layers/nope.png"}]), "references\\[0\\].*is missing"),
    (lambda m: m.update(references=[{**m["layers"][0], "mode": "vibes"}]), "reference mode must be one of"),
])
def test_bad_new_fields_are_one_clear_error(qapp, tmp_path, change, message):
    path = save_document(load_document(OLD), tmp_path / "doc.bwcanvas")
    with zipfile.ZipFile(path) as zf:
        items = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(items["manifest.json"])
    change(manifest)
    items["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items.items():
            zf.writestr(name, data)
    with pytest.raises(CanvasError, match=message) as info:
        load_document(path)
    assert str(path) in str(info.value)
