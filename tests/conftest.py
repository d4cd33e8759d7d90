"""Shared test setup: no network, few threads, and one set of tiny random-weight models.

The tiny models are built once per source version of ``brushwork.testing`` into
``.cache/tiny-models/<digest>`` (a file lock keeps parallel pytest workers from racing), then every
test loads them through the real loading code.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# pytest-xdist runs two processes on two cores: one thread each keeps them from fighting.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

REPO = Path(__file__).resolve().parents[1]


def _testing_digest() -> str:
    import brushwork.testing as testing_pkg

    h = hashlib.sha256()
    for path in sorted(Path(testing_pkg.__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_models():
    """A ``brushwork.testing.tiny.TinySet`` of saved tiny models (see that module)."""
    from brushwork.testing.tiny import load_tiny_set, write_tiny_set
    from filelock import FileLock

    root = REPO / ".cache" / "tiny-models" / _testing_digest()
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / "COMPLETE").exists():
            write_tiny_set(root)
            (root / "COMPLETE").write_text("ok")
    return load_tiny_set(root)


@pytest.fixture(autouse=True)
def _isolated_brushwork_home(tmp_path, monkeypatch):
    """Every test gets its own config/state/output dirs: no test touches the user's real ones."""
    home = tmp_path / "brushwork-home"
    monkeypatch.setenv("BRUSHWORK_HOME", str(home))
    yield


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Keep ``xdist_group`` grouping under pytest 9: pytest keeps node ids in ``Node._id`` while
    xdist 3.8 writes ``_nodeid``, so ``--dist loadgroup`` would scatter a group's tests over both
    processes (each then starting its own worker / Blender session fixtures)."""
    # xdist sets option.loadgroup in its worker processes (where collection decides grouping)
    if not (getattr(config.option, "loadgroup", False) or getattr(config.option, "dist", None) == "loadgroup"):
        return
    from _pytest.nodes import coerce_node_id

    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = coerce_node_id(item.nodeid + suffix)


@pytest.fixture
def region_inputs(tmp_path):
    """A folder with what region and reference preflight tests point at: a white mask, one of other
    proportions, a reference picture and a file that is no picture."""
    from PIL import Image

    Image.new("L", (64, 64), 255).save(tmp_path / "white.png")
    Image.new("L", (64, 32), 255).save(tmp_path / "wide.png")
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "ref.png")
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    return tmp_path
