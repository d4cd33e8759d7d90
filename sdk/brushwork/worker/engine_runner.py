"""The GPU thread: one Studio, jobs one at a time from the hub's FIFO queue.

torch and the engine are imported here, on this thread, after the HTTP server already answers:
clients see a healthy worker at once and their first job waits for the engine to load.
Every failure becomes the job's error (with the engine's code); this thread never dies of one.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import logging
import re
import threading
import time
import traceback
from typing import Any

from .. import protocol
from ..errors import (
    BrushworkError,
    CancelledError,
    InputImageError,
    ModelNotFoundError,
    OutOfMemoryError,
    OutputFolderError,
    RecipeError,
)
from ..recipe import Recipe
from .hub import Hub, Job
from .outputs import Outputs

log = logging.getLogger("brushwork.worker")

_CPU_OOM = re.compile(r"can't allocate memory: you tried to allocate (\d+) bytes")
_CUDA_OOM = re.compile(r"Tried to allocate ([0-9.]+) (GiB|MiB|KiB|B)")
_UNITS = {"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10, "B": 1}


class EngineRunner(threading.Thread):
    def __init__(self, hub: Hub, outputs: Outputs, *, device: str | None = None, studio_factory=None,
                 preload: bool = True):
        super().__init__(name="brushwork-gpu", daemon=True)
        self.hub = hub
        self.outputs = outputs
        self.device = device
        self._studio_factory = studio_factory
        self.studio: Any = None  # the engine's Studio once loaded (or studio_factory's stand-in in tests)
        self.settings = None
        self.load_error: BrushworkError | None = None
        self.ready = threading.Event()  # set once the engine loaded (or failed to)
        self.stop_requested = threading.Event()
        self.preload = preload  # False: load the engine with the first job (light idle workers)
        self.busy = threading.Event()  # set while a job runs
        self.last_error: dict | None = None  # the last thing that went wrong on this thread (health)

    # ---- thread -------------------------------------------------------------------------------

    def run(self) -> None:
        if self.preload:
            self._load_engine()
        while not self.stop_requested.is_set():
            # Every step is guarded: a failure here (history locked, disk full, a bug) is logged
            # and reported in health, and the thread goes on with the next job.
            try:
                self.hub.flush_unsaved()
                job = self.hub.next_job(timeout=0.5)
            except Exception as exc:
                self._note(exc, "taking the next job")
                time.sleep(0.5)
                continue
            if job is None:
                continue
            self.busy.set()
            try:
                if not self.ready.is_set():
                    self._load_engine()
                self.run_job(job)
            except Exception as exc:
                self._note(exc, f"job {job.id}")
                if job.state not in protocol.FINAL_STATES:
                    try:
                        self.hub.finish(job, protocol.FAILED, error=to_brushwork_error(exc).to_dict())
                    except Exception as again:
                        self._note(again, f"failing job {job.id}")
            finally:
                self.busy.clear()

    def _note(self, exc: BaseException, where: str) -> None:
        log.error("GPU thread: %s failed, going on: %s: %s", where, type(exc).__name__, exc)
        self.last_error = {**to_brushwork_error(exc).to_dict(), "where": where, "time": time.time()}

    def _load_engine(self) -> None:
        try:
            import PIL.Image

            # Decompression bombs: an input image larger than this fails to open.
            PIL.Image.MAX_IMAGE_PIXELS = protocol.MAX_IMAGE_PIXELS
            if self._studio_factory is not None:
                self.studio = self._studio_factory()
            else:
                from ..engine.studio import Studio

                # parse_recipe is the gate: input images arrive as sha256: refs only (never files on
                # this machine) and a model path only as worker/model_paths.py allows it.
                self.studio = Studio(device=self.device, allow_paths=False, model_paths="absolute")
            self.settings = getattr(self.studio, "settings", None)
        except BrushworkError as exc:
            self.load_error = exc
        except Exception as exc:  # a broken install must show as a clear job error, not a dead thread
            log.error("the engine failed to load:\n%s", traceback.format_exc())
            self.load_error = BrushworkError(f"the engine failed to load: {type(exc).__name__}: {exc}")
        finally:
            self.ready.set()

    # ---- one job ----------------------------------------------------------------------------

    def run_job(self, job: Job) -> None:
        try:
            if self.load_error is not None:
                raise self.load_error
            self._check_models(job.recipe)
            self._check_images(job.recipe)
            result = self.studio.generate(job.recipe, on_progress=lambda p: self._progress(job, p),
                                          cancel=job.cancel)
            stem = self.outputs.stem_for(job.destination, job.id)
            # Written (atomically, with the Recipe inside) BEFORE the job may say done.
            try:
                written = result.save(stem)
                results = []
                for index, (path, seed) in enumerate(zip(written, result.seeds, strict=False)):
                    results.append({"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                    "path": str(path), "seed": int(seed), "index": index})
            except OSError as exc:
                raise output_error(exc, self.outputs.folders[job.destination], job.destination) from None
            self.hub.finish(job, protocol.DONE, results=results, ran_recipe=result.recipe.to_dict())
        except CancelledError as exc:
            self.hub.finish(job, protocol.CANCELLED, error=exc.to_dict())
        except BaseException as exc:
            error = to_brushwork_error(exc)
            if not isinstance(exc, BrushworkError):
                log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            self.hub.finish(job, protocol.FAILED, error=error.to_dict())
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise

    def _progress(self, job: Job, progress) -> None:
        data: dict[str, Any] = {"step": int(progress.step), "total": int(progress.total),
                "image_index": int(getattr(progress, "image_index", 0))}
        preview = getattr(progress, "preview", None)
        if preview is not None:
            buf = io.BytesIO()
            preview.save(buf, format="PNG", compress_level=1)
            data["preview_png"] = base64.b64encode(buf.getvalue()).decode("ascii")
            data["preview_size"] = list(preview.size)
        self.hub.progress(job, data)

    # ---- checks: the worker never resolves what a client sent as a path ------------------------

    def _check_models(self, recipe: Recipe) -> None:
        try:
            from ..models import sources
            from ..models.settings import Settings
        except ImportError:  # the models layer is part of the install; this is a broken one
            raise ModelNotFoundError("the models layer (brushwork.models) is not installed") from None
        settings = self.settings if self.settings is not None else Settings.load()
        wanted = [(recipe.model, "pipeline")]
        if recipe.vae:
            wanted.append((recipe.vae, "vae"))
        wanted += [(c.model, "controlnet") for c in recipe.controls if c.model]
        wanted += [(lora.name, "lora") for lora in recipe.loras]
        wanted += [(emb.name, "embedding") for emb in recipe.embeddings]
        if recipe.upscale is not None and recipe.upscale.model:  # the upscale step's SR model: found, not loaded
            from ..models.upscalers import resolve_upscaler

            resolve_upscaler(recipe.upscale.model, settings, allow_paths="absolute")
        for ref, kind in wanted:
            found = sources.resolve(ref, kind, settings, allow_paths="absolute")  # paths: see model_paths
            if kind == "pipeline":
                self._check_demo_controls(recipe, found)

    @staticmethod
    def _check_demo_controls(recipe: Recipe, pipeline) -> None:
        """The bundled demo is a toy with its own small ControlNets: any other control kind (or
        a real SD 1.5 ControlNet) does not fit its UNet. Say which controls it has, before loading."""
        from ..models import bundled

        if not bundled.is_demo(getattr(pipeline, "path", None)):
            return
        has = sorted(bundled.CONTROLNET_SUBDIRS) + ["inpaint"]
        for i, control in enumerate(recipe.controls):
            if control.kind not in has:
                raise RecipeError(f"controls[{i}].kind", f"the demo model {bundled.NAME!r} has no {control.kind} "
                                  f"control (it has: {', '.join(has)}); use a real SD 1.5 model for {control.kind}")
            if control.model and control.kind != "inpaint":
                raise RecipeError(f"controls[{i}].model", f"the demo model {bundled.NAME!r} uses its own "
                                  f"{control.kind} ControlNet; leave the control's model empty")

    def _check_images(self, recipe: Recipe) -> None:
        """Pixel limits before any decode (PIL reads only the header here)."""
        import PIL.Image

        for control in recipe.controls:
            if control.kind == "depth" and control.signal and control.signal.get("format") == "npy":
                data = self.studio.assets.get(control.signal["data"])
                if not data.startswith(b"\x93NUMPY"):
                    kind = "a zip (.npz) archive" if data.startswith(b"PK") else "not a .npy array"
                    raise InputImageError(f"depth signal: the data is {kind}; send one 2-D array saved with "
                                          "numpy.save (format 'npy') or raw float32 (format 'f32le')")
        for where, ref in recipe.image_refs().items():
            if where.endswith("signal.data"):
                continue  # raw depth: its size is width*height*4, already capped by the upload limit
            data = self.studio.assets.get(ref)
            try:
                with PIL.Image.open(io.BytesIO(data)) as img:
                    width, height = img.size
            except (PIL.Image.DecompressionBombError, OSError, ValueError) as exc:
                raise InputImageError(f"{where}: not a readable image ({exc})") from None
            if width * height > protocol.MAX_IMAGE_PIXELS:
                raise InputImageError(f"{where}: {width}x{height} is too many pixels "
                                      f"(at most {protocol.MAX_IMAGE_PIXELS})")


def output_error(exc: OSError, folder, destination: str) -> OutputFolderError:
    """A failed write of a result as the artist would say it: full, read-only, not a folder."""
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EROFS: "it is on a read-only file system", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied", errno.ENOTDIR: "a part of its path is a file, not a folder",
           errno.EEXIST: "a part of its path is a file, not a folder"}.get(exc.errno or 0, exc.strerror or str(exc))
    return OutputFolderError(f"destination {destination!r}: cannot write the result in {folder} ({why}); "
                             "nothing was written; free some space or fix the folder and submit again")


def to_brushwork_error(exc: BaseException) -> BrushworkError:
    """Engine errors keep their class; memory exhaustion becomes OutOfMemoryError; anything else a
    one-line internal error (the traceback goes to the worker log)."""
    if isinstance(exc, BrushworkError):
        return exc
    text = str(exc)
    kind = type(exc).__name__
    if isinstance(exc, MemoryError) or kind == "OutOfMemoryError" or "out of memory" in text.lower() \
            or _CPU_OOM.search(text):
        needed = None
        if m := _CPU_OOM.search(text):
            needed = int(m.group(1))
        elif m := _CUDA_OOM.search(text):
            needed = int(float(m.group(1)) * _UNITS[m.group(2)])
        shown = f" (it needed {needed / (1 << 20):.0f} MiB more)" if needed else ""
        return OutOfMemoryError(f"out of memory{shown}: try a smaller size or batch; the worker is still running",
                                needed)
    first_line = (text.splitlines() or [""])[0][:300]
    err = BrushworkError(f"internal error: {kind}: {first_line}")
    err.code = "internal_error"
    return err
