"""The models layer: where weights come from and how they load.

- ``settings``: the user's model folders, default model and opt-ins (``settings.toml`` + env).
- ``family``: SD 1.5 / SDXL (+ turbo, lcm, inpaint) detected from content, never file names alone.
- ``registry``: known hub ids, recommended settings per variant, the ControlNet map.
- ``sources``: ``resolve(ref, kind, settings)`` -> ``ModelRef`` (model dirs, HF cache, hub).
- ``loading``: ``load_pipeline`` / ``load_controlnet`` / ``load_vae`` / ``model_hash``.
- ``commands``: ``brushwork models list|pull|info``.

Importing this package (and settings/family/registry/sources) does not import torch.
"""
