"""`brushwork worker` and `brushwork history` (no torch at import: the CLI imports this module)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .. import paths, protocol


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "worker", help="run the local GPU worker (Blender, the canvas and scripts share it)",
        description=f"Run the worker in the foreground. Default port {protocol.DEFAULT_PORT} "
                    f"(or ${protocol.ENV_PORT}); loopback only unless --listen is given.")
    p.add_argument("--port", type=int, default=None, help=f"port (default {protocol.DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--listen", default=None, metavar="ADDR",
                   help="address to listen on (default 127.0.0.1; anything else exposes the worker to the network, "
                        "still behind the token)")
    p.add_argument("--device", default=None, help="cuda, cpu or mps (default: the best available)")
    p.add_argument("--new-token", action="store_true",
                   help="make a new token before starting (the old one stops working; clients read the new one)")
    p.set_defaults(func=run_worker_command)

    h = subparsers.add_parser("history", help="list the worker's finished jobs (works while it is stopped)")
    h.add_argument("--limit", type=int, default=20, help="how many jobs, newest first (default 20)")
    h.add_argument("--json", action="store_true", help="one JSON object per line")
    h.set_defaults(func=run_history_command)


def run_worker_command(args: argparse.Namespace) -> int:
    if args.port is not None and not 0 <= args.port <= 65535:
        print(f"brushwork: error: --port must be between 0 and 65535, got {args.port}", file=sys.stderr)
        return 2
    from .app import main

    return main(port=args.port, listen=args.listen, device=args.device, new_token=getattr(args, "new_token", False))


def run_history_command(args: argparse.Namespace) -> int:
    import sqlite3

    from .history import open_readonly

    db_path = paths.state_dir() / protocol.HISTORY_FILE
    if not db_path.exists():
        print(f"no history yet ({db_path} does not exist: the worker has not run a job)", file=sys.stderr)
        return 0
    try:
        with open_readonly(db_path) as db:
            rows = db.execute("SELECT id, client, state, created, finished, recipe, results, error FROM jobs "
                              "ORDER BY created DESC LIMIT ?", (max(1, args.limit),)).fetchall()
    except sqlite3.Error as exc:
        print(f"brushwork: error: cannot read {db_path}: {exc}", file=sys.stderr)
        return 1
    if not rows and not args.json:
        print(f"no jobs in the history yet ({db_path})", file=sys.stderr)
    for job_id, client, state, created, finished, recipe, results, error in rows:
        recipe = json.loads(recipe) if recipe else {}
        results = json.loads(results or "[]")
        error = json.loads(error) if error else None
        if args.json:
            print(json.dumps({"id": job_id, "client": client, "state": state, "created": created,
                              "finished": finished, "recipe": recipe, "results": results, "error": error}))
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        prompt = (recipe.get("prompt") or "").replace("\n", " ")
        prompt = prompt[:50] + ("..." if len(prompt) > 50 else "")
        print(f"{when}  {job_id}  {state:<9}  {recipe.get('model') or '(default)'}  {prompt!r}")
        for res in results:
            print(f"    {res.get('path')}  seed {res.get('seed')}")
        if error:
            print(f"    {error.get('code')}: {error.get('message')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m brushwork.worker`: the worker without the rest of the CLI (what connect() starts)."""
    parser = argparse.ArgumentParser(prog="brushwork")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv.insert(0, "worker")
    args = parser.parse_args(argv)
    return args.func(args)
