"""``brushwork models list|pull|info`` (registered by the CLI; torch loads only inside ``pull``).

Errors are raised as BrushworkError subclasses: the CLI prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import BrushworkError, ModelNotFoundError, UnsafeCheckpointError
from .settings import Settings
from .sources import KINDS, ModelRef, list_models, resolve


def register(subparsers) -> None:
    models = subparsers.add_parser("models", help="list, download and inspect models")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    ls = sub.add_parser("list", help="models in your model folders, the Hugging Face cache and the demo")
    ls.add_argument("--kind", choices=(*KINDS, UPSCALER), help="only this kind")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=cmd_list)
    pull = sub.add_parser("pull", help="download a hub model into the standard HF cache (fp16 where it exists)")
    pull.add_argument("id", metavar="ID", help="hub repo id, e.g. stabilityai/sdxl-turbo")
    pull.set_defaults(func=cmd_pull)
    info = sub.add_parser("info", help="family, variant, source, files and hash of one model")
    info.add_argument("name", metavar="NAME", help="model name, path or hub id")
    info.add_argument("--kind", choices=KINDS, help="what NAME is (default: tried in order)")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)


def _row(ref: ModelRef) -> dict:
    return {"name": ref.name, "kind": ref.kind, "family": ref.family, "variant": ref.variant,
            "source": ref.source, "location": ref.describe(), "cached": ref.cached}


UPSCALER = "upscaler"  # super-resolution models (models/upscalers.py): files, no family


def _upscaler_rows(settings) -> list[dict]:
    """The upscalers in the model folders' upscaler sub-folders (ESRGAN, upscale_models, ...),
    by the name a Recipe's ``upscale.model`` takes; a pickle says it needs the opt-in."""
    from .upscalers import PICKLE_EXTS, list_upscalers

    return [{"name": name, "kind": UPSCALER, "family": None, "variant": "", "source": "folder",
             "location": str(path), "cached": True,
             "pickle": path.suffix.lower() in PICKLE_EXTS} for name, path in list_upscalers(settings)]


def cmd_list(args: argparse.Namespace) -> int:
    settings = Settings.load()
    kinds = tuple(k for k in ((args.kind,) if args.kind else KINDS) if k != UPSCALER)
    found = list_models(settings, kinds=kinds) if kinds else []
    upscalers = _upscaler_rows(settings) if args.kind in (None, UPSCALER) else []
    if args.json:
        for ref in found:
            print(json.dumps(_row(ref)))
        for row in upscalers:
            print(json.dumps(row))
        return 0
    if not found and not upscalers:
        where = ", ".join(str(d) for d in settings.model_dirs) or "none"
        print(f"no models found (model folders: {where}; set model_dirs in {Settings.path()} "
              "or BRUSHWORK_MODEL_DIRS, or `brushwork models pull ID`)")
        return 0
    print(f"{'name':<40} {'kind':<10} {'family':<6} {'variant':<8} source")
    for ref in found:
        print(f"{ref.name:<40} {ref.kind:<10} {ref.family or '?':<6} {ref.variant:<8} "
              f"{ref.source}: {ref.describe()}")
    for row in upscalers:
        note = " (a pickle: loads only with BRUSHWORK_ALLOW_PICKLE=1)" if row["pickle"] else ""
        print(f"{row['name']:<40} {UPSCALER:<10} {'-':<6} {'':<8} {row['source']}: {row['location']}{note}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    settings = Settings.load()
    ref = _resolve_any(args.name, args.kind, settings)
    from .loading import model_hash, weight_files

    row = _row(ref)
    try:
        files = weight_files(ref)
        row["files"] = [{"path": str(f), "bytes": f.stat().st_size} for f in files]
        row["sha256"] = model_hash(ref)
    except ModelNotFoundError as exc:
        row["files"], row["sha256"] = [], None
        row["note"] = str(exc)
    if ref.kind == "pipeline":
        from .defaults import defaults_for_ref

        found = defaults_for_ref(ref)
        row["recommended"] = {"steps": found.steps, "cfg": found.cfg, "sampler": found.sampler,
                              "width": found.width, "height": found.height, "from": found.why}
    if args.json:
        print(json.dumps(row))
        return 0
    for key in ("name", "kind", "family", "variant", "source", "location", "sha256"):
        print(f"{key + ':':<10} {row[key] if row[key] is not None else '?'}")
    if "recommended" in row:
        rec = row["recommended"]
        print(f"{'defaults:':<10} {rec['width']}x{rec['height']}, {rec['steps']} steps, CFG {rec['cfg']:g}, "
              f"{rec['sampler']} ({rec['from']}; what `brushwork generate` uses when you leave them out)")
    for f in row["files"]:
        print(f"{'file:':<10} {f['path']} ({f['bytes'] / 1e6:.1f} MB)")
    if row.get("note"):
        print(f"{'note:':<10} {row['note']}")
    return 0


def _resolve_any(name: str, kind: str | None, settings) -> ModelRef:
    if kind:
        return resolve(name, kind, settings)
    first_error: BrushworkError | None = None
    for k in KINDS:
        try:
            return resolve(name, k, settings)
        except UnsafeCheckpointError:
            raise
        except ModelNotFoundError as exc:
            first_error = first_error or exc
    raise first_error  # type: ignore[misc]


def cmd_pull(args: argparse.Namespace) -> int:
    settings = Settings.load()
    repo_id = args.id.strip()
    if "/" not in repo_id:
        raise ModelNotFoundError(f"{repo_id!r} is not a hub id (expected OWNER/NAME)")
    if settings.offline:
        raise ModelNotFoundError(f"cannot download {repo_id}: offline (HF_HUB_OFFLINE=1 or offline = true)")
    _check_network(repo_id)
    try:
        kind, files = _repo_files(repo_id)
        folder = _download_pipeline(repo_id) if kind == "pipeline" else _download_files(repo_id, files)
    except BrushworkError:
        raise
    except Exception as exc:  # no network, 404, gated repo: one line, naming the model
        raise ModelNotFoundError(f"cannot download {repo_id}: {_reason(exc)}") from None
    print(f"{repo_id}: {kind} in {folder}")
    return 0


def _check_network(repo_id: str) -> None:
    """Fail fast and in one line: the hub client would retry for half a minute, logging each try."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot download {repo_id}: no network connection to {host} ({exc.strerror or exc})") from None


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if "RepositoryNotFound" in name or "404" in text:
        return "no such repository on the hub (or it is private/gated)"
    if any(s in name for s in ("Connect", "Timeout", "Network", "Offline")) or "resolve" in text.lower():
        return "no network connection to huggingface.co"
    return f"{name}: {text[:200]}"


def _repo_files(repo_id: str) -> tuple[str, list[str]]:
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(repo_id)
    if "model_index.json" in files:
        return "pipeline", files
    weights = [f for f in files if f.endswith(".safetensors")]
    if "config.json" in files and weights:
        return "component", files
    if weights:
        return "lora", files
    raise ModelNotFoundError(f"{repo_id}: no .safetensors weights in that repository (pickles are not pulled)")


def _download_pipeline(repo_id: str) -> str:
    from diffusers import DiffusionPipeline

    skip = {"safety_checker": None, "feature_extractor": None}  # never used: not downloaded
    try:
        return DiffusionPipeline.download(repo_id, variant="fp16", **skip)
    except ValueError as exc:
        if "variant" not in str(exc):
            raise
    return DiffusionPipeline.download(repo_id, **skip)


def _download_files(repo_id: str, files: list[str]) -> str:
    """A component (ControlNet, VAE) or LoRA repo: config + fp16 weights where they exist."""
    from pathlib import PurePosixPath

    from huggingface_hub import hf_hub_download

    weights = [f for f in files if f.endswith(".safetensors")]
    fp16 = [f for f in weights if ".fp16." in f]
    chosen = fp16 or [f for f in weights if ".fp16." not in f]
    wanted = [f for f in files if PurePosixPath(f).name == "config.json"] + chosen
    last = ""
    for f in wanted:
        last = hf_hub_download(repo_id, f)
    return str(PurePosixPath(last).parent) if last else ""


if __name__ == "__main__":  # `python -m brushwork.models.commands ...` for debugging without the CLI
    parser = argparse.ArgumentParser(prog="brushwork")
    register(parser.add_subparsers(dest="command"))
    ns = parser.parse_args()
    sys.exit(ns.func(ns))
