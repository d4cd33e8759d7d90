"""Which model paths (model, VAE, ControlNet, LoRA, embedding) the worker opens for a client.

A pipeline script's Recipe must work the same in-process and through the worker, and in-process
it may name a checkpoint by its path. The worker therefore accepts a path when:
- the client is on this machine: the request came over loopback (and, as every request, carried
  the token, which only this user can read), or the operator allowed remote paths with
  ``BRUSHWORK_WORKER_REMOTE_PATHS=1`` (a worker that ``--listen``s on a network and trusts it);
- it is absolute (``~`` expands to the worker's home), not a URL, and names a ``.safetensors``
  file or a diffusers folder; pickle checkpoints (.ckpt/.pt/.bin/.pth) are refused unless the
  worker's settings opt in (``allow_pickle``), exactly as for models found by name.
Everything else is refused with one line naming the field, before the job is queued.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from ..errors import RecipeError

ENV_REMOTE_PATHS = "BRUSHWORK_WORKER_REMOTE_PATHS"
SAFE_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
FOLDER_MARKERS = ("model_index.json", "config.json")  # a diffusers pipeline / component folder


def remote_paths_allowed() -> bool:
    return os.environ.get(ENV_REMOTE_PATHS, "").strip().lower() in ("1", "true", "yes", "on")


def is_loopback_peer(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def _allow_pickle() -> bool:
    from ..models.settings import Settings

    return bool(Settings.load().allow_pickle)


def check_model_path(where: str, ref: str, peer: str) -> None:
    """Raise RecipeError unless the worker may open the model path ``ref`` for a client at ``peer``."""
    if "://" in ref:
        raise RecipeError(where, f"the worker never downloads from URLs; give a model name, hub id or file path "
                                 f"(got {ref[:80]!r})")
    if not (is_loopback_peer(peer) or remote_paths_allowed()):
        raise RecipeError(where, "model paths are accepted only from clients on the worker's own machine "
                                 f"(the operator can allow others with {ENV_REMOTE_PATHS}=1); "
                                 f"use a model name (got {ref[:80]!r})")
    path = Path(ref).expanduser()
    if not path.is_absolute():
        raise RecipeError(where, f"a model path must be absolute (the worker's folder is not yours): {ref[:80]!r}")
    if not path.exists():
        raise RecipeError(where, f"{str(path)[:200]}: no such file or folder on the worker's machine")
    if path.is_dir():
        if not any((path / marker).is_file() for marker in FOLDER_MARKERS):
            raise RecipeError(where, f"{str(path)[:200]}: not a diffusers model folder "
                                     "(no model_index.json or config.json)")
        return
    suffix = path.suffix.lower()
    if suffix == SAFE_SUFFIX:
        return
    if suffix in PICKLE_SUFFIXES:
        if _allow_pickle():
            return
        raise RecipeError(where, f"{path.name}: a pickle checkpoint ({suffix}) can run code when loaded, so the "
                                 "worker refuses it; convert it to .safetensors, or opt in with allow_pickle")
    raise RecipeError(where, f"{path.name}: unsupported model format {suffix or '(none)'}; use .safetensors "
                             "or a diffusers folder")
