"""Generation session: turns actions into jobs, job updates into history, and runs live mode.

Live mode: every edit (re)starts a 300 ms timer; when it fires, one live job is submitted with a
fixed seed. While that job runs, further edits only mark the document dirty; when it ends, one
more job runs if needed. So a burst of edits costs at most two jobs, and the latest edit always
wins. Live jobs are also marked ``live`` for the worker, which replaces our pending live job.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage

from brushwork.errors import BrushworkError

from . import imaging
from .backend import CANCELLED, FAILED, FINAL, PROGRESS, QUEUED, RESULT, JobUpdate
from .commands import AddLayer
from .document import Document, HistoryEntry
from .jobs import JobRunner
from .recipes import JobSpec, build_job, random_seed

LIVE_DELAY_MS = 300


class Session(QObject):
    progress = Signal(int, int)  # step, total (0, 0 = idle)
    preview = Signal(QImage)  # the latest step preview (null image = clear it)
    queue_position = Signal(int)  # jobs ahead of ours; -1 when not queued
    busy_changed = Signal(bool)
    message = Signal(str)  # one line for the status bar (errors included)
    result_added = Signal(str)  # history entry id
    live_result = Signal(QImage)  # the latest live result
    models_loaded = Signal(list)  # base model names
    controlnets_loaded = Signal(list)  # ControlNet names

    def __init__(self, doc: Document, runner: JobRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.doc, self.runner = doc, runner
        self.jobs: dict[int, JobSpec] = {}
        self.submitted: list[JobSpec] = []  # every job started, in order (status and tests read it)
        self.live = False
        self.live_seed = 0
        self._live_key: int | None = None
        self._live_dirty = False
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_DELAY_MS)
        self._live_timer.timeout.connect(self._fire_live)
        self._model_call: int | None = None
        runner.update.connect(self._on_update)
        runner.call_done.connect(self._on_call_done)
        runner.call_failed.connect(self._on_call_failed)
        doc.edited.connect(self._on_edit)
        doc.settings_changed.connect(self._on_edit)

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    # ---- actions ----------------------------------------------------------------------------

    def run(self, action: str) -> int | None:
        """Generate / Refine / Inpaint. Returns the job key, or None (the reason goes to ``message``)."""
        try:
            spec = build_job(self.doc, action)
        except BrushworkError as exc:
            self.message.emit(f"{action.capitalize()}: {exc}")
            return None
        return self._start(spec)

    def cancel(self) -> None:
        """Cancel every job of ours; live mode stays on but waits for the next edit."""
        self._live_timer.stop()
        self._live_dirty = False
        for key in list(self.jobs):
            self.runner.cancel(key)
        if self.jobs:
            self.message.emit("Cancelling…")

    def set_live(self, on: bool) -> None:
        if on == self.live:
            return
        self.live = on
        if on:
            s = self.doc.settings
            self.live_seed = int(s.seed) if s.seed_locked else random_seed()
            self.message.emit(f"Live mode on (seed {self.live_seed})")
            self._live_timer.start()
        else:
            self._live_timer.stop()
            self._live_dirty = False
            if self._live_key is not None:
                self.runner.cancel(self._live_key)

    def load_models(self) -> None:
        self._model_call = self.runner.call(self.runner.backend.models)

    # ---- live mode --------------------------------------------------------------------------

    def _on_edit(self) -> None:
        if self.live:
            self._live_timer.start()  # restart: the last edit of a burst wins

    def _fire_live(self) -> None:
        if not self.live:
            return
        if self._live_key is not None:
            self._live_dirty = True  # run once more when the current live job ends
            return
        try:
            spec = build_job(self.doc, "live", seed=self.live_seed)
        except BrushworkError as exc:
            self.message.emit(f"Live: {exc}")
            return
        self._live_key = self._start(spec)

    # ---- job plumbing -----------------------------------------------------------------------

    def _start(self, spec: JobSpec) -> int:
        key = self.runner.start(spec)
        self.jobs[key] = spec
        self.submitted.append(spec)
        if len(self.jobs) == 1:
            self.busy_changed.emit(True)
        self.message.emit(f"{spec.action.capitalize()}: sent to the worker")
        return key

    def _on_update(self, key: int, update: JobUpdate) -> None:
        spec = self.jobs.get(key)
        if spec is None:
            return
        if update.kind == QUEUED:
            self.queue_position.emit(-1 if update.position is None else int(update.position))
        elif update.kind == PROGRESS:
            self.queue_position.emit(-1)
            self.progress.emit(update.step, update.total)
            if update.preview and not spec.live:  # a live preview over the strokes being drawn would hide them
                try:
                    self.preview.emit(imaging.image_from_bytes(update.preview, "step preview"))
                except BrushworkError:
                    pass  # a bad preview is cosmetic; the result still comes
        elif update.kind == RESULT:
            self._store_result(spec, update)
        elif update.kind == FAILED:
            self.message.emit(f"{spec.action.capitalize()} failed: {update.message}")
        elif update.kind == CANCELLED:
            self.message.emit(f"{spec.action.capitalize()} cancelled")
        if update.kind in FINAL:
            self._finish(key, spec)

    def _store_result(self, spec: JobSpec, update: JobUpdate) -> None:
        recipe = update.recipe or spec.recipe
        if not update.images:
            self.message.emit(f"{spec.action.capitalize()}: the worker returned no picture")
            return
        for png in update.images:
            try:
                image = imaging.image_from_bytes(png, "result")
            except BrushworkError as exc:
                self.message.emit(f"{spec.action.capitalize()}: {exc}")
                continue
            if spec.live:
                self.live_result.emit(image)
                continue
            entry = HistoryEntry(png=png, recipe=recipe, task=spec.action)
            self.doc.add_history(entry)
            layer = self.doc.new_layer("image", f"Result {len(self.doc.history)}", image)
            self.doc.undo_stack.push(AddLayer(self.doc, layer, text=f"Add {layer.name}"))
            self.result_added.emit(entry.id)
        seed = recipe.seed if recipe.seed is not None else "?"
        self.message.emit(f"{spec.action.capitalize()}: done (seed {seed})")

    def _finish(self, key: int, spec: JobSpec) -> None:
        self.jobs.pop(key, None)
        self.progress.emit(0, 0)
        self.preview.emit(QImage())
        self.queue_position.emit(-1)
        if not self.jobs:
            self.busy_changed.emit(False)
        if key == self._live_key:
            self._live_key = None
            if self.live and self._live_dirty:
                self._live_dirty = False
                self._fire_live()

    def _on_call_done(self, key: int, value: object) -> None:
        if key == self._model_call:
            items = [m for m in (value or []) if isinstance(m, dict)]
            self.models_loaded.emit(sorted({m["name"] for m in items if m.get("kind") == "pipeline"}))
            self.controlnets_loaded.emit(sorted({m["name"] for m in items if m.get("kind") == "controlnet"}))

    def _on_call_failed(self, key: int, message: str) -> None:
        if key == self._model_call:
            self.message.emit(f"Could not list the worker's models: {message}")
