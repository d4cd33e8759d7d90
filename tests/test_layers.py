"""DESIGN.md's layer rule, enforced: what each part may import.

recipe/protocol/client (and the small modules they use) travel into Blender's Python, which has no
torch and no Pillow; the engine must not know Qt or bpy; the canvas and add-on must not import torch.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SDK = REPO / "sdk" / "brushwork"

STDLIB_ONLY = ["recipe.py", "errors.py", "assets.py", "paths.py", "presets.py", "protocol.py", "client.py",
               "openpose.py", "launch.py"]
HEAVY = {"torch", "diffusers", "transformers", "PIL", "numpy", "safetensors", "huggingface_hub",
         "controlnet_aux", "accelerate", "peft"}
UI = {"PySide6", "PyQt5", "PyQt6", "bpy", "mathutils"}


def _guarded_by_import_error(node: ast.Try) -> bool:
    names = set()
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names.update(t.id for t in types if isinstance(t, ast.Name))
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def imported_roots(path: Path, *, count_optional: bool = True) -> set[str]:
    """Top-level module names a file imports (absolute imports only; relative ones stay inside).
    With ``count_optional=False``, imports inside ``try: ... except ImportError`` are left out:
    they are optional extras (the client decodes previews with Pillow when it is there)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try) and _guarded_by_import_error(node):
            for child in node.body:
                visit(child, True)
            for part in (node.handlers, node.orelse, node.finalbody):
                for child in part:
                    visit(child, optional)
            return
        if count_optional or not optional:
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return roots


@pytest.mark.parametrize("name", STDLIB_ONLY)
def test_stdlib_only_modules_import_only_the_stdlib(name):
    path = SDK / name
    foreign = {m for m in imported_roots(path, count_optional=False)
               if m not in sys.stdlib_module_names and m != "brushwork"}
    assert not foreign, f"{name} must stay stdlib-only (it runs inside Blender) but imports {sorted(foreign)}"


def test_engine_and_sdk_know_nothing_of_ui():
    offenders = {}
    for path in SDK.rglob("*.py"):
        bad = imported_roots(path) & UI
        if bad and path.name != "addon_package.py":
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert not offenders, f"the SDK must not import Qt or bpy: {offenders}"


@pytest.mark.parametrize("folder,forbidden", [
    ("desktop", {"torch", "diffusers", "transformers", "controlnet_aux", "bpy"}),
    ("blender_addon", HEAVY - {"numpy"} | {"PySide6"}),
])
def test_front_ends_do_not_import_the_engine(folder, forbidden):
    offenders = {}
    for path in (REPO / folder).rglob("*.py"):
        bad = imported_roots(path) & forbidden
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert not offenders, f"{folder} must talk to the worker, not import {sorted(forbidden)}: {offenders}"


def test_the_import_scan_sees_hard_and_optional_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import json\nfrom torch import nn\ntry:\n    import PIL\nexcept ImportError:\n    PIL = None\n"
                   "def f():\n    import numpy\n", encoding="utf-8")
    assert imported_roots(src) == {"json", "torch", "PIL", "numpy"}
    assert imported_roots(src, count_optional=False) == {"json", "torch", "numpy"}
