"""Where Brushwork keeps files: BRUSHWORK_HOME overrides, else the platformdirs conventions."""

import sys
from pathlib import Path

import pytest
from brushwork import paths


def test_brushwork_home_puts_everything_under_one_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))
    assert paths.config_dir() == tmp_path / "config"
    assert paths.state_dir() == tmp_path / "state"
    assert paths.data_dir() == tmp_path / "data"
    assert paths.outputs_dir() == tmp_path / "data" / "outputs"


@pytest.mark.skipif(sys.platform != "linux", reason="XDG rules are the Linux convention")
def test_xdg_variables_are_honoured(tmp_path, monkeypatch):
    monkeypatch.delenv("BRUSHWORK_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "s"))
    monkeypatch.setenv("XDG_DATA_HOME", "")
    assert paths.config_dir() == tmp_path / "c" / "brushwork"
    assert paths.state_dir() == tmp_path / "s" / "brushwork"
    assert str(paths.data_dir()).endswith(".local/share/brushwork")


def test_agrees_with_platformdirs(monkeypatch):
    platformdirs = pytest.importorskip("platformdirs")
    monkeypatch.delenv("BRUSHWORK_HOME", raising=False)
    assert paths.config_dir() == platformdirs.user_config_path("brushwork")
    assert paths.state_dir() == platformdirs.user_state_path("brushwork")
    assert paths.data_dir() == platformdirs.user_data_path("brushwork")


def test_paths_module_is_stdlib_only():
    source = Path(paths.__file__).read_text()
    assert "platformdirs" not in [line.split()[1] for line in source.splitlines() if line.startswith("import ")]
