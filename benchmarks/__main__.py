"""python -m benchmarks [--quick] [--only KEY ...] [--json OUT] [--record]

Runs every benchmark that fits this machine and prints a table. A run writes its RESULTS.md and
results.json under benchmarks/out/ (git-ignored); only ``--record`` writes the recorded
benchmarks/RESULTS.md and benchmarks/results.json, and only for a full run (no ``--quick`` or
``--only``) on a quiet machine, so a quick look or a run beside other work never overwrites the
figures the project quotes. GPU figures run only where CUDA is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .common import Figure

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
# A run is recorded only on a quiet machine: the 1-minute load average, before and after the run,
# below this share of the cores (ratios measured beside other work drift by far more than the goals' margins).
QUIET_LOAD_PER_CORE = 0.25

# (module, function) pairs; each function takes quick: bool and returns a list of Figures.
SUITES = [
    ("benchmarks.worker_bench", "run"),
    ("benchmarks.engine_bench", "run"),
    ("benchmarks.gpu_bench", "run"),
    ("benchmarks.large_texture_bench", "run"),
    ("benchmarks.batch_bench", "run"),
    ("benchmarks.depth_bench", "run"),
]


def device_description() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
        return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    except ImportError:
        return platform.platform()


def run_suites(quick: bool, only: list[str] | None) -> tuple[list[Figure], list[str]]:
    import importlib

    figures, problems = [], []
    for module_name, func in SUITES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            problems.append(f"{module_name}: not available ({exc})")
            continue
        try:
            for fig in getattr(module, func)(quick=quick, only=only):
                print(f"  {fig.key:28s} {fmt(fig.value)} {fig.unit:6s} goal {fig.goal or '-':8s} {fig.note}",
                      file=sys.stderr)
                figures.append(fig)
        except Exception as exc:  # a broken suite must not hide the others' figures
            traceback.print_exc()
            problems.append(f"{module_name}: failed: {exc}")
    return figures, problems


def fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def write_results_md(figures: list[Figure], problems: list[str], device: str, quick: bool,
                     folder: Path | None = None) -> Path:
    lines = [
        "# Benchmark results",
        "",
        f"Device: {device}  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}  ",
        f"Mode: {'quick' if quick else 'full'} (`python -m benchmarks{' --quick' if quick else ''}`)",
        "",
        "| figure | value | unit | goal | met | note |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "-"}[f.met]
        lines.append(f"| `{f.key}` | {fmt(f.value)} | {f.unit} | {f.goal or '-'} | {met} | {f.note} |")
    if problems:
        lines += ["", "Not measured in this run:", ""] + [f"- {p}" for p in problems]
    path = (folder or HERE) / "RESULTS.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load_per_core() -> float:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def why_not_record(args: argparse.Namespace, loads: list[float]) -> str | None:
    """The reason this run's figures must not become the recorded ones, or None."""
    if args.quick:
        return "a --quick run"
    if args.only:
        return "an --only run (not every figure)"
    busy = max(loads)
    if busy > QUIET_LOAD_PER_CORE:
        return f"the machine was busy (load {busy:.2f} per core, quiet is <= {QUIET_LOAD_PER_CORE})"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller models")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--only", nargs="*", help="run only these figure keys")
    ap.add_argument("--out", type=Path, default=OUT, help="where this run's RESULTS.md/results.json go")
    ap.add_argument("--record", action="store_true",
                    help="a full run on a quiet machine: write benchmarks/RESULTS.md and results.json")
    ap.add_argument("--no-results-md", action="store_true", help="write no RESULTS.md at all")
    args = ap.parse_args(argv)
    if args.record and (reason := why_not_record(args, [load_per_core()])):
        print(f"benchmarks: not recording {reason}; run without --record to measure", file=sys.stderr)
        return 2
    device = device_description()
    print(f"benchmarks on {device}", file=sys.stderr)
    loads = [load_per_core()]
    figures, problems = run_suites(args.quick, args.only)
    loads.append(load_per_core())
    data = {
        "device": device,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "load_per_core": [round(x, 2) for x in loads],
        "figures": {f.key: f.value for f in figures},
        "details": {f.key: {"unit": f.unit, "goal": f.goal, "met": f.met, "note": f.note, **f.detail}
                    for f in figures},
        "not_measured": problems,
    }
    folder = args.out
    if args.record:
        reason = why_not_record(args, loads)
        if reason is None:
            folder = HERE
        else:
            print(f"benchmarks: not recorded ({reason}); the figures are in {args.out}", file=sys.stderr)
    payload = json.dumps(data, indent=2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(payload, encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(payload, encoding="utf-8")
    if not args.no_results_md:
        path = write_results_md(figures, problems, device, args.quick, folder)
        print(f"benchmarks: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
