"""Running generation jobs without freezing Blender.

A job has two halves:
  - ``work(report, cancelled)``: pure Python (no bpy!) that talks to the worker — upload, submit,
    follow events, fetch the PNGs. In the UI it runs on a background thread; it reports progress
    through ``report(step, total, preview_png)`` and returns an ``Outcome``.
  - ``apply(outcome)``: bpy code that turns the outcome into images and materials. Always on the
    main thread.
A timer pump (``bpy.app.timers``) moves messages from the threads to the main thread, updating the
progress shown in the panels. Timers never fire in background mode (``blender -b``, bpy as a
module), so there ``start`` runs both halves synchronously before it returns: scripts and batch
pipelines get their result right away.
"""

from __future__ import annotations

import itertools
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import bpy

from . import identity, sdk


@dataclass
class Outcome:
    pngs: list[bytes] = field(default_factory=list)
    recipe_json: str = ""  # the Recipe as run (seed filled in)
    seeds: list[int] = field(default_factory=list)
    error: str = ""  # one line for the user; "" on success
    cancelled: bool = False
    items: list = field(default_factory=list)  # recover: (worker job id, [png], recipe json) per job


@dataclass
class Job:
    id: int
    label: str
    work: Callable
    apply: Callable[[Outcome], None]
    cancel_event: threading.Event = field(default_factory=threading.Event)
    step: int = 0
    total: int = 0
    preview_png: bytes | None = None
    thread: threading.Thread | None = None
    outcome: Outcome | None = None
    remote_id: str = ""  # the worker's job id, once submitted
    note: tuple[str, str] | None = None  # (level, text) that apply() reported: what it did and did not
    synchronous: bool = False
    on_failure: Callable[[Outcome], None] | None = None
    file: dict | None = None  # identity.file_ref() of the .blend the job is for

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


_ids = itertools.count(1)
_active: dict[int, Job] = {}
_inbox: queue.Queue[tuple] = queue.Queue()
PUMP_INTERVAL_S = 0.2
RENDER_POLL_S = 0.05  # while a view render is in Blender's render job: notice its end sooner
# Messages for the UI (status line): the last one per job is shown; tests read it too.
last_messages: list[str] = []


def active_jobs() -> list[Job]:
    return list(_active.values())


def run_sync_mode() -> bool:
    """True where timers never fire (background mode / bpy as a module)."""
    return bool(bpy.app.background)


def say(text: str) -> None:
    last_messages.append(text)
    del last_messages[:-20]
    print(f"Brushwork: {text}")


def _safe_work(job: Job) -> Outcome:
    def report(step: int, total: int, preview_png: bytes | None = None) -> None:
        _inbox.put(("progress", job.id, step, total, preview_png))

    try:
        outcome = job.work(report, job)
    except sdk.CancelledError:
        outcome = Outcome(cancelled=True, error="cancelled")
    except sdk.BrushworkError as exc:
        outcome = Outcome(error=str(exc))
    except Exception as exc:  # a bug: still one line for the user, the trace on the console
        traceback.print_exc()
        outcome = Outcome(error=f"unexpected {type(exc).__name__}: {exc}")
    if outcome is None:
        outcome = Outcome(error="the job returned nothing")
    return outcome


def _finish(job: Job, outcome: Outcome) -> None:
    """Main thread: apply the outcome, report, forget the job."""
    _active.pop(job.id, None)
    job.outcome = outcome
    if (outcome.cancelled or outcome.error) and job.on_failure is not None:
        job.on_failure(outcome)
    if outcome.cancelled:
        say(f"{job.label}: cancelled")
    elif outcome.error:
        say(f"{job.label}: failed: {outcome.error}")
    else:
        try:
            note = job.apply(outcome)
            if note is not None:
                job.note = (note.level, note.text)
            say(f"{job.label}: {note.text if note is not None else 'done'}")
            if not job.synchronous:
                _undo_step(job.label)
        except Exception as exc:
            traceback.print_exc()
            outcome.error = f"could not use the result: {exc}"
            say(f"{job.label}: failed: {outcome.error}")
    if outcome.error and not outcome.cancelled:
        _popup(f"{job.label}: {outcome.error}")
    elif job.note and job.note[0] != "INFO":
        _popup(job.note[1], icon="INFO")
    _redraw()


def _undo_step(label: str) -> None:
    """A result applied by the timer is its own undo step: Ctrl+Z takes back the result (and
    Ctrl+Shift+Z brings it back) instead of dropping it together with the artist's last edit."""
    try:
        bpy.ops.ed.undo_push(message=f"Brushwork: {label}")
    except RuntimeError as exc:  # no undo stack (e.g. undo disabled in preferences)
        print(f"Brushwork: no undo step for {label}: {exc}")


def notify(text: str, icon: str = "ERROR") -> None:
    """A popup for something that happened after its operator returned (UI only)."""
    _popup(text, icon)


def _popup(text: str, icon: str = "ERROR") -> None:
    """Show a failure or a warning where the artist looks (no operator is running to report it)."""
    if bpy.app.background:
        return

    def draw(menu, _context):
        menu.layout.label(text=text)
    try:
        bpy.context.window_manager.popup_menu(draw, title="Brushwork", icon=icon)
    except Exception:  # no window (e.g. during file load): the status line and console have it
        pass


def start(label: str, work: Callable, apply: Callable[[Outcome], object], *, synchronous: bool | None = None,
          on_failure: Callable[[Outcome], None] | None = None, file: dict | None = None) -> Job:
    """Run a job: on a thread with the pump (UI), or right now (background mode / ``synchronous``).
    ``on_failure(outcome)`` runs (main thread) when it fails or is cancelled."""
    job = Job(id=next(_ids), label=label, work=work, apply=apply, on_failure=on_failure, file=file)
    job.synchronous = synchronous if synchronous is not None else run_sync_mode()
    _active[job.id] = job
    if job.synchronous:
        _finish(job, _safe_work(job))
        return job

    def body():
        _inbox.put(("done", job.id, _safe_work(job)))

    job.thread = threading.Thread(target=body, name=f"brushwork-job-{job.id}", daemon=True)
    job.thread.start()
    ensure_pump()
    say(f"{label}: submitted")
    return job


def ensure_pump() -> None:
    """Start the timer pump if it is not running (a job or a view render is waiting)."""
    if not bpy.app.timers.is_registered(pump):
        # persistent: keep pumping across File > Open, so a job's end is still reported
        bpy.app.timers.register(pump, first_interval=PUMP_INTERVAL_S, persistent=True)


def cancel_all() -> int:
    """Ask every running job to stop. Each job's own thread sends the cancel to the worker (a
    network call never runs on the main thread); the worker stops at its next step. View renders
    still waiting to start are dropped (their operators hear 'cancelled'); one already in
    Blender's render job finishes (Esc stops it) and then goes no further."""
    from .texturing import render_passes

    jobs = active_jobs()
    for job in jobs:
        job.cancel_event.set()
    return len(jobs) + render_passes.cancel_pending()


def pump():
    """Timer callback (main thread): apply progress and finished jobs, and move the view renders
    on (``render_passes.poll``: Blender's render job runs them; here they are only set up and read
    back). Returns the next interval."""
    from .texturing import render_passes

    render_passes.poll()
    while True:
        try:
            message = _inbox.get_nowait()
        except queue.Empty:
            break
        kind, job_id = message[0], message[1]
        job = _active.get(job_id)
        if job is None:
            continue
        if kind == "progress":
            job.step, job.total, preview = message[2], message[3], message[4]
            if preview:
                job.preview_png = preview
                if job.file is None or identity.is_open(job.file):  # never into another .blend
                    _show_preview(preview)
            _redraw()
        elif kind == "done":
            _finish(job, message[2])
    if render_passes.pending():  # asked for now, or by a result applied just above (the next view)
        return RENDER_POLL_S
    return PUMP_INTERVAL_S if _active else None


PREVIEW_IMAGE = "Brushwork Preview"


def _show_preview(png: bytes) -> None:
    """Show a step preview in the 'Brushwork Preview' image (loaded from a temp file)."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix="brushwork-preview-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(png)
        loaded = bpy.data.images.load(tmp, check_existing=False)
        loaded.pixels[0]  # force the read while the file exists
        w, h = loaded.size
        target = bpy.data.images.get(PREVIEW_IMAGE)
        if target is None or tuple(target.size) != (w, h):
            if target is not None:
                bpy.data.images.remove(target)
            target = bpy.data.images.new(PREVIEW_IMAGE, width=w, height=h)
        target.pixels.foreach_set(loaded.pixels[:])
        target.update()
        bpy.data.images.remove(loaded)
    except Exception as exc:  # a preview is nice to have: never let it break a job
        print(f"Brushwork: preview not shown: {exc}")
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "IMAGE_EDITOR"):
                area.tag_redraw()
