"""Jobs, the FIFO queue and the numbered event rings: the worker's shared state (no torch).

One lock guards the queue and the jobs; the event log has its own condition so long-polls wake
the moment an event for their client arrives. Nothing here knows HTTP or the engine.
"""

from __future__ import annotations

import builtins
import collections
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

from .. import protocol
from ..errors import BrushworkError, CancelledError, HistoryError, QueueFullError
from ..protocol import Event, JobInfo
from ..recipe import Recipe

log = logging.getLogger("brushwork.worker")

# Finished jobs kept in memory (their recipes can hold megabytes of signals); older ones are read
# from the history. Jobs whose history write is still pending are kept until it goes through.
KEEP_FINISHED = 200
MAX_QUEUED_PER_CLIENT = 64  # waiting jobs of one client; more is a 429 queue_full
MAX_QUEUED_TOTAL = 256  # waiting jobs of all clients together


class NotFound(BrushworkError):
    code = "not_found"
    http_status = 404


class Conflict(BrushworkError):
    code = "conflict"
    http_status = 409


@dataclass
class Job:
    id: str
    client: str
    recipe: Recipe
    destination: str
    live: bool
    state: str = protocol.QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    results: list = field(default_factory=list)
    error: dict | None = None
    ran_recipe: dict | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def info(self, position: int | None) -> JobInfo:
        return JobInfo(id=self.id, state=self.state, position=position, live=self.live,
                       destination=self.destination, created=self.created, started=self.started,
                       finished=self.finished, recipe=self.ran_recipe or self.recipe.to_dict(),
                       results=list(self.results), error=self.error)


class EventLog:
    """Numbered events, a bounded ring per client. ``seq`` is global to this worker instance, so
    one number tells a client where to resume; ``truncated`` says events it asked for are gone
    (the client then reads final states from ``GET /v1/jobs/<id>``, which the history keeps)."""

    def __init__(self, ring_size: int = protocol.EVENT_RING_SIZE, max_clients: int = 256):
        self._cond = threading.Condition()
        self._seq = 0
        self._ring_size = ring_size
        self._max_clients = max_clients
        self._rings: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._dropped: dict[str, int] = {}  # client -> highest seq pushed out of its ring
        self._closed = False

    @property
    def last_seq(self) -> int:
        return self._seq

    def emit(self, client: str, kind: str, job: str, data: dict | None = None) -> Event:
        with self._cond:
            self._seq += 1
            event = Event(seq=self._seq, kind=kind, job=job, time=time.time(), data=data or {})
            ring = self._rings.get(client)
            if ring is None:
                ring = self._rings[client] = collections.deque()
                while len(self._rings) > self._max_clients:
                    gone, _ = self._rings.popitem(last=False)
                    self._dropped.pop(gone, None)
            self._rings.move_to_end(client)
            ring.append(event)
            if len(ring) > self._ring_size:
                self._dropped[client] = ring.popleft().seq
            self._cond.notify_all()
            return event

    def read(self, client: str, since: int, *, job: str | None = None, timeout: float = 0.0,
             limit: int = 200, kinds: frozenset[str] | None = None) -> tuple[list[Event], bool]:
        """Events of ``client`` after ``since`` (optionally of one job, optionally of some kinds
        only), waiting up to ``timeout`` seconds for the first one. Returns (events, truncated).

        ``kinds`` lets a waiter that wants only the end (no progress) sleep through every step
        instead of waking once per step: on a busy machine each wake-up costs the running job."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                ring = self._rings.get(client, ())
                events = [e for e in ring if e.seq > since and (job is None or e.job == job)
                          and (kinds is None or e.kind in kinds)][:limit]
                if events or self._closed:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            truncated = since < self._dropped.get(client, 0)
            return events, truncated

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Hub:
    """The queue and every job the worker knows in memory."""

    def __init__(self, events: EventLog, on_change=None, *, on_change_many=None,
                 max_per_client: int = MAX_QUEUED_PER_CLIENT, max_total: int = MAX_QUEUED_TOTAL,
                 keep_finished: int = KEEP_FINISHED):
        self.events = events
        self._save = on_change or (lambda job: None)  # persists a job (history)
        self._save_many = on_change_many or (lambda jobs: [self._save(j) for j in jobs])
        self.max_per_client, self.max_total, self.keep_finished = max_per_client, max_total, keep_finished
        self._reserved: collections.Counter[str] = collections.Counter()  # submits being saved, per client
        # Jobs whose last state change could not be written (history locked, disk full): written
        # again by ``flush_unsaved`` until it goes through, and kept in memory until then.
        self._unsaved: dict[str, Job] = {}
        self.last_error: dict | None = None  # the last history failure, for /v1/health
        # Reading a job's state and writing it happen under one lock, so a slow writer can never
        # store an older state over a newer one (e.g. "running" after "done").
        self._save_lock = threading.Lock()
        self._lock = threading.Condition()
        self._queue: list[Job] = []
        self._running: Job | None = None
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._stopping = False

    # ---- client side --------------------------------------------------------------------------

    def submit(self, client: str, recipe: Recipe, destination: str, live: bool) -> tuple[Job, int | None]:
        """Queue a job, saved first: when the history cannot take it, HistoryError and no job."""
        job = Job(id=secrets.token_hex(8), client=client, recipe=recipe, destination=destination, live=live)
        with self._lock:
            if self._stopping:
                raise Conflict("the worker is shutting down")
            self._check_room(client, live)
            self._reserved[client] += 1  # counted against the limits while it is being saved
        try:
            self._on_change(job, strict=True)
        finally:
            with self._lock:
                self._reserved[client] -= 1
                if not self._reserved[client]:
                    del self._reserved[client]
        replaced = None
        with self._lock:
            slot = len(self._queue)
            if live:
                # Latest wins: a live job replaces this client's live job still waiting in the queue.
                for i, other in enumerate(self._queue):
                    if other.client == client and other.live:
                        replaced, slot = other, i
                        break
            if replaced is not None:
                self._queue[slot] = job
                self._set_final(replaced, protocol.CANCELLED,
                                error={"code": "cancelled", "reason": "replaced",
                                       "message": f"replaced by live job {job.id}", "replaced_by": job.id})
            else:
                self._queue.append(job)
            self._jobs[job.id] = job
            position = self._position(job)
            self._lock.notify_all()
        self.events.emit(client, protocol.EV_QUEUED, job.id, {"position": position, "live": live})
        if replaced is not None:
            self._on_change(replaced)
            self.events.emit(client, protocol.EV_CANCELLED, replaced.id, {"error": replaced.error})
        return job, position

    def _check_room(self, client: str, live: bool) -> None:
        if live and any(j.client == client and j.live for j in self._queue):
            return  # it replaces a waiting live job: the queue does not grow
        total = len(self._queue) + sum(self._reserved.values())
        if total >= self.max_total:
            raise QueueFullError(f"the worker's queue is full ({self.max_total} jobs waiting in all): "
                                 "retry when some have finished", self.max_total)
        mine = sum(1 for j in self._queue if j.client == client) + self._reserved.get(client, 0)
        if mine >= self.max_per_client:
            raise QueueFullError(f"this client already has {mine} jobs waiting (at most {self.max_per_client}): "
                                 "wait for some to finish or cancel them", self.max_per_client)

    def get(self, client: str, job_id: str) -> tuple[Job, int | None] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.client != client:
                return None
            return job, self._position(job)

    def list(self, client: str) -> list[JobInfo]:
        with self._lock:
            return [job.info(self._position(job)) for job in self._jobs.values() if job.client == client]

    def cancel(self, client: str, job_id: str) -> JobInfo:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.client != client:
                raise NotFound(f"no job {job_id} of this client")
            if job.state in protocol.FINAL_STATES:
                return job.info(None)
            if job.state == protocol.QUEUED:
                self._queue.remove(job)
                self._set_final(job, protocol.CANCELLED, error=CancelledError("cancelled by the client").to_dict())
                queued_now = True
            else:
                job.cancel.set()  # the GPU thread stops at the next step and reports it
                queued_now = False
            info = job.info(self._position(job))
        if queued_now:
            self._on_change(job)
            self.events.emit(client, protocol.EV_CANCELLED, job.id, {"error": job.error})
        return info

    def cancel_all(self, client: str) -> builtins.list[str]:
        """Cancel every waiting and running job of ``client`` in one pass and one history write."""
        with self._lock:
            mine = [j for j in self._queue if j.client == client]
            if mine:
                self._queue = [j for j in self._queue if j.client != client]
            error = CancelledError("cancelled by the client (cancel all)").to_dict()
            for job in mine:
                self._set_final(job, protocol.CANCELLED, error=dict(error), release=False)
            self._release_finished()  # once, not once per job
            running = self._running if self._running is not None and self._running.client == client else None
            if running is not None:
                running.cancel.set()
        if mine:
            self._on_change_many(mine)
            for job in mine:
                self.events.emit(client, protocol.EV_CANCELLED, job.id, {"error": job.error})
        return [j.id for j in mine] + ([running.id] if running is not None else [])

    def unsaved_count(self) -> int:
        with self._lock:
            return len(self._unsaved)

    def flush_unsaved(self) -> bool:
        """Write again the jobs whose history write failed; True when none is left."""
        with self._lock:
            pending = list(self._unsaved.values())
        if not pending:
            return True
        self._on_change_many(pending)
        return not self._unsaved

    def result_path(self, client: str, sha256: str) -> str | None:
        """Where a result of a job still in memory was written (its history row may be pending)."""
        with self._lock:
            for job in reversed(self._jobs.values()):
                if job.client == client:
                    for res in job.results:
                        if res.get("sha256") == sha256:
                            return str(res.get("path"))
        return None

    def queue_length(self) -> int:
        with self._lock:
            return len(self._queue) + (1 if self._running else 0)

    # ---- GPU thread side ----------------------------------------------------------------------

    def next_job(self, timeout: float = 0.5) -> Job | None:
        with self._lock:
            if not self._queue and not self._stopping:
                self._lock.wait(timeout)
            if self._stopping or not self._queue:
                return None
            job = self._queue.pop(0)
            job.state, job.started = protocol.RUNNING, time.time()
            self._running = job
        self._on_change(job)
        self.events.emit(job.client, protocol.EV_STARTED, job.id, {})
        return job

    def progress(self, job: Job, data: dict) -> None:
        self.events.emit(job.client, protocol.EV_PROGRESS, job.id, data)

    def finish(self, job: Job, state: str, *, results: builtins.list | None = None, error: dict | None = None,
               ran_recipe: dict | None = None) -> None:
        with self._lock:
            if ran_recipe is not None:
                job.ran_recipe = ran_recipe
            self._set_final(job, state, results=results, error=error)
            if self._running is job:
                self._running = None
        self._on_change(job)
        kind = {protocol.DONE: protocol.EV_RESULT, protocol.FAILED: protocol.EV_FAILED,
                protocol.CANCELLED: protocol.EV_CANCELLED}[state]
        data = {"results": job.results, "recipe": job.ran_recipe} if state == protocol.DONE else {"error": job.error}
        self.events.emit(job.client, kind, job.id, data)

    def stop(self) -> builtins.list[Job]:
        """Refuse new jobs, cancel the queued ones and ask the running one to stop."""
        with self._lock:
            self._stopping = True
            dropped, self._queue = self._queue, []
            for job in dropped:
                self._set_final(job, protocol.CANCELLED,
                                error=CancelledError("the worker is shutting down").to_dict(), release=False)
            self._release_finished()
            if self._running is not None:
                self._running.cancel.set()
            self._lock.notify_all()
        if dropped:
            self._on_change_many(dropped)
        for job in dropped:
            self.events.emit(job.client, protocol.EV_CANCELLED, job.id, {"error": job.error})
        return dropped

    # ---- internals ----------------------------------------------------------------------------

    def _on_change(self, job: Job, *, strict: bool = False) -> None:
        """Write the job's state to the history. ``strict`` (a submit): a failure raises and
        nothing is kept. Otherwise a failure never propagates: the job is written again later."""
        self._on_change_many([job], strict=strict)

    def _on_change_many(self, jobs: builtins.list[Job], *, strict: bool = False) -> None:
        try:
            with self._save_lock:
                self._save_many(jobs)
        except Exception as exc:
            error = exc if isinstance(exc, HistoryError) else HistoryError(
                f"the job history cannot be written ({type(exc).__name__}: {exc})")
            with self._lock:
                self.last_error = {**error.to_dict(), "time": time.time()}
                if not strict:
                    for job in jobs:
                        self._unsaved[job.id] = job
            if strict:
                raise error from None
            log.warning("history write of %d job(s) failed, kept to retry: %s", len(jobs), error)
            return
        with self._lock:
            for job in jobs:
                self._unsaved.pop(job.id, None)

    def _position(self, job: Job) -> int | None:
        if job.state == protocol.RUNNING:
            return 0
        if job.state != protocol.QUEUED:
            return None
        ahead = self._queue.index(job) if job in self._queue else 0
        return ahead + (1 if self._running is not None else 0)

    def _set_final(self, job: Job, state: str, *, results=None, error=None, release: bool = True) -> None:
        job.state, job.finished = state, time.time()
        job.results = list(results or [])
        job.error = error
        if release:
            self._release_finished()

    def _release_finished(self) -> None:
        """Forget the oldest finished jobs beyond ``keep_finished`` (the history has them)."""
        finished = sum(1 for j in self._jobs.values() if j.state in protocol.FINAL_STATES)
        if finished <= self.keep_finished:
            return
        for job_id in list(self._jobs):
            if finished <= self.keep_finished:
                break
            job = self._jobs[job_id]
            if job.state in protocol.FINAL_STATES and job_id not in self._unsaved:
                del self._jobs[job_id]
                finished -= 1
