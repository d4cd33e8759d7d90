"""Running rows on a Ray cluster: one long-lived StudioActor per GPU (per CPU slot where the
cluster has no GPU), rows handed out as actors free up, outputs returned to the driver.

- Without an address, a local Ray starts on this machine (and stops at the end); an already
  initialised Ray in this process is used as it is (and left running).
- Each distinct input is put into Ray's object store once (``ray.put``), addressed by its sha256;
  an actor fetches it only if its own asset store lacks it.
- An actor that dies (node lost, OOM-killed, ``ray.kill``) takes no row with it: the rows it held
  go back to the front of the queue for the others (up to ``max_attempts`` runs per row); only
  the driver writes files, once per row, so nothing is duplicated.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import MissingDependencyError
from .memory import Measure
from .preflight import Row
from .runners import Emit, Outcome, local_lora_check, local_missing, local_model_check, local_store

# Environment the actors of a LOCAL Ray need to see what this process sees (model folders,
# BRUSHWORK_HOME, offline switches). A remote cluster's nodes are configured on the nodes.
_FORWARD_PREFIXES = ("BRUSHWORK_", "HF_", "TRANSFORMERS_", "DIFFUSERS_")


class RayRunner:
    label = "ray"

    def __init__(self, address: str | None = None, *, actors: int | None = None, device: str | None = None,
                 per_actor: int = 2, max_attempts: int = 3, on_dispatch: Callable[[Any, Row], None] | None = None):
        """``actors``: how many (default: one per GPU in the cluster, else one per CPU).
        ``per_actor``: rows queued at each actor (2: the next is ready when one ends).
        ``on_dispatch(actor, row)``: called after each row is handed out (tests kill actors there)."""
        self.address = address or None
        self.n_actors, self.device = actors, device
        self.per_actor, self.max_attempts = max(1, per_actor), max(1, max_attempts)
        self.on_dispatch = on_dispatch
        self.actors: list = []
        self.info: list[dict] = []
        self._blobs: dict[str, Any] = {}
        self._owns_ray = False
        self._ray: Any = None

    # ---- the cluster --------------------------------------------------------------------------

    def start(self) -> None:
        if self.actors:
            return
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("--ray needs Ray: pip install 'ray>=2.60'") from None
        self._ray = ray
        local = self.address is None
        if not ray.is_initialized():
            # Ray's INFO lines would interleave with the batch's progress; its warnings still show.
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
            self._owns_ray = True
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        count = self.n_actors or gpus or max(1, int(resources.get("CPU", 1)))
        options: dict = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        if local:
            env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_PREFIXES)}
            env.setdefault("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
            options["runtime_env"] = {"env_vars": env}
        from .ray_actor import StudioActor

        actor_cls = ray.remote(StudioActor)
        device = self.device or ("cuda" if gpus else "cpu")
        self.actors = [actor_cls.options(**options).remote(device) for _ in range(count)]
        self.info = ray.get([a.describe.remote() for a in self.actors])

    def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        self._blobs.clear()
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    # ---- what the driver asks -----------------------------------------------------------------

    def missing(self, refs: list[str]) -> list[str]:
        return local_missing(refs)  # the driver ships inputs from this machine's store

    def check_model(self, model: str) -> None:
        if self.address is None:  # a local cluster sees this machine's models
            local_model_check(model)

    def check_lora(self, model: str, name: str) -> None:
        if self.address is None:
            local_lora_check(model, name)

    def describe(self) -> str:
        self.start()
        where = sorted({i["host"] for i in self.info})
        devices = sorted({i["device"] for i in self.info})
        return f"Ray: {len(self.actors)} actors ({', '.join(devices)}) on {', '.join(where)}"

    def capacity(self) -> int | None:
        """Memory one actor may count on: its GPU's, or on a CPU node that node's RAM shared by the
        actors running there."""
        self.start()
        per_host: dict[str, int] = {}
        for i in self.info:
            per_host[i["host"]] = per_host.get(i["host"], 0) + 1
        known = [i["memory"] if i["device"].startswith("cuda") else i["memory"] // per_host[i["host"]]
                 for i in self.info if i.get("memory")]
        return min(known) if known else None

    # ---- running --------------------------------------------------------------------------------

    def run(self, rows: Iterable[Row], emit: Emit) -> None:
        self.start()
        ray = self._ray
        queue = collections.deque(rows)
        load = {id(a): 0 for a in self.actors}
        inflight: dict = {}  # future -> (actor, row)
        while queue or inflight:
            for actor in list(self.actors):
                while queue and load[id(actor)] < self.per_actor:
                    row = queue.popleft()
                    assert row.recipe is not None  # only checked rows reach a runner
                    row.attempts += 1
                    future = actor.run.remote(row.recipe.to_dict(), self._inputs(row))
                    inflight[future] = (actor, row)
                    load[id(actor)] += 1
                    if self.on_dispatch is not None:
                        self.on_dispatch(actor, row)
            if not inflight:
                for row in queue:
                    emit(row, Outcome(error="no Ray actor is left to run it (they all died)"))
                return
            [ready], _ = ray.wait(list(inflight), num_returns=1)
            actor, row = inflight.pop(ready)
            load[id(actor)] -= 1
            try:
                out = ray.get(ready)
            except ray.exceptions.RayActorError as exc:
                self._lost(actor)
                if row.attempts < self.max_attempts:
                    queue.appendleft(row)  # its turn again, on another actor
                else:
                    emit(row, Outcome(error=f"{row.attempts} Ray actors died running it ({type(exc).__name__})",
                                      lost=True))
                continue
            except ray.exceptions.RayError as exc:
                emit(row, Outcome(error=f"Ray: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))
                continue
            m = Measure(seconds=out["seconds"], peak_bytes=out["peak_bytes"], resident_bytes=out["resident_bytes"])
            emit(row, Outcome(png=out["png"], error=out["error"], measure=m))

    def _lost(self, actor) -> None:
        self.actors = [a for a in self.actors if a is not actor]

    def _inputs(self, row: Row) -> dict:
        """{sha256 ref: object ref} for the row's inputs; each distinct input is put once."""
        refs = {}
        assert row.recipe is not None
        for ref in row.recipe.image_refs().values():
            if ref not in self._blobs:
                path = row.blobs.get(ref)
                data = path.read_bytes() if path is not None else local_store().get(ref)
                self._blobs[ref] = self._ray.put(data)
            refs[ref] = self._blobs[ref]
        return refs
