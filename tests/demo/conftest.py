"""Fixtures for the demo-model tests: the shipped weights and one Studio shared per session.

The Studio is created with BRUSHWORK_HOME pointing at a session temp folder (its asset store is
fixed when it is built), so no test touches the user's real folders.
"""

from __future__ import annotations

import brushwork.demo as demo
import pytest


@pytest.fixture(scope="session")
def demo_dir():
    folder = demo.weights_dir()
    assert folder is not None, "the demo weights are missing: run `python -m brushwork.demo.train`"
    return folder


@pytest.fixture(scope="session")
def studio(tmp_path_factory):
    from brushwork import Studio

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BRUSHWORK_HOME", str(tmp_path_factory.mktemp("demo-studio-home")))
        yield Studio(device="cpu")


@pytest.fixture(scope="session")
def size():
    return demo.native_size()
