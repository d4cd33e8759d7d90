"""A real worker process for tests (this project's and the canvas/Blender ones).

    with WorkerProcess(home=tmp_path / "home", model_dirs=[tiny_models.root]) as worker:
        client = worker.client()
        ...

It runs ``python -m brushwork.worker --port 0`` with its own BRUSHWORK_HOME, waits until it
answers, and stops it with SIGTERM on exit (``kill()`` is the kill -9 of the crash tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .. import protocol
from ..client import Client


class WorkerProcess:
    def __init__(self, home: Path, model_dirs=(), *, env: dict | None = None, python: str | None = None,
                 start_timeout: float = 60.0, wait_engine: bool = False, args: tuple[str, ...] = ()):
        self.home = Path(home)
        self.model_dirs = [str(p) for p in model_dirs]
        self.extra_env = dict(env or {})
        self.python = python or sys.executable
        self.start_timeout = start_timeout
        self.wait_engine = wait_engine
        self.args = list(args)  # more `brushwork worker` options (e.g. --new-token)
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.token = ""

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    def env(self) -> dict:
        env = dict(os.environ)
        env.update({"BRUSHWORK_HOME": str(self.home), protocol.ENV_PORT: "0", "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
                    "PYTHONUNBUFFERED": "1"})
        if self.model_dirs:
            env["BRUSHWORK_MODEL_DIRS"] = os.pathsep.join(self.model_dirs)
        env.update(self.extra_env)
        return env

    def start(self) -> WorkerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        info_path = self.state_dir / protocol.INFO_FILE
        log = open(self.home / "worker-test.log", "ab")  # noqa: SIM115 - handed to the child, closed below
        self.proc = subprocess.Popen([self.python, "-m", "brushwork.worker", "--port", "0", *self.args],
                                     env=self.env(),
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                info = json.loads(info_path.read_text())
            except (OSError, ValueError):
                info = None
            if info and info.get("pid") == self.proc.pid:
                self.url = info["url"]
                self.token = (self.state_dir / protocol.TOKEN_FILE).read_text().strip()
                health = self.client().health()
                if not self.wait_engine or health["engine"] != "loading":
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the worker did not start within {self.start_timeout} s:\n{self.log_text()[-3000:]}")

    def wait_engine_ready(self, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.client().health()
            if health["engine"] != "loading":
                return health
            time.sleep(0.1)
        raise RuntimeError("the worker's engine did not load in time")

    def client(self, key: str | None = None, **kwargs) -> Client:
        return Client(self.url, self.token, client_key=key, **kwargs)

    def log_text(self) -> str:
        try:
            return (self.home / "worker-test.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the clean shutdown path."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
