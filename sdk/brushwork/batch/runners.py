"""Who runs the rows: the local worker (default) or a Studio in this process.

A runner turns Rows into Outcomes (the PNG's bytes, or a one-line error) and hands each to
``emit`` as it finishes; the driver writes every file. Both keep models warm across rows.

The worker runner keeps at most two rows at the worker (one running, one waiting), so the GPU
never idles between rows, and the canvas or Blender, whose jobs join the same queue, wait behind
at most one batch row.
"""

from __future__ import annotations

import collections
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import BrushworkError, CancelledError
from .memory import Measure, machine_memory, measured, proc_status
from .preflight import Row


@dataclass
class Outcome:
    png: bytes | None = None
    error: str = ""
    measure: Measure | None = None
    lost: bool = False  # the runner died under it: the row may run elsewhere


Emit = Callable[[Row, Outcome], None]


def error_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, BrushworkError):
        return text or type(exc).__name__
    return f"unexpected {type(exc).__name__}: {text}" if text else f"unexpected {type(exc).__name__}"


def local_store():
    """This machine's asset store (where the Studio and ``brushwork generate`` keep inputs)."""
    from ..assets import AssetStore
    from ..paths import state_dir

    return AssetStore(state_dir() / "assets")


def local_missing(refs: list[str]) -> list[str]:
    """``sha256:`` refs this machine's asset store lacks."""
    store = local_store()
    return [ref for ref in refs if not store.has(ref)]


def local_model_check(model: str) -> None:
    """Resolve a model name without torch (the same lookup the Studio makes)."""
    from ..models import settings as model_settings
    from ..models import sources

    sources.resolve(model or None, "pipeline", model_settings.Settings.load(), allow_paths=True)


def local_lora_check(model: str, name: str) -> None:
    """Resolve a LoRA name for ``model``'s family without torch (the lookup the Studio makes)."""
    from ..errors import BrushworkError
    from ..models import settings as model_settings
    from ..models import sources

    config = model_settings.Settings.load()
    try:
        family = sources.resolve(model or None, "pipeline", config, allow_paths=True).family
    except BrushworkError:
        family = None  # the model's own check reports it
    sources.resolve(name, "lora", config, allow_paths=True, family=family)


def local_model_defaults(model: str) -> dict:
    """The size, steps, CFG and sampler ``model`` gives a row that leaves them unset: the same
    fill the Studio makes (models/defaults.py), found without torch."""
    from ..models import settings as model_settings
    from ..models import sources
    from ..models.defaults import defaults_for_ref

    ref = sources.resolve(model or None, "pipeline", model_settings.Settings.load(), allow_paths=True)
    return defaults_for_ref(ref).as_fields()


def result_png(result) -> bytes:
    """The engine Result's one image as the PNG the Studio writes (recipe metadata included)."""
    with tempfile.TemporaryDirectory(prefix="brushwork-batch-") as tmp:
        [path] = result.save(Path(tmp) / "row.png")
        return path.read_bytes()


class InProcessRunner:
    """One Studio in this process."""

    label = "in-process"

    def __init__(self, device: str | None = None, studio=None):
        self._device, self._studio = device, studio

    @property
    def studio(self):
        if self._studio is None:
            from ..engine.studio import Studio

            self._studio = Studio(device=self._device)
        return self._studio

    def missing(self, refs: list[str]) -> list[str]:
        return local_missing(refs)

    def check_model(self, model: str) -> None:
        local_model_check(model)

    def check_lora(self, model: str, name: str) -> None:
        local_lora_check(model, name)

    def describe(self) -> str:
        return f"in-process Studio on {self.studio.device}"

    def capacity(self) -> int | None:
        from .memory import device_memory

        return device_memory(str(self.studio.device))

    def run(self, rows: Iterable[Row], emit: Emit) -> None:
        for row in rows:
            emit(row, run_in_studio(self.studio, row.recipe, {ref: path.read_bytes for ref, path in row.blobs.items()}))

    def close(self) -> None:
        pass


def run_in_studio(studio, recipe, blobs: Mapping[str, Callable[[], bytes]]) -> Outcome:
    """One row in a Studio: its inputs into the Studio's store, then the run, measured."""
    try:
        for ref, read in blobs.items():
            if not studio.assets.has(ref):
                studio.assets.put(read())
        with measured(str(studio.device)) as m:
            result = studio.generate(recipe)
        return Outcome(png=result_png(result), measure=m)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # one row's failure is that row's, never the batch's
        return Outcome(error=error_line(exc))


class WorkerRunner:
    """The local worker, through ``brushwork.connect()`` (started if none runs)."""

    label = "worker"
    check_model = None  # the worker resolves models with its own settings: it reports them per row
    check_lora = None  # ... and LoRAs

    def __init__(self, client=None, *, window: int = 2):
        self._client, self.window = client, max(1, window)
        self._uploaded: set[str] = set()

    @property
    def client(self):
        if self._client is None:
            from ..client import connect

            self._client = connect()
        return self._client

    def missing(self, refs: list[str]) -> list[str]:
        """Inputs neither the worker nor this machine's store has (those this machine has are
        uploaded when their row is submitted)."""
        return local_missing(list(self.client.missing(refs)))

    def describe(self) -> str:
        health = self.client.health()
        return f"worker {self.client.url} on {health.get('device') or 'its device'}"

    def _pid(self) -> int | None:
        from ..launch import read_worker_info

        info = read_worker_info() or {}
        return info.get("pid") if info.get("url", "").rstrip("/") == self.client.url else None

    def capacity(self) -> int | None:
        device = str(self.client.health().get("device") or "")
        return machine_memory() if device.startswith("cpu") and self._pid() else None

    def run(self, rows: Iterable[Row], emit: Emit) -> None:
        pending: collections.deque = collections.deque()
        try:
            for row in rows:
                try:
                    pending.append((row, self._submit(row)))
                except Exception as exc:
                    emit(row, Outcome(error=error_line(exc)))
                while len(pending) >= self.window:
                    emit(*self._finish(*pending[0]))
                    pending.popleft()
            while pending:
                emit(*self._finish(*pending[0]))
                pending.popleft()
        except BaseException:
            for _row, job in pending:  # interrupted: leave nothing of ours in the worker's queue
                with contextlib.suppress(Exception):
                    job.cancel()
            raise

    def _submit(self, row: Row):
        assert row.recipe is not None
        refs = [ref for ref in row.recipe.image_refs().values() if ref not in self._uploaded]
        for ref in self.client.missing(refs) if refs else ():  # each input sent once, only if lacking
            path = row.blobs.get(ref)
            self.client.upload(path.read_bytes() if path is not None else local_store().get(ref))
        self._uploaded.update(refs)
        return self.client.submit(row.recipe)

    def _finish(self, row: Row, job) -> tuple[Row, Outcome]:
        try:
            result = job.result()
        except CancelledError as exc:
            return row, Outcome(error=f"cancelled at the worker ({error_line(exc)})")
        except Exception as exc:
            return row, Outcome(error=error_line(exc))
        info = job.info
        seconds = (info.finished or time.time()) - (info.started or info.created)
        status = proc_status(pid) if (pid := self._pid()) else {}
        m = Measure(seconds=seconds, peak_bytes=status.get("VmHWM"), resident_bytes=status.get("VmRSS"))
        return row, Outcome(png=result.png_bytes[0], measure=m)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
