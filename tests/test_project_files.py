"""The files a packager or a lawyer reads first agree with each other."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # not `from conftest import`: several conftest modules exist


def test_the_root_licence_is_the_one_pyproject_declares():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_locks_pin_every_package_exactly():
    for name in ("lock.txt", "blender-lock.txt"):
        pins = [line.split("#")[0].strip() for line in (REPO / "requirements" / name).read_text().splitlines()]
        pins = [p for p in pins if p and not p.startswith("-")]
        assert pins, name
        loose = [p for p in pins if "==" not in p]
        assert not loose, f"{name} must pin exact versions: {loose}"
    lock = (REPO / "requirements" / "lock.txt").read_text()
    assert "\ntorch==" not in lock, "torch stays out of the lock: setup.sh installs the CPU or CUDA build first"


def test_ci_runs_exactly_the_readmes_test_command_and_it_lints_and_type_checks():
    readme = (REPO / "README.md").read_text().splitlines()
    commands = [line for line in readme if line.startswith("./setup.sh")]
    assert len(commands) >= 2, "the README starts with two commands"
    test_command = commands[1]
    assert test_command in (REPO / ".ci" / "run").read_text().splitlines()
    for step in ("./setup.sh --all", ".venv/bin/ruff check .", ".venv/bin/mypy", "-m pytest"):
        assert step in test_command
