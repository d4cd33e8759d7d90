"""Unhappy paths: each is one clear BrushworkError, and the Studio keeps working afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brushwork import InputImageError, ModelNotFoundError, OutOfMemoryError, RecipeError
from brushwork.assets import content_ref
from test_engine_support import gradient, last_base, module_studio, pixels, png_bytes, recipe, square_mask, write_png

# One worker runs this whole module, so its tests share one Studio's loaded models.
pytestmark = pytest.mark.xdist_group("engine-errors")



@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return module_studio(tmp_path_factory)


def test_missing_model_names_it(studio, tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError) as err:
        studio.generate(recipe(missing))
    assert "no-such-model" in str(err.value)
    assert "\n" not in str(err.value)


def test_corrupt_init_image(studio, tiny_models, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(png_bytes(gradient())[:200])  # a truncated PNG
    with pytest.raises(InputImageError) as err:
        studio.generate(recipe(tiny_models.sd15, init_image=str(bad), strength=0.5))
    assert "init_image" in str(err.value)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    with pytest.raises(InputImageError):
        studio.generate(recipe(tiny_models.sd15, init_image=str(not_an_image), strength=0.5))


def test_bad_input_fails_before_any_model_loads(tmp_path_factory, tmp_path):
    studio = module_studio(tmp_path_factory)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(InputImageError):
        studio.generate(recipe(tmp_path / "no-model-needed-yet", init_image=str(bad), strength=0.5))
    assert studio.pipelines.base_loads == 0


def test_missing_init_file(studio, tiny_models, tmp_path):
    with pytest.raises(InputImageError) as err:
        studio.generate(recipe(tiny_models.sd15, init_image=str(tmp_path / "gone.png"), strength=0.5))
    assert "gone.png" in str(err.value)


def test_mask_of_another_size_is_refused_with_both_sizes(studio, tiny_models, tmp_path):
    init = write_png(tmp_path / "init.png", gradient())
    mask = write_png(tmp_path / "mask.png", square_mask(size=48, box=(8, 8, 40, 40)))
    with pytest.raises(InputImageError) as err:
        studio.generate(recipe(tiny_models.sd15, init_image=init, mask=mask))
    assert "48x48" in str(err.value) and "64x64" in str(err.value)


@pytest.mark.parametrize("changes, field", [
    ({"width": 65}, "width"), ({"height": 8}, "height"), ({"steps": 0}, "steps"),
    ({"sampler": "Turbo Magic"}, "sampler"), ({"cfg": float("nan")}, "cfg"), ({"batch": 99}, "batch"),
])
def test_bad_numbers_are_recipe_errors_naming_the_field(studio, tiny_models, changes, field):
    with pytest.raises(RecipeError) as err:
        studio.generate(recipe(tiny_models.sd15, **changes))
    assert err.value.field == field


def test_strength_too_low_for_the_steps_says_what_to_change(studio, tiny_models, tmp_path):
    init = write_png(tmp_path / "init.png", gradient())
    with pytest.raises(RecipeError) as err:
        studio.generate(recipe(tiny_models.sd15, init_image=init, strength=0.2, steps=4))
    assert err.value.field == "strength"
    assert "at least 5 steps" in str(err.value) and "at least 0.25" in str(err.value)
    # exactly one step is fine
    assert studio.generate(recipe(tiny_models.sd15, init_image=init, strength=0.25, steps=4)).images


def test_not_a_recipe(studio):
    with pytest.raises(RecipeError):
        studio.generate({"prompt": "a cat"})


def test_missing_controlnet_names_the_control(studio, tiny_models, tmp_path):
    from brushwork import Control

    init = write_png(tmp_path / "c.png", gradient())
    with pytest.raises(ModelNotFoundError) as err:
        studio.generate(recipe(tiny_models.sd15, controls=[
            Control(kind="depth", image=init, model=str(tmp_path / "no-controlnet"))]))
    assert "controls[0]" in str(err.value)


def test_worker_mode_takes_names_and_store_refs_never_paths(tmp_path_factory, tiny_models, tmp_path):
    from brushwork.models.settings import Settings
    from brushwork.testing.tiny import SD15_NAME

    settings = Settings(model_dirs=[tiny_models.root])
    studio = module_studio(tmp_path_factory, settings=settings, allow_paths=False)
    init = write_png(tmp_path / "init.png", gradient())
    with pytest.raises(ModelNotFoundError):  # a model path: refused
        studio.generate(recipe(tiny_models.sd15))
    with pytest.raises(InputImageError):  # an image path: refused
        studio.generate(recipe(SD15_NAME, init_image=init, strength=0.5))
    ref = studio.assets.put((tmp_path / "init.png").read_bytes())
    assert ref == content_ref((tmp_path / "init.png").read_bytes())
    out = studio.generate(recipe(SD15_NAME, init_image=ref, strength=0.5))
    assert out.recipe.init_image == ref and out.recipe.model == SD15_NAME
    with pytest.raises(InputImageError):  # not uploaded
        studio.generate(recipe(SD15_NAME, init_image="sha256:" + "0" * 64, strength=0.5))


def test_out_of_memory_is_a_clear_error_and_the_studio_survives(studio, tiny_models):
    before = studio.generate(recipe(tiny_models.sd15)).images[0]
    unet = last_base(studio).pipe.unet

    def run_out_of_memory(module, args):
        # What torch raises when the GPU is full (injected: this machine has no GPU to fill).
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a "
                                     "total capacity of 7.79 GiB of which 1.10 GiB is free.")

    handle = unet.register_forward_pre_hook(run_out_of_memory)
    try:
        with pytest.raises(OutOfMemoryError) as err:
            studio.generate(recipe(tiny_models.sd15))
    finally:
        handle.remove()
    assert err.value.needed_bytes == int(2.5 * 1024**3)
    assert "2.50 GiB" in str(err.value) and "\n" not in str(err.value)
    after = studio.generate(recipe(tiny_models.sd15)).images[0]
    assert np.array_equal(pixels(before), pixels(after))


def test_cpu_allocator_failure_is_out_of_memory_too(studio, tiny_models):
    unet = last_base(studio).pipe.unet

    def cpu_allocation_fails(module, args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 68719476736 bytes. Error code 12")

    handle = unet.register_forward_pre_hook(cpu_allocation_fails)
    try:
        with pytest.raises(OutOfMemoryError) as err:
            studio.generate(recipe(tiny_models.sd15))
    finally:
        handle.remove()
    assert err.value.needed_bytes == 68719476736


def test_other_runtime_errors_are_not_disguised_as_oom(studio, tiny_models):
    unet = last_base(studio).pipe.unet

    def broken(module, args):
        raise RuntimeError("some shape mismatch")

    handle = unet.register_forward_pre_hook(broken)
    try:
        with pytest.raises(RuntimeError, match="shape mismatch"):
            studio.generate(recipe(tiny_models.sd15))
    finally:
        handle.remove()


def test_failed_save_leaves_no_file(studio, tiny_models, tmp_path):
    result = studio.generate(recipe(tiny_models.sd15, batch=2))
    blocker = tmp_path / "out-2.png"
    blocker.mkdir()  # the second target is a folder: writing it fails
    with pytest.raises(OSError):
        result.save(tmp_path / "out.png")
    assert not (tmp_path / "out-1.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name != "out-2.png"]
