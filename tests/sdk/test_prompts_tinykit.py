"""Tiny SD 1.5 / SDXL pipelines for the prompt, adapter and seamless tests (no tests in here).

They come from the shared ``tiny_models`` fixture (brushwork.testing.tiny): random weights, the
real CLIP tokenizer, loaded through diffusers' real ``from_pretrained``. Each call returns fresh
objects, so a test may load LoRAs or patch convs without touching another test's pipeline.
"""

from __future__ import annotations


def load(family: str, tiny_models):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if family == "sd15":
        pipe = StableDiffusionPipeline.from_pretrained(tiny_models.sd15, safety_checker=None,
                                                       requires_safety_checker=False)
    else:
        pipe = StableDiffusionXLPipeline.from_pretrained(tiny_models.sdxl)
    pipe.set_progress_bar_config(disable=True)
    return pipe
