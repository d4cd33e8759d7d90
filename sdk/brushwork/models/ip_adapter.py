"""Where an IP-Adapter and its image encoder come from (stdlib + huggingface_hub, no torch).

``resolve_adapter(spec, family, settings) -> AdapterRef``. A reference's ``model`` may be:

- empty: the family's default, h94/IP-Adapter (SD 1.5: ``models/ip-adapter_sd15.safetensors``;
  SDXL: ``sdxl_models/ip-adapter_sdxl_vit-h.safetensors``; both with ``models/image_encoder``,
  the ViT-H encoder);
- a known short name (``ip-adapter-plus_sd15``, ``ip-adapter_sdxl`` ...: see ``KNOWN``);
- a hub file, ``owner/repo/path/in/repo.safetensors``;
- a path (where the caller allows paths): a ``.safetensors`` file, or a folder holding one;
- a name in the user's model folders (A1111 keeps IP-Adapters in ``models/ControlNet``, ComfyUI
  in ``models/ipadapter``).

The image encoder is the ``image_encoder`` folder beside the adapter file (h94's layout, which a
local copy of the repo keeps), else the public encoder the adapter's own tensor shapes call for
(ViT-H or ViT-bigG, from h94/IP-Adapter). Pickle weights (``.bin``) are refused unless
``allow_pickle``; offline, a hub file missing from the HF cache is a clear error before any model
loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotFoundError, UnsafeCheckpointError
from . import family as fam
from . import modeldirs
from .sources import PathPolicy, hub_cached_file

H94 = "h94/IP-Adapter"
# name -> (hub repo, file in it, image encoder folder in it)
KNOWN: dict[str, tuple[str, str, str]] = {
    "ip-adapter_sd15": (H94, "models/ip-adapter_sd15.safetensors", "models/image_encoder"),
    "ip-adapter_sd15_light": (H94, "models/ip-adapter_sd15_light.safetensors", "models/image_encoder"),
    "ip-adapter-plus_sd15": (H94, "models/ip-adapter-plus_sd15.safetensors", "models/image_encoder"),
    "ip-adapter-plus-face_sd15": (H94, "models/ip-adapter-plus-face_sd15.safetensors", "models/image_encoder"),
    "ip-adapter_sdxl_vit-h": (H94, "sdxl_models/ip-adapter_sdxl_vit-h.safetensors", "models/image_encoder"),
    "ip-adapter-plus_sdxl_vit-h": (H94, "sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors",
                                   "models/image_encoder"),
    "ip-adapter_sdxl": (H94, "sdxl_models/ip-adapter_sdxl.safetensors", "sdxl_models/image_encoder"),
}
DEFAULTS = {"sd15": "ip-adapter_sd15", "sdxl": "ip-adapter_sdxl_vit-h"}
# The public encoder an adapter needs, by (what it reads, width): a plain adapter reads the
# projected image embedding, a "plus" one the penultimate hidden states.
ENCODERS: dict[tuple[str, int], tuple[str, str]] = {
    ("embeds", 1024): (H94, "models/image_encoder"),  # OpenCLIP ViT-H/14
    ("hidden", 1280): (H94, "models/image_encoder"),
    ("embeds", 1280): (H94, "sdxl_models/image_encoder"),  # OpenCLIP ViT-bigG/14
    ("hidden", 1664): (H94, "sdxl_models/image_encoder"),
}
ENCODER_FOLDER = "image_encoder"
SUBDIRS = ("ipadapter", "ip-adapter", "IP-Adapter", "ControlNet", "controlnet")
_FAMILY_BY_CROSS_DIM = {768: "sd15", 2048: "sdxl"}


@dataclass(frozen=True)
class EncoderRef:
    """A CLIPVisionModelWithProjection: a hub repo + sub-folder, or a local folder."""

    location: str  # hub repo id, or a folder path
    subfolder: str  # inside a hub repo ("" for a local folder)
    source: str  # "hub" | "folder"

    @property
    def key(self) -> str:
        return f"hub:{self.location}/{self.subfolder}" if self.source == "hub" else str(Path(self.location).resolve())

    def describe(self) -> str:
        return f"{self.location}/{self.subfolder}" if self.subfolder else self.location


@dataclass(frozen=True)
class AdapterRef:
    """One adapter file: ``folder`` (a hub repo id or a local folder) + ``subfolder`` + ``weight_name``
    are exactly what diffusers' ``load_ip_adapter`` takes."""

    name: str  # what the user typed (or the default's short name)
    folder: str
    subfolder: str
    weight_name: str
    source: str  # "hub" | "single_file"
    encoder: EncoderRef
    family: str | None = None  # from its tensor shapes where they tell (768: SD 1.5, 2048: SDXL)
    cross_attention_dim: int | None = None
    pickle: bool = False

    @property
    def key(self) -> str:
        if self.source == "hub":
            return f"hub:{self.folder}/{self.subfolder}/{self.weight_name}"
        return str(self.path.resolve())

    @property
    def path(self) -> Path:
        """The local file (single_file adapters)."""
        return Path(self.folder) / self.subfolder / self.weight_name

    def describe(self) -> str:
        """For metadata and messages: hub repo/path, or the file's path."""
        if self.source == "hub":
            return f"{self.folder}/{self.subfolder}/{self.weight_name}".replace("//", "/")
        return str(self.path)


def default_name(family: str | None) -> str:
    if family not in DEFAULTS:
        raise ModelNotFoundError(f"reference images need an SD 1.5 or SDXL model (this one is {family or 'unknown'})")
    return DEFAULTS[family]


def resolve_adapter(spec: str, family: str | None, settings, *, allow_paths: PathPolicy = True) -> AdapterRef:
    """The adapter ``spec`` names (empty: the family's default), checked against ``family`` where
    its shapes tell, with its image encoder; offline, both must be on this machine."""
    spec = (spec or "").strip()
    allow_pickle = bool(getattr(settings, "allow_pickle", False))
    if not spec:
        spec = default_name(family)
    if spec in KNOWN:
        repo, file, encoder = KNOWN[spec]
        ref = _hub_file(spec, repo, file, EncoderRef(repo, encoder, "hub"), allow_pickle)
    else:
        ref = _resolve_named(spec, settings, allow_paths=allow_paths, allow_pickle=allow_pickle)
    if family and ref.family and ref.family != family:
        raise ModelNotFoundError(f"IP-Adapter {spec!r} is for {ref.family} models, but the model is {family}")
    if getattr(settings, "offline", False):
        _check_offline(ref)
    return ref


def _resolve_named(spec: str, settings, *, allow_paths: PathPolicy, allow_pickle: bool) -> AdapterRef:
    rel = modeldirs.check_name(spec)
    if rel is not None and getattr(settings, "model_dirs", None):
        hit = _find_in_model_dirs(settings.model_dirs, spec)
        if hit is not None:
            return _from_path(hit, spec, allow_pickle)
    as_path = Path(spec).expanduser()
    path_like = as_path.is_absolute() or spec.startswith((".", "~")) or "\\" in spec
    if (allow_paths is True and (path_like or as_path.exists())) or (
            allow_paths == "absolute" and as_path.is_absolute()):
        if not as_path.exists():
            raise ModelNotFoundError(f"IP-Adapter {spec!r}: no such file or folder")
        return _from_path(as_path, as_path.name, allow_pickle)
    if path_like:
        raise ModelNotFoundError(
            f"IP-Adapter {spec!r}: paths are not accepted here; put it in a model folder and use its name")
    parts = spec.split("/")
    if len(parts) >= 3 and Path(spec).suffix.lower() in modeldirs.WEIGHT_EXTS:
        repo, file = "/".join(parts[:2]), "/".join(parts[2:])
        return _hub_file(spec, repo, file, None, allow_pickle)
    where = ", ".join(str(d) for d in getattr(settings, "model_dirs", []) or []) or "no model folders configured"
    raise ModelNotFoundError(
        f"IP-Adapter {spec!r} not found (known names: {', '.join(sorted(KNOWN))}; a hub file is "
        f"owner/repo/path/file.safetensors; model folders: {where})")


def _find_in_model_dirs(dirs, name: str) -> Path | None:
    rel = modeldirs.check_name(name)
    if rel is None:
        return None
    for root in dirs:
        for base in (Path(root).expanduser(), Path(root).expanduser() / "models"):
            for sub in SUBDIRS:
                folder = base / sub
                if not folder.is_dir():
                    continue
                exact = folder.joinpath(*rel.parts)
                if exact.is_file() or (exact.is_dir() and _weights_in(exact)):
                    return exact
                for ext in modeldirs.WEIGHT_EXTS:
                    candidate = folder.joinpath(*rel.parts[:-1]) / (rel.name + ext)
                    if candidate.is_file():
                        return candidate
    return None


def _weights_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in modeldirs.WEIGHT_EXTS)


def _from_path(path: Path, name: str, allow_pickle: bool) -> AdapterRef:
    if path.is_dir():
        files = _weights_in(path)
        safe = [p for p in files if p.suffix.lower() == ".safetensors"]
        if len(safe) == 1 or (not safe and len(files) == 1):
            path = (safe or files)[0]
        elif not files:
            raise ModelNotFoundError(f"{path}: no IP-Adapter weights (.safetensors) inside")
        else:
            raise ModelNotFoundError(
                f"{path}: holds several weight files ({', '.join(p.name for p in files[:4])}); name the file")
    suffix = path.suffix.lower()
    pickle = suffix in modeldirs.PICKLE_EXTS
    if pickle:
        _refuse_pickle(path.name, suffix, allow_pickle)
    elif suffix != ".safetensors":
        raise ModelNotFoundError(f"{path.name}: unsupported IP-Adapter format {suffix or '(none)'}; use .safetensors")
    shapes = {} if pickle else fam.read_safetensors_header(path).shapes
    info = _adapter_shapes(shapes, path.name) if shapes else {}
    beside = path.parent / ENCODER_FOLDER
    if beside.is_dir():
        from .folder_pickles import refuse_folder_pickles

        refuse_folder_pickles(beside, allow_pickle)
        encoder = EncoderRef(str(beside), "", "folder")
    else:
        encoder = _public_encoder(info, path.name)
    return AdapterRef(name=name, folder=str(path.parent), subfolder="", weight_name=path.name,
                      source="single_file", encoder=encoder, family=info.get("family"),
                      cross_attention_dim=info.get("cross"), pickle=pickle)


def _hub_file(name: str, repo: str, file: str, encoder: EncoderRef | None, allow_pickle: bool) -> AdapterRef:
    subfolder, _, weight = file.rpartition("/")
    suffix = Path(weight).suffix.lower()
    if suffix in modeldirs.PICKLE_EXTS:
        _refuse_pickle(weight, suffix, allow_pickle)
    info: dict = {}
    cached = hub_cached_file(repo, file)
    if cached and suffix == ".safetensors":
        info = _adapter_shapes(fam.read_safetensors_header(Path(cached)).shapes, weight)
    if encoder is None:  # an unknown hub file: the encoder beside it if the repo has one, else by shape
        if hub_cached_file(repo, f"{subfolder}/{ENCODER_FOLDER}/config.json".lstrip("/")):
            encoder = EncoderRef(repo, f"{subfolder}/{ENCODER_FOLDER}".lstrip("/"), "hub")
        else:
            encoder = _public_encoder(info, weight)
    return AdapterRef(name=name, folder=repo, subfolder=subfolder, weight_name=weight, source="hub",
                      encoder=encoder, family=info.get("family"), cross_attention_dim=info.get("cross"),
                      pickle=suffix in modeldirs.PICKLE_EXTS)


def _refuse_pickle(name: str, suffix: str, allow_pickle: bool) -> None:
    if not allow_pickle:
        raise UnsafeCheckpointError(
            f"{name}: a pickle IP-Adapter ({suffix}) can run arbitrary code when loaded, so it is refused; "
            "use its .safetensors version (h94/IP-Adapter ships both), or if you trust its source opt in "
            "with BRUSHWORK_ALLOW_PICKLE=1 or allow_pickle = true in settings.toml")


def _adapter_shapes(shapes: dict, name: str) -> dict:
    """What an adapter file's tensor shapes say: its cross-attention width (so its family), and
    which encoder output it reads at which width."""
    if not any(k.startswith("ip_adapter.") for k in shapes) or not any(k.startswith("image_proj.") for k in shapes):
        raise fam.CorruptModelError(f"{name}: not an IP-Adapter (no image_proj.* and ip_adapter.* tensors)")
    out: dict = {}
    k_ip = shapes.get("ip_adapter.1.to_k_ip.weight")
    if k_ip and len(k_ip) == 2:
        out["cross"] = int(k_ip[1])
        out["family"] = _FAMILY_BY_CROSS_DIM.get(out["cross"])
    if "image_proj.proj.weight" in shapes:  # plain IP-Adapter: the projected image embedding
        out["reads"] = ("embeds", int(shapes["image_proj.proj.weight"][-1]))
    elif "image_proj.proj_in.weight" in shapes:  # plus (Resampler): penultimate hidden states
        out["reads"] = ("hidden", int(shapes["image_proj.proj_in.weight"][-1]))
    elif "image_proj.proj.0.weight" in shapes:  # full face (MLP): hidden states
        out["reads"] = ("hidden", int(shapes["image_proj.proj.0.weight"][-1]))
    return out


def _public_encoder(info: dict, name: str) -> EncoderRef:
    """The public encoder the adapter's shapes call for; with no shapes to read (a hub file not
    downloaded yet, a pickle), h94's naming: only "sdxl" without "vit-h" reads ViT-bigG."""
    if not info:
        bigg = "sdxl" in name.lower() and "vit-h" not in name.lower()
        return EncoderRef(H94, "sdxl_models/image_encoder" if bigg else "models/image_encoder", "hub")
    reads = info.get("reads")
    if reads in ENCODERS:
        repo, sub = ENCODERS[reads]
        return EncoderRef(repo, sub, "hub")
    raise ModelNotFoundError(
        f"{name}: no image encoder beside it (an '{ENCODER_FOLDER}' folder) and its shapes name no "
        "public one; put its CLIP vision encoder (diffusers/transformers folder) in an "
        f"'{ENCODER_FOLDER}' folder next to the file")


def _check_offline(ref: AdapterRef) -> None:
    missing = []
    if ref.source == "hub" and not hub_cached_file(ref.folder, f"{ref.subfolder}/{ref.weight_name}".lstrip("/")):
        missing.append(f"{ref.subfolder}/{ref.weight_name}".lstrip("/"))
    enc = ref.encoder
    if enc.source == "hub":
        for part in ("config.json", "model.safetensors"):
            if not hub_cached_file(enc.location, f"{enc.subfolder}/{part}"):
                missing.append(f"{enc.subfolder}/{part}")
    if missing:
        repo = ref.folder if ref.source == "hub" else enc.location
        raise ModelNotFoundError(
            f"IP-Adapter {ref.name!r} is not downloaded and Brushwork is offline (missing from {repo}: "
            f"{', '.join(missing)}); get it where there is network with `hf download {repo} "
            f"{' '.join(missing)}`, or use a local .safetensors adapter with an image_encoder folder beside it")
