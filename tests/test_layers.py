"""DESIGN.md's layers, enforced: what each part may import, from outside and from Brushwork itself.

The stdlib-only core (the modules the Blender packager copies into the add-on) travels into
Blender's Python, which has no torch and no Pillow; below the engine sit models and conditioning;
the worker sits on the engine; tools (CLI, batch, demo training, test helpers) sit on top and
nothing below imports them; the canvas and the add-on talk to the worker through the core only.
Every import counts: absolute (``brushwork.x``) and relative (``from ..x``), at module level and
inside functions, and the add-on's ``importlib.import_module`` of vendored names.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from brushwork.addon_package import VENDORED_MODULES

REPO = Path(__file__).resolve().parents[1]
SDK = REPO / "sdk" / "brushwork"
CANVAS = REPO / "desktop" / "brushwork_canvas"
ADDON = REPO / "blender_addon" / "brushwork_blender"

CORE = frozenset(VENDORED_MODULES)
HEAVY = {"torch", "diffusers", "transformers", "PIL", "numpy", "safetensors", "huggingface_hub",
         "controlnet_aux", "accelerate", "peft", "cv2", "ray"}
UI = {"PySide6", "PyQt5", "PyQt6", "bpy", "mathutils"}
# Tools on top of the SDK: they may import any layer, and no layer below may import them.
TOOLS = {"cli", "cli_inputs", "__main__", "addon_package", "demo", "testing", "batch"}
# What each layer of sdk/brushwork may import from Brushwork besides itself. "root" is the package
# itself (``from . import __version__``); core modules never import it (the add-on copies them alone).
BELOW = {
    "core": {"core"},
    "models": {"core", "root"},
    "conditioning": {"core", "root"},
    "metadata": {"core", "root"},
    "engine": {"core", "root", "models", "conditioning", "metadata"},
    "worker": {"core", "root", "models", "conditioning", "metadata", "engine"},
}


# -- reading imports ------------------------------------------------------------------------------------------------

def _module_parts(path: Path, root: Path, package: str) -> list[str]:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _guarded_by_import_error(node: ast.Try) -> bool:
    names = set()
    for handler in node.handlers:
        if handler.type is None:
            continue
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names.update(t.id for t in types if isinstance(t, ast.Name))
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def imports_of(path: Path, root: Path, package: str, *, count_optional: bool = True) -> set[str]:
    """Dotted names of every module a file imports, relative imports resolved against ``package``
    (the folder ``root`` is that package). ``from a import b`` counts ``a.b`` when ``a/b`` is a
    module and ``a`` otherwise. With ``count_optional=False``, imports inside ``try: ... except
    ImportError`` are left out: they are optional extras."""
    parts = _module_parts(path, root, package)
    here = parts if path.name == "__init__.py" else parts[:-1]
    found: set[str] = set()

    def is_module(dotted: str) -> bool:
        head, *rel = dotted.split(".")
        base = {package: root, "brushwork": SDK}.get(head)
        if base is None:
            return False
        target = base.joinpath(*rel)
        return target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()

    def record(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if is_module(sub) else module)

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try) and _guarded_by_import_error(node):
            for child in node.body:
                visit(child, True)
            for part in (node.handlers, node.orelse, node.finalbody):
                for child in part:
                    visit(child, optional)
            return
        if count_optional or not optional:
            record(node)
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    return found


def sdk_imports(path: Path, **kw) -> set[str]:
    return imports_of(path, SDK, "brushwork", **kw)


def roots(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def layer_of(dotted: str) -> str:
    """The layer of a ``brushwork.*`` module name."""
    parts = dotted.split(".")[1:]
    if not parts:
        return "root"
    if "testing" in parts:
        return "testing"
    head = parts[0]
    return "core" if head in CORE else head


def sdk_files() -> list[Path]:
    return sorted(SDK.rglob("*.py"))


# -- the rules ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CORE))
def test_core_modules_import_only_the_stdlib_and_each_other(name):
    path = SDK / f"{name}.py"
    names = sdk_imports(path, count_optional=False)
    foreign = {m for m in roots(names) if m not in sys.stdlib_module_names and m != "brushwork"}
    assert not foreign, f"{name}.py must stay stdlib-only (it runs inside Blender) but imports {sorted(foreign)}"
    inside = {n for n in names if n.split(".")[0] == "brushwork"}
    outside_core = {n for n in inside if layer_of(n) != "core"}
    assert not outside_core, (f"{name}.py is copied into the Blender add-on alone, so it may import only "
                              f"{sorted(CORE)}, but imports {sorted(outside_core)}")


def test_each_sdk_layer_imports_only_what_sits_below_it():
    offenders: dict[str, list[str]] = {}
    for path in sdk_files():
        layer = layer_of(".".join(_module_parts(path, SDK, "brushwork")))
        if layer not in BELOW:
            continue  # a tool on top (cli, batch, demo, testing): it may use any layer
        allowed = BELOW[layer] | {layer}
        bad = sorted({n for n in sdk_imports(path) if n.split(".")[0] == "brushwork" and layer_of(n) not in allowed})
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert not offenders, f"layer violations (see docs/DESIGN.md): {offenders}"


def test_the_engine_and_the_sdk_know_nothing_of_ui():
    offenders = {}
    for path in sdk_files():
        bad = roots(sdk_imports(path)) & UI
        if bad and path.name != "addon_package.py":
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert not offenders, f"the SDK must not import Qt or bpy: {offenders}"


def test_the_canvas_uses_only_the_core_and_never_the_engine():
    offenders = {}
    for path in sorted(CANVAS.rglob("*.py")):
        names = imports_of(path, CANVAS, "brushwork_canvas")
        bad = roots(names) & {"torch", "diffusers", "transformers", "controlnet_aux", "cv2", "ray", "bpy"}
        bad |= {n for n in names if n.split(".")[0] == "brushwork" and layer_of(n) != "core"}
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert not offenders, f"the canvas must talk to the worker through {sorted(CORE)} only: {offenders}"


def _dynamic_vendored_names(path: Path) -> set[str]:
    """``importlib.import_module(_BASE + ".client")``: the vendored module names a file asks for."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
                and node.args and isinstance(node.args[0], ast.BinOp)
                and isinstance(node.args[0].right, ast.Constant) and isinstance(node.args[0].right.value, str)):
            found.add(node.args[0].right.value.lstrip("."))
    return found


def test_the_blender_addon_uses_only_vendored_modules_and_blenders_own():
    offenders = {}
    for path in sorted(ADDON.rglob("*.py")):
        names = imports_of(path, ADDON, "brushwork_blender")
        bad = roots(names) & (HEAVY - {"numpy"} | {"PySide6"})
        bad |= {n for n in names if n.split(".")[0] == "brushwork"}  # only the vendored copies exist there
        bad |= {f"vendor:{n}" for n in _dynamic_vendored_names(path) if n not in CORE}
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert not offenders, f"the add-on runs in Blender's Python with the vendored {sorted(CORE)} only: {offenders}"


# -- the scanner itself ---------------------------------------------------------------------------------------------

def test_the_scanner_sees_hard_optional_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "brushwork"
    (pkg / "engine").mkdir(parents=True)
    (pkg / "demo").mkdir()
    for f in ("__init__.py", "recipe.py", "engine/__init__.py", "engine/run.py", "demo/__init__.py"):
        (pkg / f).write_text("")
    src = pkg / "engine" / "studio.py"
    src.write_text("import json\nfrom torch import nn\ntry:\n    import PIL\nexcept ImportError:\n    PIL = None\n"
                   "from . import run\nfrom ..recipe import Recipe\nfrom .. import __version__\n"
                   "def f():\n    import numpy\n    from ..demo import info\n    import brushwork.demo\n",
                   encoding="utf-8")
    everything = imports_of(src, pkg, "brushwork")
    assert everything == {"json", "torch", "PIL", "numpy", "brushwork.engine.run", "brushwork.recipe", "brushwork",
                          "brushwork.demo"}
    assert "PIL" not in imports_of(src, pkg, "brushwork", count_optional=False)
    assert {layer_of(n) for n in everything if n.startswith("brushwork")} == {"engine", "core", "root", "demo"}
