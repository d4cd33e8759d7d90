"""Train the bundled demo model: ``python -m brushwork.demo.train [--quick] [--out DIR]``.

Four stages. Each finished stage is kept in a work folder (``OUT.stages``) until the whole model
is saved, so an interrupted run resumes where it stopped, ``--stages`` retrains some stages and
takes the others from the work folder or from an earlier model in ``--out``, and the two stages
that only need the UNet can run as two processes at once (``--no-save``, then a run with
``--stages ""`` that only assembles):

1. ``vae``: a small AutoencoderKL (scale factor 8, like SD's) on crops of the procedural images.
2. ``unet``: a text-conditioned UNet on VAE latents, reading a *frozen random* CLIP text encoder
   (CLIP's real tokenizer and 49408-token vocabulary, hidden size 32). No text-encoder training
   is needed: the UNet's cross-attention learns to read whatever the frozen encoder gives it.
3. ``controlnet``: a depth ControlNet, started from the UNet (diffusers' ``from_unet``).
4. ``inpaint``: a 9-channel inpainting UNet, started from the UNet with zero weights on the extra
   input channels (the same recipe as SD's inpainting checkpoints).

Output (diffusers layout, fp16 safetensors): the base pipeline in ``--out`` itself, the
inpainting pipeline in ``--out/inpaint``, the ControlNet in ``--out/controlnet-depth``, and
``demo.json`` (native size, where each part is, training log). Reproducible: one seed drives the
data and the initial weights; deterministic algorithms; one thread by default (on a shared,
busy CPU one thread is many times faster than two fighting over it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import dataset
from . import manifest as demo_manifest
from .architecture import build_scheduler, build_unet, build_vae, inpaint_unet_from, text_encoder_config
from .export import TOKENIZER_DIR, latent_rgb_factors, save_pipelines
from .loop import Log, min_snr_weights, reconstruction_loss, to_tensor, train_loop
from .stages import NEEDS, STAGES, StageStore

# Where the training runs. Random numbers are always drawn on the CPU (seeded generators) and then
# moved, so a run on a GPU sees the very same batches, noise and timesteps as one on the CPU.
_DEVICE = torch.device("cpu")


def on_device(t: torch.Tensor) -> torch.Tensor:
    return t.to(_DEVICE)


@dataclass
class Plan:
    size: int = 64
    seed: int = 7
    textures: int = 5000
    depth_scenes: int = 1500
    inpaint_examples: int = 1500
    batch: int = 32
    vae_steps: int = 4000  # 500 reconstructed no brick or tile; 4,000 (with the edge term) all but a few
    vae_crop: int = 32
    vae_edges: float = 1.0  # weight of the edge term in the VAE's loss (loop.reconstruction_loss)
    unet_steps: int = 4000
    controlnet_steps: int = 400
    inpaint_steps: int = 400
    decoder_steps: int = 1000
    lr: float = 1e-3
    snr_top: float = 5.0  # the most weight a noisy step gets (loop.min_snr_weights)
    # 1: texture latents are rolled by random amounts as they are drawn (the first models); 0: each
    # pattern keeps its one layout, so its words decide the picture even at the noisiest steps
    roll_textures: int = 0
    # share of UNet and decoder batches run with circular padding, as seamless tiling runs them
    wrap: float = 0.5
    caption_dropout: float = 0.1
    # 1: the unet and controlnet stages start from the model in --out instead of from scratch
    # (a fine-tune on new data: far fewer steps, and the ControlNet stays matched to its UNet)
    finetune: int = 0

    @classmethod
    def quick(cls) -> Plan:
        """Seconds, not minutes: proves the whole pipeline runs and saves a loadable model."""
        return cls(textures=16, depth_scenes=8, inpaint_examples=8, batch=4, vae_steps=2,
                   unet_steps=2, controlnet_steps=2, inpaint_steps=2, decoder_steps=2)


# ---------------------------------------------------------------------------------------------
# helpers


class TextEncoder:
    """The frozen random CLIP text encoder and its tokenizer, with a per-caption cache."""

    def __init__(self, model, tokenizer):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        missing = sorted({c for c in captions if c not in self._cache})
        if missing:
            ids = self.tokenizer(missing, padding="max_length", max_length=77, truncation=True,
                                 return_tensors="pt").input_ids
            hidden = self.model(on_device(ids))[0]
            self._cache.update(zip(missing, hidden, strict=True))
        return torch.stack([self._cache[c] for c in captions])


# ---------------------------------------------------------------------------------------------
# stages


def train_vae(plan: Plan, images: torch.Tensor, gen: torch.Generator, log: Log):
    vae = build_vae().to(_DEVICE).train()

    def loss_fn(step: int) -> torch.Tensor:
        idx = torch.randint(0, images.shape[0], (plan.batch,), generator=gen)
        top, left = (int(v) for v in torch.randint(0, plan.size - plan.vae_crop + 1, (2,), generator=gen))
        x = on_device(images[idx, :, top:top + plan.vae_crop, left:left + plan.vae_crop])
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * on_device(torch.randn(posterior.mean.shape, generator=gen))
        recon = vae.decode(z).sample
        kl = posterior.kl().mean() / z[0].numel()
        return reconstruction_loss(recon, x, plan.vae_edges) + 1e-4 * kl

    loss = train_loop("vae", list(vae.parameters()), plan.vae_steps, plan.lr * 2, loss_fn, log)
    vae.eval().requires_grad_(False)
    return vae, loss


@torch.no_grad()
def encode(vae, images: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Posterior means, unscaled."""
    return torch.cat([vae.encode(on_device(images[i:i + chunk])).latent_dist.mean.cpu()
                      for i in range(0, len(images), chunk)])


OFFSET_NOISE = 0.2


def training_noise(shape, gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise plus a random constant per image and channel ("offset noise").

    At the noisiest steps the picture's mean colour still leaks into x_t (SD's schedule never
    reaches zero signal); on 8x8 latents that leak is strong enough that the UNet learned to take
    the colour from the noise instead of the prompt: same seed, same colour, whatever the words.
    A random offset drowns the leak, so the colour has to come from the text."""
    noise = torch.randn(shape, generator=gen)
    return noise + OFFSET_NOISE * torch.randn(shape[0], shape[1], 1, 1, generator=gen)


def denoising_loss(unet, scheduler, latents, context, gen, snr_top: float, **unet_kwargs) -> torch.Tensor:
    noise = on_device(training_noise(latents.shape, gen))
    t = on_device(torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=gen))
    latents = on_device(latents)
    noisy = scheduler.add_noise(latents, noise, t)
    extra = unet_kwargs.pop("extra_inputs", None)
    model_in = noisy if extra is None else torch.cat([noisy, on_device(extra)], dim=1)
    pred = unet(model_in, t, context, **unet_kwargs).sample
    per_item = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
    return (per_item * min_snr_weights(scheduler, t, snr_top)).mean()


def drop_captions(captions: list[str], p: float, gen: torch.Generator) -> list[str]:
    """Some captions dropped, so classifier-free guidance has an unconditional model to push from.

    Half of the dropped ones become a random negative prompt ("lowres, blurry, text") instead of
    "": presets send one, and the guidance then pushes from it; the UNet must read it as "nothing
    in particular", not as some picture it never learned."""
    keep = torch.rand(len(captions), generator=gen) >= p
    as_negative = torch.rand(len(captions), generator=gen) < 0.5
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    return [c if k else (dataset.random_negative(rng) if n else "")
            for c, k, n in zip(captions, keep.tolist(), as_negative.tolist(), strict=True)]


def roll_latents(latents: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Textures tile, so any circular shift of one is another valid example (and teaches tiling)."""
    dy, dx = (int(v) for v in torch.randint(0, latents.shape[-1], (2,), generator=gen))
    return torch.roll(latents, shifts=(dy, dx), dims=(2, 3))


def _start_from(folder: Path | None, build):
    if folder is None or not (folder / "config.json").is_file():
        return build()
    from diffusers import ControlNetModel, UNet2DConditionModel

    cls = ControlNetModel if "controlnet" in folder.name else UNet2DConditionModel
    return cls.from_pretrained(str(folder), torch_dtype=torch.float32)


def wrapped_sometimes(model, share: float, gen: torch.Generator):
    """Circular padding (Brushwork's seamless tiling) for this batch, with probability ``share``.

    Textures are laid from the picture's corner, so with zero padding alone the networks learned to
    find the layout from the picture's border, and seamless tiling (no border) broke them: "red
    bricks" came out purple with the decoder wrapped, green and black with both. Training some
    batches as tiling runs them teaches both; the textures tile, so wrapping them is exact (the depth
    scenes, a fifth of the UNet's examples, do not tile and are wrapped too: not measured)."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from ..engine.seamless import seamless

    if float(torch.rand((), generator=gen)) >= share:
        return nullcontext()
    return seamless(SimpleNamespace(unet=model), "xy")  # any network: only the attribute name is looked up


def train_unet(plan, latents, captions, n_textures, text, scheduler, gen, log, init: Path | None = None):
    unet = _start_from(init, lambda: build_unet(plan.size)).to(_DEVICE).train()

    def loss_fn(step: int) -> torch.Tensor:
        idx = torch.randint(0, latents.shape[0], (plan.batch,), generator=gen)
        batch = latents[idx]
        if plan.roll_textures:
            is_texture = (idx < n_textures).view(-1, 1, 1, 1)
            batch = torch.where(is_texture, roll_latents(batch, gen), batch)
        context = text(drop_captions([captions[i] for i in idx.tolist()], plan.caption_dropout, gen))
        with wrapped_sometimes(unet, plan.wrap, gen):
            return denoising_loss(unet, scheduler, batch, context, gen, plan.snr_top)

    loss = train_loop("unet", list(unet.parameters()), plan.unet_steps, plan.lr, loss_fn, log)
    return unet.eval().requires_grad_(False), loss


def train_controlnet(plan, unet, latents, depth, captions, text, scheduler, gen, log, init: Path | None = None):
    from diffusers import ControlNetModel

    def from_unet():
        copied = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 64, 64))
        # from_unet does not pass addition_embed_type_num_heads on (diffusers 0.42): rebuild with it.
        config = {k: v for k, v in copied.config.items() if k != "_use_default_values"}
        net = ControlNetModel.from_config(config,
                                          addition_embed_type_num_heads=unet.config.addition_embed_type_num_heads)
        net.load_state_dict(copied.state_dict())
        return net

    net = _start_from(init, from_unet).to(_DEVICE).train()
    unet = unet.to(_DEVICE)

    def loss_fn(step: int) -> torch.Tensor:
        idx = torch.randint(0, latents.shape[0], (plan.batch,), generator=gen)
        context = text(drop_captions([captions[i] for i in idx.tolist()], plan.caption_dropout, gen))
        noise = on_device(training_noise(latents[idx].shape, gen))
        t = on_device(torch.randint(0, scheduler.config.num_train_timesteps, (plan.batch,), generator=gen))
        noisy = scheduler.add_noise(on_device(latents[idx]), noise, t)
        down, mid = net(noisy, t, context, controlnet_cond=on_device(depth[idx]), return_dict=False)
        pred = unet(noisy, t, context, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid).sample
        per_item = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        return (per_item * min_snr_weights(scheduler, t, plan.snr_top)).mean()

    loss = train_loop("controlnet", list(net.parameters()), plan.controlnet_steps, plan.lr, loss_fn, log)
    return net.eval().requires_grad_(False), loss


def train_decoder(plan, vae, images: torch.Tensor, latents: torch.Tensor, gen, log):
    """Sharpen the VAE *decoder* with the encoder frozen: the latents, and so every model trained
    on them, stay valid, while pictures decode crisper and truer in colour."""
    import copy

    refined = copy.deepcopy(vae).train()
    refined.requires_grad_(False)
    refined.decoder.requires_grad_(True)
    refined.post_quant_conv.requires_grad_(True)
    params = [p for p in refined.parameters() if p.requires_grad]
    batch = max(1, plan.batch // 2)

    def loss_fn(step: int) -> torch.Tensor:
        # Whole pictures, unlike the VAE stage's crops: GroupNorm and the mid-block attention see
        # whole-picture statistics at generation time, so the decoder must learn on those.
        idx = torch.randint(0, latents.shape[0], (batch,), generator=gen)
        z = latents[idx]
        z = on_device(z + 0.05 * z.std() * torch.randn(z.shape, generator=gen))  # samples, not only means
        with wrapped_sometimes(refined, plan.wrap, gen):
            recon = refined.decode(z).sample
        x = on_device(images[idx])
        return reconstruction_loss(recon, x, plan.vae_edges)

    loss = train_loop("decoder", params, plan.decoder_steps, plan.lr, loss_fn, log)
    return refined.eval().requires_grad_(False), loss


def train_inpaint(plan, unet, latents, masked_latents, masks, captions, text, scheduler, gen, log):
    inpaint = inpaint_unet_from(unet.cpu()).to(_DEVICE).train()

    def loss_fn(step: int) -> torch.Tensor:
        idx = torch.randint(0, latents.shape[0], (plan.batch,), generator=gen)
        context = text(drop_captions([captions[i] for i in idx.tolist()], plan.caption_dropout, gen))
        extra = torch.cat([masks[idx], masked_latents[idx]], dim=1)
        return denoising_loss(inpaint, scheduler, latents[idx], context, gen, plan.snr_top, extra_inputs=extra)

    loss = train_loop("inpaint", list(inpaint.parameters()), plan.inpaint_steps, plan.lr, loss_fn, log)
    return inpaint.eval().requires_grad_(False), loss


# ---------------------------------------------------------------------------------------------


def _with_shape(example) -> str:
    suffix = f", {example.shape}"
    return example.caption if example.caption.endswith(suffix) else example.caption + suffix


def _stage_generator(seed: int, stage: str) -> torch.Generator:
    """One random stream per stage: a stage's result does not depend on which others ran."""
    return torch.Generator().manual_seed(seed * 1000 + STAGES.index(stage) + 1)


def _given(array: np.ndarray | None) -> np.ndarray:
    """An example's depth or mask (the depth-scene and inpaint sets always make them)."""
    if array is None:
        raise ValueError("a training example lacks the depth or mask its set always makes")
    return array


def train(out: Path, plan: Plan, stages: tuple[str, ...] = STAGES, threads: int = 1,
          quiet: bool = False, save: bool = True, work: Path | None = None, device: str = "cpu") -> dict:
    """Train ``stages`` (the rest come from the work folder or ``out``); write the model to
    ``out`` when ``save``. Returns the training log."""
    from transformers import CLIPTextModel, CLIPTokenizer

    global _DEVICE
    _DEVICE = torch.device(device)
    log = Log(quiet)
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    out = out.resolve()
    store = StageStore(work or out.with_name(out.name + ".stages"), out)
    came_from: dict[str, str] = {}  # stage -> "trained", "work" or "out"
    info: dict = {"losses": {}, "seconds": {}}

    log(f"generating data (seed {plan.seed}, {plan.size}px)")
    tex = dataset.make_set("texture", plan.textures, plan.size, plan.seed)
    scenes = dataset.make_set("depth", plan.depth_scenes, plan.size, plan.seed)
    images = to_tensor([e.image for e in tex] + [e.image for e in scenes])
    # The base UNet sees every scene captioned with its shape ("red bricks, sphere"), so a plain
    # "red bricks" means a whole texture; the ControlNet learns on the captions as drawn (half of
    # them without the shape: a depth map alone must be enough to make the shape).
    captions = [e.caption for e in tex] + [_with_shape(e) for e in scenes]
    scene_captions = [e.caption for e in scenes]

    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    unet_from_out = "unet" not in stages and not store.has("unet")
    if store.has_text_encoder():
        # the encoder the stages in the work folder were trained against, wherever they ran: a
        # fresh random init on another machine (another torch) need not give the same weights
        text_model = CLIPTextModel.from_pretrained(str(store.text_encoder_dir), torch_dtype=torch.float32)
    elif (unet_from_out or plan.finetune) and (out / "text_encoder").is_dir():
        text_model = CLIPTextModel.from_pretrained(str(out / "text_encoder"), torch_dtype=torch.float32)
    else:
        torch.manual_seed(plan.seed)  # the text encoder's random weights ARE part of the model
        text_model = CLIPTextModel(text_encoder_config())
    text_model = text_model.half().float().to(_DEVICE)  # train against exactly what ships (fp16)
    text = TextEncoder(text_model, tokenizer)

    def stage(name: str, fn):
        if name in stages:
            torch.manual_seed(plan.seed + STAGES.index(name))  # initial weights of this stage
            started = time.time()
            module, loss = fn(_stage_generator(plan.seed, name))
            seconds = round(time.time() - started, 1)
            store.keep_text_encoder(text.model)
            store.save(name, module, round(loss, 5), seconds)
            came_from[name] = "trained"
            info["losses"][name], info["seconds"][name] = round(loss, 5), seconds
            return module
        if not save and not any(name in NEEDS[s] for s in stages):
            return None  # --no-save: only what the requested stages build on is loaded
        module, stage_log, where = store.load(name, _DEVICE)
        came_from[name] = "work" if stage_log else "out"
        log(f"{name}: using {where}")
        previous = stage_log or (demo_manifest.read(out) or {}).get("training", {})
        if stage_log:
            info["losses"][name], info["seconds"][name] = stage_log["loss"], stage_log["seconds"]
        else:
            info["losses"][name] = previous.get("losses", {}).get(name)
            info["seconds"][name] = previous.get("seconds", {}).get(name)
        return module

    vae = stage("vae", lambda gen: train_vae(plan, images, gen, log))
    latents = encode(vae, images)
    if came_from["vae"] != "out":  # a finished model keeps the factor its UNet was trained with
        vae.register_to_config(scaling_factor=round(float(1.0 / latents.std()), 5))
    latents = latents * vae.config.scaling_factor

    scheduler = build_scheduler()
    from diffusers import DDPMScheduler

    noise_sched = DDPMScheduler.from_config(scheduler.config)
    start = out if plan.finetune else None
    unet = stage("unet", lambda gen: train_unet(plan, latents, captions, len(tex), text, noise_sched, gen, log,
                                                init=start / "unet" if start else None))

    n = len(tex)
    depth = torch.from_numpy(np.stack([_given(e.depth) for e in scenes]))[:, None].repeat(1, 3, 1, 1)
    controlnet = stage("controlnet", lambda gen: train_controlnet(
        plan, unet, latents[n:], depth, scene_captions, text, noise_sched, gen, log,
        init=start / demo_manifest.CONTROLNET_SUBDIRS["depth"] if start else None))

    def inpaint_stage(gen):
        holes = dataset.make_set("inpaint", plan.inpaint_examples, plan.size, plan.seed)
        hole_images = to_tensor([e.image for e in holes])
        hole_masks = torch.from_numpy(np.stack([_given(e.mask) for e in holes]))[:, None]
        # What the diffusers inpaint pipeline feeds the UNet: the picture with the hole set to 0
        # (mid grey in [-1, 1]) encoded, and the mask shrunk to latent size.
        masked_latents = encode(vae, hole_images * (hole_masks < 0.5)) * vae.config.scaling_factor
        small_masks = F.interpolate(hole_masks, size=(plan.size // 8, plan.size // 8))
        return train_inpaint(plan, unet, encode(vae, hole_images) * vae.config.scaling_factor, masked_latents,
                             small_masks, [e.caption for e in holes], text, noise_sched, gen, log)

    inpaint = stage("inpaint", inpaint_stage)
    decoder = stage("decoder", lambda gen: train_decoder(plan, vae, images, latents / vae.config.scaling_factor,
                                                         gen, log))
    if decoder is not None:
        decoder.register_to_config(scaling_factor=vae.config.scaling_factor)

    known = [v for v in info["seconds"].values() if isinstance(v, (int, float))]
    info["total_seconds"] = round(sum(known), 1)
    info["threads"] = threads
    info["device"] = str(_DEVICE)
    info["torch"] = torch.__version__
    info["preview"] = latent_rgb_factors(vae, latents / vae.config.scaling_factor, images)
    if not save:
        log(f"stages {', '.join(stages)} done (kept in {store.work}); not saving the model (--no-save)")
        return info

    # Write beside the target and swap in at the end: a failed run never leaves half a model.
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    parts = dict(vae=decoder, text_encoder=text.model, tokenizer=tokenizer, scheduler=scheduler, unet=unet,
                 inpaint=inpaint, controlnet=controlnet)
    save_pipelines(staging, parts, info, plan)
    if out.exists():
        backup = out.with_name(out.name + ".old")
        shutil.rmtree(backup, ignore_errors=True)
        out.rename(backup)
        staging.rename(out)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        staging.rename(out)
    shutil.rmtree(store.work, ignore_errors=True)  # the stages now live in the model
    log(f"saved to {out} in {time.time() - log.start:.0f}s; losses {info['losses']}")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brushwork.demo.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=demo_manifest.WEIGHTS_DIR,
                        help="where to write the model (default: the package's shipped weights)")
    parser.add_argument("--quick", action="store_true", help="a few steps of each stage (for tests)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated subset of {','.join(STAGES)}; the others come from the "
                             "work folder (finished stages) or from --out")
    parser.add_argument("--work", type=Path, default=None,
                        help="where finished stages wait until the model is saved (default: OUT.stages)")
    parser.add_argument("--no-save", action="store_true",
                        help="train the stages into the work folder only (to run stages in parallel)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: the same batches, faster")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=N",
                        help="override one number of the training plan, e.g. --set unet_steps=3000")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"--stages: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if "vae" in stages and not args.no_save and set(stages) != set(STAGES):
        parser.error("--stages: a new VAE means new latents, so every other stage must be retrained "
                     "with it (give all stages, or use --no-save and assemble later)")
    plan = Plan.quick() if args.quick else Plan()
    if args.seed is not None:
        plan.seed = args.seed
    for item in args.set:
        field, _, value = item.partition("=")
        current = getattr(plan, field.strip(), None)
        if not isinstance(current, (int, float)) or not value.strip():
            parser.error(f"--set {item!r}: give FIELD=NUMBER with FIELD one of {', '.join(vars(plan))}")
        try:
            setattr(plan, field.strip(), type(current)(value))
        except ValueError:
            parser.error(f"--set {item!r}: {value!r} is not a {type(current).__name__}")
    try:
        train(args.out, plan, stages, threads=args.threads, quiet=args.quiet, save=not args.no_save, work=args.work,
              device=args.device)
    except KeyboardInterrupt:
        print("brushwork.demo.train: interrupted; finished stages are kept in the work folder, "
              "the previous model (if any) is untouched", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
