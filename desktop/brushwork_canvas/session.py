"""Generation session: turns actions into jobs, job updates into history, and runs live mode.

Live mode: every edit (re)starts a 300 ms timer; when it fires, one live job is submitted with a
fixed seed. While that job runs, further edits only mark the document dirty; when it ends, one
more job runs if needed. So a burst of edits costs at most two jobs, and the latest edit always
wins. Live jobs are also marked ``live`` for the worker, which replaces our pending live job.
"""

from __future__ import annotations

from brushwork.errors import BrushworkError
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage

from . import imaging
from .backend import CANCELLED, FAILED, FINAL, PROGRESS, QUEUED, RESULT, FinishedResult, JobUpdate
from .commands import AddLayer, ResizeDocument
from .document import Document, HistoryEntry
from .jobs import JobRunner
from .model_defaults import UPSCALER_KINDS, ModelCatalog, ModelDefaults
from .recipes import JobSpec, build_job, random_seed

LIVE_DELAY_MS = 300
# What the history panel calls a result of each Recipe task (the canvas's own action names).
ACTION_FOR_TASK = {"txt2img": "generate", "img2img": "refine", "inpaint": "inpaint", "upscale": "upscale"}


class Session(QObject):
    progress = Signal(int, int)  # step, total (0, 0 = idle)
    preview = Signal(QImage)  # the latest step preview (null image = clear it)
    queue_position = Signal(int)  # jobs ahead of ours; -1 when not queued
    busy_changed = Signal(bool)
    message = Signal(str)  # one line for the status bar (errors included)
    error = Signal(str)  # an error, whole: the window keeps it visible until dismissed
    result_added = Signal(str)  # history entry id
    live_result = Signal(QImage)  # the latest live result
    models_loaded = Signal(list)  # base model names
    controlnets_loaded = Signal(list)  # ControlNet names
    upscalers_loaded = Signal(list)  # super-resolution model names
    adapters_loaded = Signal(list)  # IP-Adapter names (reference slots)
    catalog_changed = Signal()  # the worker's model list (and so the models' defaults) arrived
    history_synced = Signal(int)  # results recovered from the worker's history by one sync

    def __init__(self, doc: Document, runner: JobRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.doc, self.runner = doc, runner
        self.jobs: dict[int, JobSpec] = {}
        self.catalog = ModelCatalog()  # the worker's models and their defaults
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
        self._sync_call: int | None = None
        self._sync_again = False  # another sync was asked for while one ran
        self._lost_jobs = False  # a job's stream broke: it may have finished without us
        self._quiet = False  # a change the session makes itself (not the artist's edit)
        self._announce_models = False  # say "connected" once the startup model list arrives
        runner.update.connect(self._on_update)
        runner.connected.connect(self._on_connected)
        runner.call_done.connect(self._on_call_done)
        runner.call_failed.connect(self._on_call_failed)
        doc.edited.connect(self._on_edit)
        doc.settings_changed.connect(self._on_edit)

    def _fail(self, text: str) -> None:
        """An error: one line in the status bar, and whole where it stays until dismissed."""
        self.message.emit(text)
        self.error.emit(text)

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    # ---- actions ----------------------------------------------------------------------------

    def start(self) -> None:
        """What the app does once its window shows: list the worker's models and bring in results
        that finished while the canvas was closed. Both run in the background."""
        self.message.emit("Connecting to the worker (starting it if none is running)…")
        self._announce_models = True
        self.load_models()
        self.sync_history()

    def run(self, action: str) -> int | None:
        """Generate / Refine / Inpaint. Returns the job key, or None (the reason goes to ``message``)."""
        if self._lost_jobs:  # the artist is back at work: look for what the broken stream missed
            self.sync_history()
        try:
            spec = build_job(self.doc, action, defaults=self.defaults())
        except BrushworkError as exc:
            self._fail(f"{action.capitalize()}: {exc}")
            return None
        return self._start(spec)

    def defaults(self) -> ModelDefaults | None:
        """The chosen model's defaults as the worker told them (None until it has)."""
        return self.catalog.defaults_for(self.doc.settings.model)

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

    # ---- results that finished while we were away ----------------------------------------

    def sync_history(self) -> None:
        """Ask the worker (in a job thread) for this client's finished results that the document
        lacks, and add them to the history when they arrive. Never blocks; never duplicates."""
        if self._sync_call is not None:
            self._sync_again = True
            return
        self._lost_jobs = False
        known = {entry.sha256 for entry in self.doc.history}
        since = self.doc.results_since
        self._sync_call = self.runner.call(lambda: self.runner.backend.finished_results(since, known))

    def _on_connected(self, again: bool) -> None:
        if again:  # the worker was away (restarted, or the connection dropped): jobs may have ended
            self.sync_history()

    def _synced(self, value: object) -> None:
        found, latest = value
        # Re-checked here, on the UI thread: a result may have arrived by its own job's stream
        # meanwhile, or the document may have been replaced (New/Open move results_since on).
        fresh = [r for r in found if isinstance(r, FinishedResult)
                 and r.finished >= self.doc.results_since and not self.doc.has_result(r.sha256)]
        entries = []
        for result in fresh:
            try:
                imaging.image_from_bytes(result.png, "result")
            except BrushworkError:
                continue
            entries.append(HistoryEntry(png=result.png, recipe=result.recipe, created=result.finished, job=result.job,
                                        task=ACTION_FOR_TASK.get(result.recipe.task, result.recipe.task)))
        self.doc.results_since = max(self.doc.results_since, float(latest))
        if entries:
            self.doc.add_history_entries(entries)
            n = len(entries)
            self.message.emit(f"{n} result{'s' if n > 1 else ''} that finished while the canvas was away "
                              f"{'were' if n > 1 else 'was'} added to the history")
        self.history_synced.emit(len(entries))

    # ---- live mode --------------------------------------------------------------------------

    def _on_edit(self) -> None:
        if self.live and not self._quiet:
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
            self._fail(f"Live: {exc}")
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
            self._lost_jobs = self._lost_jobs or update.lost
            self._fail(f"{spec.action.capitalize()} failed: {update.message}")
        elif update.kind == CANCELLED:
            self.message.emit(f"{spec.action.capitalize()} cancelled")
        if update.kind in FINAL:
            self._finish(key, spec)

    def _store_result(self, spec: JobSpec, update: JobUpdate) -> None:
        recipe = update.recipe or spec.recipe
        if not update.images:
            self._fail(f"{spec.action.capitalize()}: the worker returned no picture")
            return
        for png in update.images:
            try:
                image = imaging.image_from_bytes(png, "result")
            except BrushworkError as exc:
                self._fail(f"{spec.action.capitalize()}: {exc}")
                continue
            if spec.live:
                self.live_result.emit(image)
                continue
            entry = HistoryEntry(png=png, recipe=recipe, task=spec.action, job=update.job)
            if spec.action == "upscale":
                self._store_upscale(entry, image, recipe)
                continue
            # The very same picture may be in the history already (a history sync brought it in,
            # or the same seed and settings ran again): one entry, but the artist still gets a layer.
            known = self.doc.find_result(entry.sha256)
            if known is None:
                self.doc.add_history(entry)
            else:
                entry = known
            layer = self.doc.new_layer("image", f"Result {len(self.doc.history)}", image)
            self.doc.undo_stack.push(AddLayer(self.doc, layer, text=f"Add {layer.name}"))
            self.result_added.emit(entry.id)
        if not spec.live and recipe.seed is not None and not self.doc.settings.seed_locked:
            # The seed box shows the seed the worker picked: ticking Lock keeps this picture's seed.
            self._quiet = True
            try:
                self.doc.update_settings(seed=int(recipe.seed))
            finally:
                self._quiet = False
        seed = recipe.seed if recipe.seed is not None else "?"
        self.message.emit(f"{spec.action.capitalize()}: done (seed {seed})")

    def _store_upscale(self, entry: HistoryEntry, image: QImage, recipe) -> None:
        """An upscaled picture: in the history, and on the canvas as a new layer on top of the
        document enlarged to its size (every layer resampled, one undo step gives them back)."""
        if self.doc.find_result(entry.sha256) is None:
            self.doc.add_history(entry)
        else:
            entry = self.doc.find_result(entry.sha256) or entry
        same_document = (self.doc.width, self.doc.height) == (recipe.width, recipe.height)
        if not same_document:
            self._fail(f"Upscale: the document is no longer {recipe.width}x{recipe.height}; the "
                       f"{image.width()}x{image.height()} result is in the history")
            self.result_added.emit(entry.id)
            return
        try:
            stack = self.doc.undo_stack
            stack.beginMacro(f"Upscale ×{recipe.upscale.factor:g}" if recipe.upscale else "Upscale")
            try:
                stack.push(ResizeDocument(self.doc, image.width(), image.height()))
                layer = self.doc.new_layer("image", f"Upscaled {len(self.doc.history)}", image)
                stack.push(AddLayer(self.doc, layer, text=f"Add {layer.name}"))
            finally:
                stack.endMacro()
        except BrushworkError as exc:  # a size the document cannot take: the history keeps it
            self._fail(f"Upscale: {exc}; the result is in the history")
        self.result_added.emit(entry.id)

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
        if key == self._sync_call:
            self._sync_finished()
            self._synced(value)
        elif key == self._model_call:
            items = [m for m in (value or []) if isinstance(m, dict)]
            self.catalog.set_items(items)
            pipelines = self.catalog.names("pipeline")
            controlnets = self.catalog.names("controlnet")
            self.models_loaded.emit(pipelines)
            self.controlnets_loaded.emit(controlnets)
            self.upscalers_loaded.emit(self.catalog.names(*UPSCALER_KINDS))
            self.adapters_loaded.emit(self.catalog.names("ip_adapter"))
            self.catalog_changed.emit()
            if self._announce_models:
                self._announce_models = False
                self.message.emit(f"Connected to the worker: {_count(len(pipelines), 'model')}, "
                                  f"{_count(len(controlnets), 'ControlNet')}")

    def _sync_finished(self) -> None:
        self._sync_call = None
        if self._sync_again:
            self._sync_again = False
            QTimer.singleShot(0, self.sync_history)

    def _on_call_failed(self, key: int, message: str) -> None:
        if key == self._sync_call:
            self._sync_finished()
            self._lost_jobs = True  # try again at the next action
            self._fail(f"Could not look for results in the worker's history: {message}")
        elif key == self._model_call:
            self._fail(f"Could not list the worker's models: {message}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
