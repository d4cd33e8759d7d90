"""``brushwork batch MANIFEST --out DIR``: the CLI plugin (registered in cli.PLUGIN_MODULES).

Exit 0 when every row is done or skipped, 1 when some row failed (the summary lists them, the
report has them all), 2 for a manifest or command line that cannot be used at all.
"""

from __future__ import annotations

import argparse

from ..errors import BrushworkError


class BatchFailed(BrushworkError):
    code = "batch_failed"


def register(sub) -> None:
    p = sub.add_parser("batch", help="run a manifest of recipes (resumable; worker, in-process or Ray)",
                       description="Run every row of a JSONL/CSV/TOML manifest into DIR, one PNG per row named by "
                                   "its recipe's hash. A rerun skips what is already made. See docs/batch.md.")
    p.add_argument("manifest", metavar="MANIFEST", help=".jsonl, .csv or .toml")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs and batch-report.jsonl")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--in-process", action="store_true", help="run a Studio in this process, not the worker")
    where.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                       help="run on a Ray cluster (ADDRESS such as ray://head:10001 or auto); "
                            "no ADDRESS starts a local Ray")
    p.add_argument("--actors", type=int, metavar="N", help="Ray actors (default: one per GPU, else per CPU)")
    p.add_argument("--device", default=None, help="cuda, cpu or mps for --in-process / --ray")
    p.add_argument("--memory-limit", metavar="SIZE",
                   help="refuse rows estimated above SIZE (e.g. 20GiB; default: the device's memory)")
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from ..cli_inputs import UsageError
    from .manifest import ManifestError
    from .memory import parse_size
    from .run import run_batch

    limit = None
    if args.memory_limit:
        try:
            limit = parse_size(args.memory_limit)
        except ValueError as exc:
            raise UsageError(f"--memory-limit: {exc}") from None
    if args.actors is not None and (args.ray is None or args.actors < 1):
        raise UsageError("--actors N (N >= 1) goes with --ray")
    runner = "ray" if args.ray is not None else "in-process" if args.in_process else "worker"
    if runner != "ray" and args.device and not args.in_process:
        raise UsageError("--device goes with --in-process or --ray (the worker has its own device)")
    _quiet()
    try:
        result = run_batch(args.manifest, args.out, runner=runner, ray_address=args.ray or None,
                           actors=args.actors, device=args.device, memory_limit=limit)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    for row in result.rows:
        if row.status == "done" and row.output is not None:
            print(row.output)
    if result.failed:
        raise BatchFailed(f"{len(result.failed)} of {len(result.rows)} rows failed (reasons in {result.report})")
    return 0


def _quiet() -> None:
    from ..cli import _quiet_libraries

    _quiet_libraries()
