"""Starting and stopping the worker: token, history, outputs, the GPU thread, HTTP, worker.json.

``Worker(...).serve()`` blocks until SIGTERM / Ctrl-C (or ``shutdown()``), then stops cleanly:
no new jobs, queued jobs cancelled, the running job cancelled at its next step (no decode, no
file), history closed, worker.json removed.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import cast

from .. import __version__, paths, protocol
from ..assets import AssetStore, atomic_write_bytes
from ..errors import BrushworkError, WorkerError
from . import auth
from .engine_runner import EngineRunner
from .history import History
from .hub import EventLog, Hub, NotFound
from .outputs import Outputs
from .server import Problem, WorkerHTTPServer

log = logging.getLogger("brushwork.worker")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Worker:
    def __init__(self, *, host: str = protocol.DEFAULT_HOST, port: int = protocol.DEFAULT_PORT,
                 device: str | None = None, studio_factory=None, preload: bool | None = None,
                 new_token: bool = False):
        self.state_dir = paths.state_dir()
        if new_token:
            self.token, self.token_path = auth.rotate_token(self.state_dir)
        else:
            self.token, self.token_path = auth.load_or_create_token(self.state_dir)
        _make_private(self.state_dir)
        self.instance = secrets.token_hex(8)
        self.started = time.time()
        self.history = History(self.state_dir / protocol.HISTORY_FILE)
        interrupted = self.history.mark_interrupted()
        if interrupted:
            log.warning("%d job(s) were interrupted by the previous worker's end; marked failed", interrupted)
        self.outputs = Outputs.load()
        self.outputs.sweep_partials()
        self.assets = AssetStore(self.state_dir / "assets")
        _make_private(self.assets.root)
        self.events = EventLog()
        self.hub = Hub(self.events, on_change=lambda job: self.history.save(job.client, job.info(None)),
                       on_change_many=lambda jobs: self.history.save_many([(j.client, j.info(None)) for j in jobs]))
        if preload is None:
            preload = os.environ.get("BRUSHWORK_WORKER_PRELOAD", "1").strip() not in ("0", "false", "no")
        self.runner = EngineRunner(self.hub, self.outputs, device=device, studio_factory=studio_factory,
                                   preload=preload)
        try:
            self.httpd = WorkerHTTPServer((host, port), self, loopback_only=is_loopback(host))
        except OSError as exc:
            self.history.close()
            if exc.errno == errno.EADDRINUSE:
                raise WorkerError(f"port {port} on {host} is already in use (another worker is running, or "
                                  f"choose another with --port)") from None
            raise WorkerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound_host, bound_port = cast("tuple[str, int]", self.httpd.server_address[:2])  # IP sockets: (host, port)
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    # ---- lifecycle ------------------------------------------------------------------------------

    def serve(self, *, install_signals: bool = True) -> None:
        self.runner.start()
        self._write_info()
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()):
                # The handler must not call httpd.shutdown() itself: it runs on the thread that is
                # inside serve_forever(), which shutdown() waits for.
                signal.signal(sig, lambda *_: threading.Thread(target=self.shutdown, daemon=True).start())
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()
            self._stopped.wait(60)

    def shutdown(self) -> None:
        with self._stop_lock:
            if self._stopped.is_set():
                return
            log.info("shutting down")
            self.hub.stop()  # refuse new jobs, cancel queued ones, ask the running one to stop
            self.runner.stop_requested.set()
            # Wait for a running job to stop (at its next step, without writing anything); an
            # engine still importing has nothing to clean up and is not waited for.
            if self.runner.busy.is_set() and self.runner.ready.is_set():
                self.runner.join(timeout=60)
            self.events.close()  # wakes long-polls so their connections end
            self.httpd.shutdown()
            self.httpd.server_close()
            self._remove_info()
            self.history.close()
            self._stopped.set()

    def _write_info(self) -> None:
        info = {"url": self.url, "pid": os.getpid(), "python": sys.executable, "version": __version__,
                "protocol": protocol.PROTOCOL_VERSION, "instance": self.instance, "started": self.started,
                "token_file": str(self.token_path)}
        atomic_write_bytes(self.state_dir / protocol.INFO_FILE, json.dumps(info, indent=2).encode())

    def _remove_info(self) -> None:
        path = self.state_dir / protocol.INFO_FILE
        try:
            if json.loads(path.read_text()).get("instance") == self.instance:
                path.unlink()
        except (OSError, ValueError):
            pass

    # ---- what routes ask for --------------------------------------------------------------------

    def health(self) -> dict:
        if not self.runner.ready.is_set():
            engine = "loading" if (self.runner.preload or self.runner.busy.is_set()) else "not_loaded"
            error = None
        elif self.runner.load_error is not None:
            engine, error = "failed", self.runner.load_error.to_dict()
        else:
            engine, error = "ready", None
        if not self.runner.is_alive() and self.runner.ident is not None and not self.runner.stop_requested.is_set():
            engine = "dead"  # never expected (the thread guards every step), but never hidden either
        device = getattr(self.runner.studio, "device", None)
        writable = self.history.writable()
        pending = self.hub.unsaved_count()
        errors = [e for e in (self.runner.last_error, self.hub.last_error) if e]
        last_error = max(errors, key=lambda e: e.get("time", 0)) if errors else None
        try:
            state_free: int | None = shutil.disk_usage(self.state_dir).free
        except OSError:
            state_free = None
        return {"ok": engine not in ("dead", "failed") and writable and not pending,
                "version": __version__, "pid": os.getpid(), "instance": self.instance,
                "engine": engine, "engine_error": error, "device": str(device) if device else None,
                "queue": self.hub.queue_length(), "uptime_s": round(time.time() - self.started, 3),
                "history": {"writable": writable, "pending_writes": pending, "error": self.history.last_error},
                "disk_free": {"state": state_free, "destinations": self.outputs.free_bytes()},
                "last_error": last_error,
                "limits": {"queued_per_client": self.hub.max_per_client, "queued_total": self.hub.max_total}}

    def job_info(self, client: str, job_id: str):
        found = self.hub.get(client, job_id)
        if found is not None:
            job, position = found
            return job.info(position)
        info = self.history.get(job_id, client)
        if info is None:
            raise NotFound(f"no job {job_id} of this client")
        return info

    def put_asset(self, body: bytes, digest: str) -> str:
        actual = hashlib.sha256(body).hexdigest()
        if actual != digest:
            raise Problem(400, "hash_mismatch", f"the body's sha256 is {actual}, not {digest}: upload corrupted?")
        return self.assets.put(body)

    def list_models(self) -> list[dict]:
        """Models the configured sources offer (names only: clients never see or send paths)."""
        try:
            from ..models import sources
            from ..models.settings import Settings
        except ImportError:
            return []
        lister = getattr(sources, "list_models", None)
        if lister is None:
            return []
        settings = self.runner.settings or Settings.load()
        out = []
        refs = list(lister(settings))
        for item in refs:
            keys = ("name", "kind", "family", "variant", "source")
            out.append({key: _plain(getattr(item, key, None)) for key in keys})
        _add_model_facts(out, refs, settings)
        return out


def _add_model_facts(out: list[dict], refs, settings) -> None:
    """What front ends show before a job runs (the canvas's generate panel and Upscale dialog):
    each pipeline's defaults (``models.defaults.defaults_for_ref``, the ones a job that leaves
    them unset runs with), ``default: true`` on the model an empty ``model`` runs on, the
    super-resolution upscalers (kind "upscaler") and the IP-Adapters (kind "ip_adapter") in the
    model folders. Small files only."""
    from ..errors import BrushworkError
    from ..models import sources
    from ..models.defaults import defaults_for_ref

    try:
        default = sources.resolve(None, "pipeline", settings, allow_paths=True)
    except BrushworkError:
        default = None
    for row, ref in zip(out, refs, strict=False):
        if row.get("kind") != "pipeline":
            continue
        try:
            found = defaults_for_ref(ref)
        except Exception:  # a model whose small files cannot be read says so when it runs
            continue
        row["defaults"] = {**found.as_fields(), "why": found.why}
        if default is not None and ref.location == default.location:
            row["default"] = True
    try:
        from ..models.upscalers import KIND, list_upscalers
    except ImportError:
        return
    out.extend({"name": name, "kind": KIND} for name, _path in list_upscalers(settings))
    out.extend({"name": name, "kind": "ip_adapter"} for name in _ip_adapters(settings))


def _ip_adapters(settings) -> list[str]:
    """Names of the IP-Adapters in the model folders' adapter sub-folders (what a reference's
    ``model`` may name): a weights file by its stem, a folder holding weights by its name."""
    try:
        from ..models import modeldirs
        from ..models.ip_adapter import SUBDIRS
    except ImportError:
        return []
    names = set()
    for root in getattr(settings, "model_dirs", []) or []:
        for base in (Path(root).expanduser(), Path(root).expanduser() / "models"):
            for sub in (d for d in SUBDIRS if "adapter" in d.lower()):  # A1111's ControlNet folder mixes kinds
                try:
                    entries = sorted((base / sub).iterdir()) if (base / sub).is_dir() else []
                except OSError:
                    continue
                for entry in entries:
                    if entry.is_file() and entry.suffix.lower() in modeldirs.WEIGHT_EXTS:
                        names.add(entry.stem)
                    elif entry.is_dir() and any(p.suffix.lower() in modeldirs.WEIGHT_EXTS for p in entry.iterdir()):
                        names.add(entry.name)
    return sorted(names)


def _make_private(folder) -> None:
    """The worker's own folders (state, assets) are 0700, even when an older version made them 0755."""
    if os.name != "posix":
        return
    try:
        if folder.stat().st_uid == os.getuid() and folder.stat().st_mode & 0o077:
            os.chmod(folder, 0o700)
    except OSError:
        pass


def _plain(value):
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def main(port: int | None = None, listen: str | None = None, device: str | None = None,
         new_token: bool = False) -> int:
    """Run a worker in this process until stopped. Prints where it listens and its token file."""
    # The artist's prompts, uploads, results and logs are theirs alone on a shared machine:
    # everything this process creates is 0600 (files) / 0700 (folders).
    os.umask(0o077)
    logging.basicConfig(level=os.environ.get("BRUSHWORK_LOG", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if port is None:
        env = os.environ.get(protocol.ENV_PORT, "").strip()
        port = int(env) if env.isdigit() else protocol.DEFAULT_PORT
    host = listen or protocol.DEFAULT_HOST
    try:
        worker = Worker(host=host, port=port, device=device, new_token=new_token)
    except BrushworkError as exc:
        print(f"brushwork: error: {exc}", file=sys.stderr)
        return 1
    if not is_loopback(host):
        print(f"brushwork worker: listening on {host}, reachable from the network (token still required)",
              file=sys.stderr)
    print(f"brushwork worker {__version__} listening on {worker.url} (token: {worker.token_path})", flush=True)
    worker.serve()
    print("brushwork worker stopped", flush=True)
    if worker.runner.is_alive():
        # The GPU thread may be inside an import or a CUDA call; interpreter teardown around it
        # can hang. Everything is written and closed by now, so leave at once.
        sys.stderr.flush()
        os._exit(0)
    return 0
