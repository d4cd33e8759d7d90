"""docs/batch.md's manifest examples are manifests this code reads, expanding as the page says."""

from __future__ import annotations

import re
from pathlib import Path

from brushwork.batch.manifest import read_manifest

DOC = Path(__file__).resolve().parents[2] / "docs" / "batch.md"


def block(lang: str) -> str:
    [text] = re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return text


def test_the_jsonl_example_expands_as_documented(tmp_path):
    path = tmp_path / "shots.jsonl"
    path.write_text(block("jsonl"), encoding="utf-8")
    entries = read_manifest(path)
    assert not [e.error for e in entries if e.error]
    assert len(entries) == 3 * 4 + 2 * 2 + 1 + 1
    assert entries[12].name == "bricks" and entries[12].fields["width"] == 768


def test_the_toml_example_expands_as_documented(tmp_path):
    path = tmp_path / "shots.toml"
    path.write_text(block("toml"), encoding="utf-8")
    entries = read_manifest(path)
    assert not [e.error for e in entries if e.error]
    assert len(entries) == 2 * 4 + 1
    assert all(e.fields["model"] == "sd15" and e.fields["steps"] == 30 for e in entries)
    assert entries[-1].fields["controls"] == [{"kind": "depth", "image": "depth/statue-000.png"}]
