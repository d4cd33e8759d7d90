"""``brushwork doctor``: check an installation end to end with the bundled demo model.

Registered by the CLI (``register(subparsers)``); importing this module imports no torch: the
checks import what they test, one at a time, so a broken torch is *reported*, not a crash.

It writes nothing outside one temporary folder: the generation runs with ``BRUSHWORK_HOME``
pointed at that folder (asset store, outputs), which is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Check:
    name: str
    status: str
    detail: str


def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check this installation end to end with the bundled demo model",
                              description="Imports, device, the demo model, the worker, and one real "
                                          "1-step generation (in a temporary folder, deleted afterwards).")
    p.add_argument("--device", default=None, help="cuda, cpu or mps (default: the best available)")
    p.add_argument("--json", action="store_true", help="print the checks as one JSON object")
    p.add_argument("--no-generate", action="store_true", help="skip the test generation")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    checks = run_checks(device=args.device, generate=not args.no_generate)
    failed = [c for c in checks if c.status == FAIL]
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"  {c.status:<4}  {c.name:<{width}}  {c.detail}")
        if failed:
            print(f"brushwork doctor: {len(failed)} problem(s): {', '.join(c.name for c in failed)}")
        else:
            print("brushwork doctor: everything works")
    return 1 if failed else 0


def run_checks(device: str | None = None, generate: bool = True) -> list[Check]:
    checks: list[Check] = [_python()]
    for module in ("numpy", "PIL", "torch", "diffusers", "transformers", "safetensors", "huggingface_hub"):
        checks.append(_import(module))
    torch_ok = all(c.status == OK for c in checks if c.name in ("torch", "diffusers", "transformers"))
    checks.append(_device(device) if torch_ok else Check("device", FAIL, "skipped: torch/diffusers did not import"))
    checks.append(_demo_model())
    checks.append(_canvas_libraries())
    checks.append(_worker())
    if generate:
        ready = torch_ok and _status(checks, "demo model") == OK and _status(checks, "device") == OK
        checks.append(_generation(device) if ready else
                      Check("generation", FAIL, "skipped: needs torch, a device and the demo model"))
    return checks


def _status(checks: list[Check], name: str) -> str:
    return next((c.status for c in checks if c.name == name), FAIL)


def _python() -> Check:
    version = platform.python_version()
    status = OK if sys.version_info >= (3, 11) else FAIL
    return Check("python", status, f"{version} ({sys.executable})" + ("" if status == OK else ": 3.11+ is needed"))


def _import(name: str) -> Check:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # an ImportError, or a broken binary raising anything at import
        return Check(name, FAIL, f"does not import: {type(exc).__name__}: {_line(exc)}")
    version = getattr(module, "__version__", "?")
    return Check(name, OK, str(version))


def _device(requested: str | None) -> Check:
    import torch

    try:
        from ..engine.fastpath import pick_device

        device = pick_device(requested)
    except Exception as exc:
        return Check("device", FAIL, _line(exc))
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        detail = f"{device}: {props.name}, {props.total_memory / 2**30:.1f} GiB, CUDA {torch.version.cuda}"
    elif device == "mps":
        detail = "mps (Apple GPU)"
    else:
        hint = "" if torch.cuda.is_available() else " (no CUDA GPU found: generation will be slow)"
        detail = f"cpu, {torch.get_num_threads()} threads{hint}"
    return Check("device", OK, detail)


def _demo_model() -> Check:
    from . import info, weights_dir

    folder = weights_dir()
    if folder is None:
        return Check("demo model", FAIL, "the bundled demo weights are missing from this installation "
                                         "(reinstall, or run `python -m brushwork.demo.train`)")
    size = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    native = (info() or {}).get("native_size", "?")
    return Check("demo model", OK, f"{folder} ({size / 2**20:.1f} MB, native {native}x{native})")


def _canvas_libraries() -> Check:
    """Informational: the CLI and worker run without the canvas, but an artist wants to know now
    (not from a Qt abort) which system packages the canvas lacks, and the exact command."""
    from .qt_libs import check

    ok, line = check()
    return Check("canvas (Qt xcb)", OK if ok else WARN, line)


def _worker() -> Check:
    """Informational: a worker that is not running is normal (it starts on demand)."""
    try:
        from ..client import connect

        client = connect(start=False, request_timeout=3.0)
        health = client.health()
    except ImportError:
        return Check("worker", WARN, "brushwork.client is not installed")
    except Exception as exc:
        return Check("worker", OK, f"not running ({_line(exc)}); it starts when a client needs it")
    version = health.get("version", "?") if isinstance(health, dict) else "?"
    return Check("worker", OK, f"running at {client.url} (version {version})")


@contextlib.contextmanager
def _temporary_home():
    """Point BRUSHWORK_HOME at a fresh temporary folder for the duration, then delete it."""
    before = os.environ.get("BRUSHWORK_HOME")
    with tempfile.TemporaryDirectory(prefix="brushwork-doctor-") as tmp:
        os.environ["BRUSHWORK_HOME"] = tmp
        try:
            yield Path(tmp)
        finally:
            if before is None:
                os.environ.pop("BRUSHWORK_HOME", None)
            else:
                os.environ["BRUSHWORK_HOME"] = before


def _generation(device: str | None) -> Check:
    """One real 1-step txt2img with the demo model through Studio, saved with its metadata."""
    from . import native_size, weights_dir

    try:
        from ..engine.studio import Studio
        from ..recipe import Recipe

        _quiet_libraries()
        size = native_size()
        with _temporary_home() as home:
            started = time.perf_counter()
            studio = Studio(device=device)
            recipe = Recipe(prompt="red bricks", model=str(weights_dir()), steps=1, width=size, height=size,
                            seed=1, sampler="Euler a", cfg=5.0)
            result = studio.generate(recipe)
            saved = result.save(home / "doctor.png")
            seconds = time.perf_counter() - started
            from PIL import Image

            with Image.open(saved[0]) as image:
                image.load()
                shape = image.size
    except Exception as exc:
        return Check("generation", FAIL, f"{type(exc).__name__}: {_line(exc)}")
    return Check("generation", OK, f"1 step at {shape[0]}x{shape[1]} on {studio.device} in {seconds:.1f} s "
                                   "(loaded, generated, saved with metadata; temp files removed)")


def _quiet_libraries() -> None:
    """The report is the output: no loading bars or deprecation chatter from the libraries."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
