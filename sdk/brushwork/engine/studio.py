"""brushwork.Studio: run a Recipe in this process.

    studio = brushwork.Studio()                  # device auto: cuda, mps, else cpu
    result = studio.generate(recipe, on_progress=print, cancel=threading.Event())
    result.save("out.png")                       # batch: out-1.png, out-2.png, ...

Input sizes: the init image is resized to the recipe's width x height; a mask must be exactly
the init image's size (another size is an InputImageError, never a silent stretch); control
pictures are fitted to width x height. Every pixel outside an inpainting mask (after
``mask_grow``) is the init image's pixel, exactly.

One Studio runs one generation at a time (its pipelines share modules); the worker keeps one.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from ..assets import AssetStore, read_ref
from ..conditioning.masks import paste_back
from ..errors import BrushworkError, CancelledError, ModelNotFoundError, RecipeError
from ..models import bundled
from ..models.defaults import ModelDefaults, defaults_for_ref
from ..models.sources import PathPolicy
from ..paths import state_dir
from ..recipe import Control, Recipe, extract_lora_tags
from . import bridge, references
from .adapters import apply_adapters
from .fastpath import (
    FastPath,
    forget_compiled,
    load_preview_decoder,
    pick_device,
    set_qkv_fused,
    set_vae_tiling,
    tune_module,
    tune_pipeline,
)
from .inputs import read_inputs, store_inputs
from .memory import default_budget, oom_as_error
from .pipelines import LoadedBase, PipelineCache
from .plan import ModelFacts, plan
from .progress import Progress, _Cancelled, latent_to_rgb
from .prompts import encode_prompts
from .regions import RegionLoras, Regions, base_adapters, encode_regions, read_region_masks
from .regions_plan import region_lora_tags
from .result import Result
from .run import Execution, run_one
from .seamless import seamless
from .tiled import run_tiled
from .tiled_inpaint import mask_spans
from .upscale import UpscalerCache, refine_execution, run_upscale_alone, upscale_alone, upscale_step

log = logging.getLogger(__name__)


class Studio:
    def __init__(self, settings=None, device: str | None = None, *, fast: bool | FastPath | None = None,
                 memory_budget: int | None = None, allow_paths: bool = True,
                 model_paths: PathPolicy | None = None):
        """``fast``: None/True = the device's fast path, False = plain fp32, or a FastPath.
        ``memory_budget``: bytes of models kept loaded (default: 75 % of the GPU, half the RAM).
        ``allow_paths``: False makes the Studio accept only sha256: input refs (the worker).
        ``model_paths``: which model paths resolve (``models.sources.resolve``); default: all when
        ``allow_paths``, none otherwise. The worker passes "absolute" (its clients' paths are
        checked by worker/model_paths.py; a bare name must never find a file in its folder)."""
        self.settings = bridge.load_settings(settings)
        self.device = pick_device(device or getattr(self.settings, "device", None))
        self.fast = FastPath.resolve(fast, self.device)
        self.assets = AssetStore(state_dir() / "assets")
        self.allow_paths = allow_paths
        self.model_paths: PathPolicy = allow_paths if model_paths is None else model_paths
        self.pipelines = PipelineCache(memory_budget or default_budget(self.device))
        self._lock = threading.Lock()
        self._hashes: dict[str, str] = {}  # model key -> sha256 (hashing GBs once per process)
        self._adapter_state: tuple = ()  # what apply_adapters last set (compiled code depends on it)
        self._preview_decoders: dict[str, Any] = {}  # family -> tiny-VAE decoder or None
        self.upscalers = UpscalerCache()  # the upscale step's super-resolution model (engine/upscale.py)

    # ---- public ---------------------------------------------------------------------------

    def prepare(self, recipe: Recipe) -> Recipe:
        """The recipe as it will run: <lora:> tags moved to ``loras``, a seed chosen, the default
        model named, the model's defaults in every field left unset (``recipe.MODEL_DEFAULTED``),
        validated (here, once: the boundary of the Python API; plan() trusts it), and every
        input copied into ``assets`` and referred to as ``sha256:``."""
        if not isinstance(recipe, Recipe):
            raise RecipeError("recipe", f"must be a brushwork.Recipe, got {type(recipe).__name__}")
        completed = self._complete(recipe).validate()
        # The stored refs are sha256: refs of bytes just read: valid by construction.
        return store_inputs(completed, self.assets, allow_paths=self.allow_paths)

    def _complete(self, recipe: Recipe) -> Recipe:
        """Everything ``prepare`` fills in, before the one validation (so tag LoRAs and the
        model's defaults are checked with the rest). A field of the wrong type is left for
        ``validate`` to name."""
        changes: dict[str, Any] = {}
        if isinstance(recipe.prompt, str):
            prompt, tagged = extract_lora_tags(recipe.prompt)
            if tagged:
                changes.update(prompt=prompt, loras=[*recipe.loras, *tagged])
        changes.update(region_lora_tags(recipe))  # ... and a region prompt's tags to its own loras
        if recipe.task == "upscale" and recipe.width is None and recipe.height is None:
            # an upscale enlarges the picture it is given: its size is that picture's, not the model's
            changes.update(self._init_size(recipe.init_image))
        if recipe.seed is None:
            changes["seed"] = secrets.randbelow(2**32)
        default_model = getattr(self.settings, "default_model", "")
        if not recipe.model and default_model:
            changes["model"] = default_model  # recorded, so a rerun does not depend on settings
        completed = recipe.replace(**changes)
        if completed.unset and isinstance(completed.model, str):
            completed = completed.with_defaults(self.model_defaults(completed.model).as_fields())
        return completed

    def _init_size(self, ref: str | None) -> dict[str, int]:
        """width/height of the init picture, down to a multiple of 8 (what a Recipe allows); nothing
        when it cannot be read: storing the inputs then names the problem."""
        try:
            with Image.open(io.BytesIO(read_ref(str(ref), self.assets, allow_paths=self.allow_paths))) as picture:
                width, height = picture.size
        except (BrushworkError, OSError, ValueError, Image.DecompressionBombError):
            return {}
        return {"width": max(8, width // 8 * 8), "height": max(8, height // 8 * 8)}

    def model_defaults(self, model: str = "") -> ModelDefaults:
        """The size, steps, CFG and sampler a Recipe gets from ``model`` where it leaves them unset
        (``models.defaults.ModelDefaults``; its ``describe()`` says why). Resolves, loads nothing."""
        return defaults_for_ref(bridge.resolve(model, "pipeline", self.settings, allow_paths=self.model_paths).ref)

    def generate(self, recipe: Recipe, on_progress: Callable[[Progress], Any] | None = None,
                 cancel=None) -> Result:
        recipe = self.prepare(recipe)
        with self._lock:
            try:
                with oom_as_error(f"generating {recipe.width}x{recipe.height}"):
                    return self._generate(recipe, on_progress, cancel)
            except _Cancelled:
                raise CancelledError("cancelled") from None

    def recommended_settings(self, model: str = "") -> dict:
        """{"steps", "cfg", "sampler"} that suit ``model`` (LCM/Turbo need few steps, low CFG): the
        model's defaults (``model_defaults``), which a Recipe gets where it leaves them unset."""
        found = self.model_defaults(model)
        return {"steps": found.steps, "cfg": found.cfg, "sampler": found.sampler}

    def loaded_models(self) -> list[dict]:
        """What is in memory: [{"kind": "model"|"controlnet"|"vae", "key", "bytes", ...}]."""
        return self.pipelines.loaded()

    def unload(self, model: str | None = None) -> int:
        """Unload a model (by its key from loaded_models() or the name it was asked by), or
        everything when ``model`` is None. Returns how many entries were unloaded."""
        with self._lock:
            if model is None:
                return self.pipelines.unload(None)
            keys = {entry["key"] for entry in self.pipelines.loaded()}
            if model not in keys:
                with contextlib.suppress(BrushworkError):
                    model = bridge.resolve(model, "pipeline", self.settings, allow_paths=self.model_paths).key
            return self.pipelines.unload(model)

    # ---- the run --------------------------------------------------------------------------

    def _generate(self, recipe: Recipe, on_progress, cancel) -> Result:
        started = time.perf_counter()
        _check_cancel(cancel)
        hashes: dict[str, str] = {}
        sources: dict[str, str] = {}
        # Pictures first: a corrupt input fails in milliseconds, before gigabytes of weights load.
        inputs = read_inputs(recipe, self._read)
        self.upscalers.check(recipe, self.settings, allow_paths=self.model_paths)  # found before any model loads
        if upscale_alone(recipe):  # task upscale without a refine: no diffusion model loads (engine/upscale.py)
            return run_upscale_alone(self, recipe, inputs, started, cancel)
        region_masks = read_region_masks(recipe, self._read)  # regions.py; None without regions
        reference_images = references.read_images(recipe, self._read)  # references.py; [] without
        # An empty model means the bundled demo model (settings' default was filled in by prepare).
        resolved = bridge.resolve(recipe.model, "pipeline", self.settings, allow_paths=self.model_paths)
        # Reference adapters and encoders found (offline: present) before the base loads.
        adapters = references.resolve(recipe, resolved.family, self.settings, allow_paths=self.model_paths,
                                      model_key=resolved.key) if recipe.references and resolved.family else []
        base = self.pipelines.base(resolved.key, lambda: self._load_base(resolved))
        hashes["model"], sources["model"] = self._hash(resolved), resolved.source
        # How the job runs (task, path, strength, sizes, axes) is the planner's decision, made once.
        spans = functools.partial(mask_spans, inputs.mask) if inputs.mask is not None else None
        job_plan = plan(recipe, ModelFacts.of_pipe(base.pipe, base.family), mask_spans=spans)
        size = (job_plan.width, job_plan.height)
        if job_plan.grey_init:  # a 9-channel checkpoint's txt2img: inpainting from a grey picture
            inputs.init = Image.new("RGB", size, (127, 127, 127))
        if job_plan.whole_picture_mask:  # ... and its txt2img / img2img: of the whole picture
            inputs.mask = Image.new("L", size, 255)

        for where, ref in recipe.image_refs().items():  # prepare() made every input a sha256: ref
            hashes[where] = ref.split(":", 1)[1]
        controls = self._controlnets(recipe, base, hashes, sources)
        pipe = self.pipelines.for_task(base, job_plan.pipeline_task, controls)
        pipe.vae = self._vae(recipe, base, hashes, sources)
        region_loras = self._apply_adapters(pipe, base.family, recipe, hashes, sources)
        # A1111 weights and >77-token chunking; cached, so live mode re-encodes only on change.
        prompt_kwargs = encode_prompts(pipe, recipe.prompt, recipe.negative_prompt, family=base.family)
        regions = None if region_masks is None else Regions(
            region_masks, encode_regions(pipe, recipe, base.family, region_loras), base_adapters(pipe))
        if recipe.references and not adapters:  # the family was known only once the model loaded
            adapters = references.resolve(recipe, base.family, self.settings, allow_paths=self.model_paths)
        reference_run = references.for_job(pipe, recipe, adapters, reference_images, cfg=job_plan.cfg,
                                           dtype=self.fast.dtype, device=self.device, settings=self.settings,
                                           hashes=hashes, sources=sources)
        loaded = time.perf_counter()

        job = Execution(pipe=pipe, plan=job_plan, inputs=inputs, prompt_kwargs=prompt_kwargs,
                        scheduler_config=base.scheduler_config, regions=regions, references=reference_run,
                        preview_decoder=(_demo_preview(base) or self._preview_decoder(base.family))
                        if on_progress else None)
        images = self._execute(job, on_progress, cancel) if job_plan.path != "upscale" else \
            [inputs.need_init()] * len(job_plan.seeds)  # task upscale: the init picture is the job's
        if job_plan.upscale is not None:  # the SR model (or Lanczos), then the optional refine: engine/upscale.py
            images = upscale_step(self, job, images, on_progress=on_progress, cancel=cancel, hashes=hashes,
                                  sources=sources,
                                  refine_job=lambda: refine_execution(self, job, base, controls, recipe))
        # The recipe records the model that ran (an empty one meant the default), so a rerun elsewhere uses it.
        ran = recipe if recipe.model else recipe.replace(model=resolved.name or resolved.source)
        return self._result(images, list(job_plan.seeds), ran, hashes, sources, started, loaded)

    def _execute(self, job: Execution, on_progress, cancel) -> list[Image.Image]:
        """Every image of the job, on the path its plan says."""
        job_plan, images = job.plan, []
        if job_plan.path != "plain":
            # Far above the model's native size (engine/tiled.py): txt2img and img2img refine and
            # decode in tiles, inpaint repaints a crop around the mask; memory stays bounded.
            for index, seed in enumerate(job_plan.seeds):
                _check_cancel(cancel)
                images.append(run_tiled(job, seed=seed, index=index, on_progress=on_progress, cancel=cancel))
            return images
        set_vae_tiling(job.pipe, width=job_plan.width, height=job_plan.height, fast=self.fast,
                       seamless=bool(job_plan.seamless_axes))
        with seamless(job.pipe, job_plan.seamless_axes):
            for index, seed in enumerate(job_plan.seeds):
                _check_cancel(cancel)
                image = run_one(job, seed=seed, index=index, on_progress=on_progress, cancel=cancel)
                if job_plan.paste_back:
                    image = paste_back(job.inputs.need_init(), image, job.inputs.need_mask(), job_plan.mask_feather)
                images.append(image)
        return images

    @staticmethod
    def _result(images, seeds, recipe, hashes, sources, started, loaded) -> Result:
        done = time.perf_counter()
        return Result(images=images, seeds=seeds, recipe=recipe, hashes=hashes, sources=sources,
                      timings={"load": loaded - started, "generate": done - loaded})

    # ---- parts ----------------------------------------------------------------------------

    def _read(self, ref: str) -> bytes:
        return read_ref(ref, self.assets, allow_paths=self.allow_paths)

    def _hash(self, resolved: bridge.Resolved) -> str:
        if resolved.key not in self._hashes:
            self._hashes[resolved.key] = bridge.model_hash(resolved)
        return self._hashes[resolved.key]

    def _preview_decoder(self, family: str):
        if family not in self._preview_decoders:
            ref = dict(self.fast.preview_vaes).get(family)
            self._preview_decoders[family] = load_preview_decoder(ref, self.fast) if ref else None
        return self._preview_decoders[family]

    def _load_base(self, resolved: bridge.Resolved):
        pipe, family = bridge.load_pipeline(resolved, dtype=self.fast.dtype,
                                            device="cpu" if self.fast.cpu_offload else self.device)
        for name in ("safety_checker",):  # artists' own tool: no NSFW blur on their work
            if getattr(pipe, name, None) is not None:
                setattr(pipe, name, None)
        tune_pipeline(pipe, self.fast)
        pipe.set_progress_bar_config(disable=True)
        return pipe, family, resolved.ref

    def _controlnets(self, recipe: Recipe, base: LoadedBase, hashes: dict, sources: dict) -> list:
        nets = []
        for i, control in enumerate(recipe.controls):
            where = f"controls[{i}]"
            resolved = (_demo_controlnet(base, control.kind) if not control.model else None) or \
                _resolve_controlnet(control, base.family, self.settings, where, self.model_paths)

            def load(resolved=resolved):
                net = bridge.load_controlnet(resolved, dtype=self.fast.dtype, device=self.device,
                                             family=base.family)
                tune_module(net, self.fast)
                return net

            net = self.pipelines.controlnet(resolved.key, load)
            want = base.pipe.unet.config.get("cross_attention_dim")
            if net.config.get("cross_attention_dim") != want:
                raise RecipeError(f"{where}.model", f"{resolved.name} is a ControlNet for another model "
                                  f"family than {base.family}")
            hashes[f"{where}.model"], sources[f"{where}.model"] = self._hash(resolved), resolved.source
            nets.append((resolved.key, net))
        return nets

    def _vae(self, recipe: Recipe, base: LoadedBase, hashes: dict, sources: dict):
        if not recipe.vae:
            return base.original_vae
        resolved = bridge.resolve(recipe.vae, "vae", self.settings, allow_paths=self.model_paths)
        vae = self.pipelines.vae(resolved.key, lambda: bridge.load_vae(
            resolved, dtype=self.fast.dtype, device=self.device, family=base.family))
        hashes["vae"], sources["vae"] = self._hash(resolved), resolved.source
        return vae

    def _apply_adapters(self, pipe, family: str, recipe: Recipe, hashes: dict, sources: dict) -> RegionLoras | None:
        """The recipe's LoRAs and embeddings on ``pipe``; the regions' LoRAs resolved (regions.py
        loads and switches them), returned when a region has any."""
        loras: list[tuple[str, float]] = []
        embeddings: list[tuple[str, str]] = []
        region_loras: list[list[tuple[str, float]]] = [[] for _ in recipe.regions]
        for lora, own in [(lora, loras) for lora in recipe.loras] + \
                [(lora, region_loras[i]) for i, r in enumerate(recipe.regions) for lora in r.loras]:
            resolved = bridge.resolve(lora.name, "lora", self.settings, allow_paths=self.model_paths,
                                      family=family)
            own.append((resolved.location, float(lora.weight)))
            hashes[f"lora:{lora.name}"], sources[f"lora:{lora.name}"] = self._hash(resolved), resolved.source
        for emb in recipe.embeddings:
            resolved = bridge.resolve(emb.name, "embedding", self.settings, allow_paths=self.model_paths,
                                      family=family)
            token = emb.token or Path(resolved.location).stem
            embeddings.append((resolved.location, token))
            hashes[f"embedding:{emb.name}"] = self._hash(resolved)
            sources[f"embedding:{emb.name}"] = resolved.source
        every = loras + [x for own in region_loras for x in own]
        state = (id(pipe.unet), tuple(every), tuple(embeddings))
        if self.fast.compile and state != self._adapter_state and self._adapter_state:
            forget_compiled()  # frozen weights are inside the compiled code: recompile with the new ones
        self._adapter_state = state
        if every:
            set_qkv_fused(pipe, False)  # LoRA layers wrap to_q/to_k/to_v, not a fused to_qkv
        allow_pickle = bool(getattr(self.settings, "allow_pickle", False))
        apply_adapters(pipe, loras, embeddings, allow_pickle=allow_pickle)
        if not every and self.fast.fuse_qkv:
            set_qkv_fused(pipe, True)
        return RegionLoras(loras, region_loras, embeddings, allow_pickle) if any(region_loras) else None


def _check_cancel(cancel) -> None:
    if cancel is not None and cancel.is_set():
        raise _Cancelled()


def _demo_preview(base: LoadedBase):
    """The bundled demo's VAE is its own: its previews need its own latent→RGB factors."""
    preview = (bundled.info() or {}).get("preview") if bundled.is_demo(base.key) else None
    if not preview:
        return None
    return functools.partial(latent_to_rgb, family=base.family, factors=preview["factors"],
                             bias=preview.get("bias"))


def _demo_controlnet(base: LoadedBase, kind: str) -> bridge.Resolved | None:
    """On the bundled demo model, a control with no model uses the demo's own ControlNet for
    that kind (the public ones neither fit it nor load offline). The path is ours, not a
    client's, so it resolves even where client paths are refused."""
    folder = bundled.controlnet_dir(kind) if bundled.is_demo(base.key) else None
    if folder is None:
        return None
    return bridge.resolve(str(folder), "controlnet", None, allow_paths=True, family=base.family)


def _resolve_controlnet(control: Control, family: str, settings, where: str,
                        allow_paths: PathPolicy) -> bridge.Resolved:
    try:
        # No model: the kind's name picks the family's public ControlNet (models.registry).
        return bridge.resolve(control.model or control.kind, "controlnet", settings,
                              allow_paths=allow_paths if control.model else False, family=family)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"{where}: {exc}") from None


