"""Batch jobs from a manifest: ``brushwork batch MANIFEST --out DIR`` and ``brushwork.batch(...)``.

    import brushwork
    result = brushwork.batch("shots.jsonl", out="renders/")            # through the local worker
    result = brushwork.batch(rows, out="renders/", runner="in-process")  # rows: a list of dicts
    result = brushwork.batch("shots.toml", out="renders/", runner="ray", ray_address="auto")

See docs/batch.md. Modules: manifest (reading rows), preflight (checks before any model loads),
identity (Recipe hash, output names, verifying outputs), runners / ray_runner / ray_actor (who
runs rows), estimate + memory (time and memory before the bulk runs), report, run (the driver),
commands (the CLI plugin).
"""

from __future__ import annotations

import sys
import types

from .run import BatchResult, run_batch

__all__ = ["BatchResult", "run_batch"]


class _CallableModule(types.ModuleType):
    # ``brushwork.batch`` is both this package and the function users call: once the package is
    # imported, Python sets the attribute ``brushwork.batch`` to the module, so the module itself
    # must be callable for ``brushwork.batch(...)`` to keep working.
    def __call__(self, *args, **kwargs) -> BatchResult:
        return run_batch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
