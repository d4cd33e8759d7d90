"""A worker job that leaves size, steps, CFG and sampler unset gets the model's defaults (issue 19),
as the Python API does: the job's recipe, its history entry and the PNG the worker wrote all record
the values that ran; explicit values win. The reference is ``defaults_for_ref`` of the same model."""

from __future__ import annotations

import pytest
from brushwork.metadata import read_metadata
from brushwork.recipe import MODEL_DEFAULTED, Recipe

pytestmark = pytest.mark.xdist_group("worker-jobs")


def sampling(recipe: Recipe) -> dict:
    return {name: getattr(recipe, name) for name in MODEL_DEFAULTED}


def test_a_job_without_sampling_fields_runs_with_the_model_s_defaults(jobs_worker, tiny_models, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    from brushwork.models import sources
    from brushwork.models.defaults import defaults_for_ref

    expected = defaults_for_ref(sources.resolve("tiny-sd15", "pipeline")).as_fields()
    client = jobs_worker.client()
    sent = Recipe(prompt="a red brick wall", model="tiny-sd15", seed=7)
    assert sent.unset == MODEL_DEFAULTED  # travels as JSON nulls
    remote = client.generate(sent)
    assert sampling(remote.recipe) == expected
    assert remote.images[0].size == (expected["width"], expected["height"])
    assert sampling(read_metadata(remote.paths[0]).recipe) == expected
    [entry] = [e for e in client.history() if e.id == remote.job]
    assert sampling(Recipe.from_dict(entry.recipe)) == expected


def test_explicit_values_sent_to_the_worker_win(jobs_worker):
    explicit = {"width": 64, "height": 96, "steps": 2, "cfg": 3.0, "sampler": "Euler"}
    remote = jobs_worker.client().generate(Recipe(prompt="a red brick wall", model="tiny-sd15", seed=7, **explicit))
    assert sampling(remote.recipe) == explicit and remote.images[0].size == (64, 96)
