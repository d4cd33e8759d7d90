"""The batch driver: manifest → checked rows → skip what is made → estimate → run → report.

Every output is written here, by the driver, atomically (a hidden temp file, then a rename), once
per row, named by the row's Recipe hash. A rerun skips rows whose file exists and carries that
very Recipe, so a batch killed at any moment (kill -9 included) loses at most the row in flight;
the hidden temp file such a kill can leave is removed by the next run.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..assets import atomic_write_bytes
from . import identity
from .estimate import Estimate
from .manifest import Entry, expand, read_manifest
from .preflight import DONE, FAILED, RUN, SKIPPED, Row, plan_rows
from .report import REPORT_NAME, Progress, Report, summary
from .runners import InProcessRunner, Outcome, WorkerRunner, local_model_defaults

PARTIAL_GLOB = ".*.part"  # what assets.atomic_writer leaves behind if killed mid-write


@dataclass
class BatchResult:
    rows: list[Row]
    seconds: float
    report: Path
    estimate: Estimate | None = None
    counts: dict = field(default_factory=dict)
    rate: float | None = None  # rows/s after the first row (which carries the model load)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == FAILED]

    @property
    def ok(self) -> bool:
        return not self.failed


def run_batch(manifest: str | os.PathLike | list[dict], out: str | os.PathLike, *,
              runner: str | Any = "worker", ray_address: str | None = None, actors: int | None = None,
              device: str | None = None, client=None, memory_limit: int | None = None,
              stream: TextIO | None = None) -> BatchResult:
    """Run every row of ``manifest`` (a .jsonl/.csv/.toml path, or a list of row dicts) into the
    folder ``out``. ``runner``: "worker" (default: the local worker, started if needed),
    "in-process" (one Studio here), "ray" (``ray_address``, or a local Ray), or a runner object
    (which stays the caller's: not closed here, so its models stay warm for the next batch).
    Rows that fail are reported with their reason; the call raises only for a manifest it cannot
    read at all. Returns the rows with their status, time and seed."""
    stream = stream or sys.stderr
    started = time.monotonic()
    entries, base_dir = _entries(manifest)
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_partials(out_dir)
    run_with = _runner(runner, ray_address=ray_address, actors=actors, device=device, client=client)
    owned = isinstance(runner, str)
    try:
        rows = plan_rows(entries, out_dir, base_dir, missing=run_with.missing,
                         check_model=getattr(run_with, "check_model", None),
                         check_lora=getattr(run_with, "check_lora", None),
                         model_defaults=local_model_defaults)
        _skip_made(rows)
        report = Report(out_dir / REPORT_NAME)
        try:
            estimate, rate = _execute(rows, run_with, report, stream, memory_limit)
        finally:
            report.close()
    finally:
        if owned:
            run_with.close()
    seconds = time.monotonic() - started
    stream.write(summary(rows, seconds, report.path) + "\n")
    stream.flush()
    counts = {s: sum(r.status == s for r in rows) for s in (DONE, FAILED, SKIPPED)}
    return BatchResult(rows, seconds, report.path, estimate, counts, rate)


def _entries(manifest) -> tuple[list[Entry], Path]:
    if isinstance(manifest, (list, tuple)):
        entries: list[Entry] = []
        for i, data in enumerate(manifest):
            where = f"rows[{i}]"
            try:
                if not isinstance(data, dict):
                    raise ValueError(f"a row is a dict, got {type(data).__name__}")
                entries.extend(expand(data, where))
            except (ValueError, TypeError) as exc:
                entries.append(Entry(0, where, error=" ".join(str(exc).split())))
        for i, entry in enumerate(entries, 1):
            entry.index = i
        return entries, Path.cwd()
    path = Path(manifest).expanduser()
    return read_manifest(path), path.resolve().parent


def _runner(kind, *, ray_address, actors, device, client):
    if not isinstance(kind, str):
        return kind
    if kind == "worker":
        return WorkerRunner(client)
    if kind in ("in-process", "inprocess"):
        return InProcessRunner(device=device)
    if kind == "ray":
        from .ray_runner import RayRunner

        return RayRunner(ray_address, actors=actors, device=device)
    raise ValueError(f"runner: 'worker', 'in-process' or 'ray', got {kind!r}")


def _remove_partials(out_dir: Path) -> None:
    for part in out_dir.glob(PARTIAL_GLOB):
        part.unlink(missing_ok=True)


def _skip_made(rows: list[Row]) -> None:
    """Same recipe twice → the second is skipped; a file already there carrying this row's recipe
    → skipped; a file there that is not this row's (corrupt, another recipe) is made again."""
    first_of: dict[str, int] = {}
    for row in rows:
        if row.status != RUN or row.output is None or row.recipe is None:
            continue
        if row.output.name in first_of:
            row.status, row.reason = SKIPPED, f"same recipe as an earlier row (row {first_of[row.output.name]})"
            continue
        first_of[row.output.name] = row.index
        if row.output.exists() and not identity.verify_output(row.output, row.recipe):
            row.status, row.reason = SKIPPED, "already made"


def _execute(rows: list[Row], runner, report: Report, stream: TextIO,
             memory_limit: int | None) -> tuple[Estimate | None, float | None]:
    progress = Progress(len(rows), stream)
    todo = [r for r in rows if r.status == RUN]
    progress.to_run = len(todo)
    bad = [r for r in rows if r.status == FAILED]
    progress.say(f"batch: {len(rows)} rows: {len(todo)} to run, {len(rows) - len(todo) - len(bad)} skipped "
                 f"(made already), {len(bad)} bad")
    for row in rows:
        if row.status != RUN:
            report.write(row)
            progress.count(row, ran=False)
    for row in bad:
        progress.say(f"  row {row.index} ({row.where}): {row.reason}")
    if not todo:
        return None, None

    def emit(row: Row, outcome: Outcome) -> None:
        _finish(row, outcome)
        report.write(row)
        progress.count(row, ran=True)
        progress.show(row)

    progress.say(f"running on {runner.describe()}")  # (starts a local Ray, or connects to the worker)
    progress.restart_clock()
    # The estimate is measured: rows run one at a time until one has made an image.
    estimate = None
    while todo and estimate is None:
        row = todo.pop(0)
        runner.run([row], emit)
        if row.status == DONE:
            estimate = _estimate(row, runner, memory_limit)
            progress.say(estimate.describe(len(todo)))
            progress.restart_clock()
    if estimate is not None:
        todo = _refuse_oversized(todo, estimate, report, progress)
    steady_start, steady_rows = time.monotonic(), len(todo)
    runner.run(todo, emit)
    steady = time.monotonic() - steady_start
    return estimate, (steady_rows / steady if steady_rows and steady > 0 else None)


def _estimate(first: Row, runner, memory_limit: int | None) -> Estimate:
    from .memory import Measure

    assert first.recipe is not None
    measure = Measure(first.seconds, first.peak_bytes, first.resident_bytes)
    limit = memory_limit or runner.capacity()
    size = f"{first.recipe.width}x{first.recipe.height}" if first.pixels else "the model's size"
    return Estimate(measure, first.pixels, size, limit,
                    parallel=len(getattr(runner, "actors", ())) or 1)


def _refuse_oversized(rows: list[Row], estimate: Estimate, report: Report, progress: Progress) -> list[Row]:
    keep = []
    for row in rows:
        reason = estimate.refusal(row)
        if not reason:
            keep.append(row)
            continue
        row.fail(reason)
        report.write(row)
        progress.count(row, ran=False)
        progress.to_run -= 1
        progress.show(row)
    return keep


def _finish(row: Row, outcome: Outcome) -> None:
    if outcome.measure is not None:
        row.seconds = outcome.measure.seconds
        row.peak_bytes = outcome.measure.peak_bytes
        row.resident_bytes = outcome.measure.resident_bytes
    if outcome.png is None:
        row.fail(outcome.error or "no image came back")
        return
    assert row.output is not None and row.recipe is not None
    atomic_write_bytes(row.output, outcome.png)
    row.status, row.reason = DONE, ""
    why = identity.verify_output(row.output, row.recipe)
    if why:  # the runner changed the recipe: the file is good, but a rerun cannot recognise it
        row.reason = f"written, but a rerun will make it again: {why}"
