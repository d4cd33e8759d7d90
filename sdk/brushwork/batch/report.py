"""What a batch tells its user: a JSONL report (one line per row, written as each row ends, so a
killed batch still shows what it finished), a progress line with an ETA, and a one-screen summary."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from .preflight import DONE, FAILED, SKIPPED, Row

REPORT_NAME = "batch-report.jsonl"
SUMMARY_FAILURES = 12  # failed rows listed in the summary; the report has them all


class Report:
    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (held open for the whole batch)

    def write(self, row: Row) -> None:
        record = {"row": row.index, "where": row.where, "status": row.status, "reason": row.reason,
                  "output": row.output.name if row.output and row.status in (DONE, SKIPPED) else None,
                  "hash": row.digest or None, "seed": row.recipe.seed if row.recipe else None,
                  "seconds": round(row.seconds, 3), "attempts": row.attempts,
                  "peak_bytes": row.peak_bytes}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_report(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class Progress:
    """``[#######-----] 12/40 rows  done 10  failed 1  skipped 1  0.52 rows/s  ETA 0:53`` on stderr:
    rewritten in place on a terminal, one line per finished row in a log."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 20):
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.counts = {DONE: 0, FAILED: 0, SKIPPED: 0}
        self.ran = 0  # rows that ran in this session (skipped ones cost nothing)
        self.to_run = 0
        self.started = time.monotonic()
        self._base = 0  # rows run before the rate clock (re)started
        self.line_open = False

    def restart_clock(self) -> None:
        """Rate and ETA from now on: called once the first row (with the model load) is done."""
        self.started, self._base = time.monotonic(), self.ran

    def count(self, row: Row, *, ran: bool) -> None:
        self.counts[row.status] = self.counts.get(row.status, 0) + 1
        self.ran += int(ran)

    def show(self, row: Row | None = None) -> None:
        finished = sum(self.counts.values())
        elapsed = time.monotonic() - self.started
        ran = self.ran - self._base
        rate = ran / elapsed if elapsed > 0 and ran else 0.0
        left = max(0, self.to_run - self.ran)
        eta = _clock(left / rate) if rate else "?"
        filled = int(self.width * finished / max(1, self.total))
        line = (f"[{'#' * filled}{'-' * (self.width - filled)}] {finished}/{self.total} rows  "
                f"done {self.counts[DONE]}  failed {self.counts[FAILED]}  skipped {self.counts[SKIPPED]}  "
                f"{rate:.2f} rows/s  ETA {eta}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if finished >= self.total else ""))
            self.line_open = finished < self.total
        else:
            what = f"row {row.index} {row.status}" + (f": {row.reason}" if row and row.reason else "") if row else ""
            self.stream.write(f"{line}  {what}\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        """A message of its own, on its own line (closing a half-drawn bar first)."""
        if self.line_open:
            self.stream.write("\n")
            self.line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()


def summary(rows: list[Row], seconds: float, report_path: Path) -> str:
    done = [r for r in rows if r.status == DONE]
    failed = [r for r in rows if r.status == FAILED]
    skipped = [r for r in rows if r.status == SKIPPED]
    rate = f" ({len(done) / seconds:.2f} rows/s)" if done and seconds > 0 else ""
    lines = [f"batch: {len(rows)} rows: {len(done)} done, {len(failed)} failed, {len(skipped)} skipped "
             f"in {_clock(seconds)}{rate}"]
    if failed:
        lines.append("failed:")
        for r in failed[:SUMMARY_FAILURES]:
            lines.append(f"  row {r.index} ({r.where}): {r.reason}")
        if len(failed) > SUMMARY_FAILURES:
            lines.append(f"  ... and {len(failed) - SUMMARY_FAILURES} more in the report")
    reasons: dict[str, int] = {}
    for r in skipped:
        kind = r.reason.split(" (")[0]  # "same recipe as an earlier row (row 3)" → one line for all
        reasons[kind] = reasons.get(kind, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:4]:
        lines.append(f"skipped {n}: {reason}")
    lines.append(f"report: {report_path}")
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
