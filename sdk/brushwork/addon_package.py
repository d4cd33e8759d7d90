"""``brushwork blender package --out FILE.zip``: build the installable Blender extension.

The add-on (``blender_addon/brushwork_blender``) runs inside Blender's own Python, which has no
torch and no Pillow. It talks to the worker through the stdlib-only SDK modules, which are COPIED
into the zip at package time (``brushwork_blender/vendor/brushwork/``) so there is one source of
truth: ``sdk/brushwork``. Each copied module is checked here: it may import only the standard
library and the other copied modules (relative imports), or packaging fails naming the import.

Stdlib only itself, so ``brushwork --help`` never pays for torch.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import zipfile
from pathlib import Path

from .errors import BrushworkError

# The modules Blender's Python carries. Order does not matter; every one must exist.
VENDORED_MODULES = ("recipe", "errors", "assets", "paths", "protocol", "client", "launch", "presets", "openpose")
EXTENSION_ID = "brushwork_blender"
_SDK_DIR = Path(__file__).resolve().parent
_REPO_DIR = _SDK_DIR.parents[1]
_ADDON_DIR = _REPO_DIR / "blender_addon" / EXTENSION_ID
_SKIP_PARTS = {"__pycache__", "vendor", ".pytest_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo", ".blend1"}


class PackageError(BrushworkError):
    """The extension could not be built (a module is missing or imports something heavy)."""

    code = "package_error"


def check_stdlib_only(name: str, source: str, allowed_siblings: tuple[str, ...] = VENDORED_MODULES) -> None:
    """Raise PackageError if module ``name`` imports anything but the stdlib and its siblings."""
    try:
        tree = ast.parse(source, filename=f"{name}.py")
    except SyntaxError as exc:
        raise PackageError(f"sdk/brushwork/{name}.py does not parse: {exc.msg} (line {exc.lineno})") from None
    optional = _optional_imports(tree)
    for node in ast.walk(tree):
        if node in optional:
            continue
        if isinstance(node, ast.Import):
            targets = [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: "from .x import y" or "from . import x"
                if node.level > 1:
                    raise PackageError(f"sdk/brushwork/{name}.py line {node.lineno}: imports from outside the package")
                names = [node.module] if node.module else [a.name for a in node.names]
                for sibling in names:
                    if sibling.split(".")[0] not in allowed_siblings:
                        raise PackageError(
                            f"sdk/brushwork/{name}.py line {node.lineno}: imports .{sibling}, which is not "
                            f"one of the modules bundled into the Blender add-on ({', '.join(allowed_siblings)})")
                continue
            targets = [(node.module or "", 0)]
        else:
            continue
        for module, _ in targets:
            top = module.split(".")[0]
            if top == "brushwork":
                raise PackageError(
                    f"sdk/brushwork/{name}.py line {node.lineno}: absolute import of {module}; "
                    "use a relative import so the copy inside the add-on finds its siblings")
            if top not in sys.stdlib_module_names and top != "__future__":
                raise PackageError(
                    f"sdk/brushwork/{name}.py line {node.lineno}: imports {module}, which is not in the "
                    "standard library; Blender's Python cannot carry it")


def _optional_imports(tree: ast.AST) -> set[ast.AST]:
    """Import nodes inside ``try: ... except ImportError:`` (e.g. the client's optional Pillow
    decode): they run in Blender as a caught ImportError, so they are allowed."""
    optional: set[ast.AST] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught: set[str] = set()
        for handler in node.handlers:
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            caught.update(t.id for t in types if isinstance(t, ast.Name))
        if caught & {"ImportError", "ModuleNotFoundError"}:
            for stmt in node.body:
                optional.update(n for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return optional


def _sdk_version(sdk_dir: Path) -> str:
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', (sdk_dir / "__init__.py").read_text("utf-8"), re.M)
    return match.group(1) if match else "0.0.0"


def _vendor_init(version: str) -> str:
    return (
        '"""Copies of the stdlib-only modules of sdk/brushwork, made by `brushwork blender package`.\n\n'
        'Do not edit: the source of truth is sdk/brushwork in the Brushwork repository."""\n\n'
        f'__version__ = "{version}"\n'
    )


def addon_files(addon_dir: Path = _ADDON_DIR):
    """(relative path, absolute path) of every file of the add-on source to ship."""
    for path in sorted(addon_dir.rglob("*")):
        rel = path.relative_to(addon_dir)
        if not path.is_file() or _SKIP_PARTS.intersection(rel.parts) or path.suffix in _SKIP_SUFFIXES:
            continue
        yield rel.as_posix(), path


def build_extension_zip(out: str | Path, *, sdk_dir: Path = _SDK_DIR, addon_dir: Path = _ADDON_DIR,
                        presets_dir: Path = _REPO_DIR / "presets") -> Path:
    """Write the extension zip (manifest at its root, as Blender's own ``extension build`` does).

    The zip is assembled in memory and written atomically: a failed build leaves no file.
    """
    from .assets import atomic_write_bytes

    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise PackageError(f"{out}: the extension package must be a .zip file")
    if not (addon_dir / "blender_manifest.toml").is_file():
        raise PackageError(f"{addon_dir}: no blender_manifest.toml (is this a Brushwork checkout?)")
    sources = {}
    for name in VENDORED_MODULES:
        path = sdk_dir / f"{name}.py"
        if not path.is_file():
            raise PackageError(f"{path}: missing; the Blender add-on needs a copy of it")
        text = path.read_text("utf-8")
        check_stdlib_only(name, text)
        sources[name] = text

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, path in addon_files(addon_dir):
            zf.write(path, rel)
        zf.writestr("vendor/__init__.py", '"""Modules bundled at package time."""\n')
        zf.writestr("vendor/brushwork/__init__.py", _vendor_init(_sdk_version(sdk_dir)))
        for name, text in sources.items():
            zf.writestr(f"vendor/brushwork/{name}.py", text)
        # The bundled presets, where presets.builtin_dirs() looks in a packaged copy.
        for preset in sorted(presets_dir.glob("*.toml")) if presets_dir.is_dir() else []:
            zf.write(preset, f"vendor/brushwork/presets/{preset.name}")
    return atomic_write_bytes(out, buffer.getvalue())


# ---- CLI --------------------------------------------------------------------------------------


def _cmd_package(args) -> int:
    try:
        path = build_extension_zip(args.out)
    except BrushworkError as exc:
        print(f"brushwork: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"brushwork: error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} (install it in Blender: Edit > Preferences > Get Extensions > Install from Disk)")
    return 0


def register(subparsers) -> None:
    """Add ``brushwork blender package --out FILE.zip`` to the CLI's subparsers."""
    blender = subparsers.add_parser("blender", help="the Blender add-on")
    sub = blender.add_subparsers(dest="blender_command", metavar="COMMAND")
    sub.required = True
    package = sub.add_parser("package", help="build the installable Blender extension zip")
    package.add_argument("--out", required=True, metavar="FILE.zip", help="where to write the extension zip")
    package.set_defaults(func=_cmd_package)


def main(argv: list[str] | None = None) -> int:
    """``python -m brushwork.addon_package package --out X.zip`` (the same as the CLI command)."""
    import argparse

    parser = argparse.ArgumentParser(prog="brushwork")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["blender", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
