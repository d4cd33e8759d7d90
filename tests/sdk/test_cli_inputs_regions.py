"""``brushwork generate`` preflight of regions and reference images: each region mask and reference
picture exists and opens, a region mask has the picture's proportions, and each region's LoRAs
(``<lora:>`` tags in its prompt) are found, all before any model loads: one line on stderr,
exit 2, nothing written, no Studio made."""

from __future__ import annotations

import pytest
from brushwork.cli import main


@pytest.fixture
def models_env(tiny_models, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    return tiny_models


@pytest.fixture
def no_studio(monkeypatch):
    """A guard: making a Studio (which loads models) fails the test."""
    import brushwork
    import brushwork.engine

    def refuse(*args, **kwargs):
        raise AssertionError("a Studio was made: the preflight let the job through")

    monkeypatch.setattr(brushwork, "Studio", refuse, raising=False)
    monkeypatch.setattr(brushwork.engine, "Studio", refuse, raising=False)


CASES = {
    "mask-missing": (["--region", "{d}/gone.png", "a sky"], ["--region", "gone.png"]),
    "mask-corrupt": (["--region", "{d}/junk.png", "a sky"], ["--region", "junk.png"]),
    "mask-proportions": (["--region", "{d}/wide.png", "a sky"], ["64x32", "64x64", "proportions"]),
    "reference-missing": (["--reference", "{d}/gone.png"], ["--reference", "gone.png"]),
    "reference-corrupt": (["--reference", "{d}/junk.png"], ["--reference", "junk.png"]),
    "region-lora": (["--region", "{d}/white.png", "a sky <lora:no-such-lora:0.8>"],
                    ["--region", "white.png", "no-such-lora"]),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_region_or_reference_is_one_line_before_any_model(models_env, region_inputs, no_studio, capsys, case):
    args, says = CASES[case]
    out = region_inputs / "out.png"
    code = main(["generate", "a fox", "--model", "tiny-sd15", "--size", "64x64",
                 *[a.format(d=region_inputs) for a in args], "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(word in err for word in says), err
    assert not out.exists() and list(region_inputs.glob("out*")) == []


def test_a_region_lora_that_exists_passes_the_preflight(models_env, region_inputs, no_studio, capsys):
    """--dry-run: checked and planned, nothing loads; the tiny LoRA is found in the model folder."""
    code = main(["generate", "a fox", "--model", "tiny-sd15", "--size", "64x64",
                 "--region", f"{region_inputs}/white.png", "a sky <lora:lora-tiny:0.5>",
                 "--reference", f"{region_inputs}/ref.png", "--dry-run",
                 "--out", str(region_inputs / "out.png")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert not (region_inputs / "out.png").exists()
