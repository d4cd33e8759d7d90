#!/usr/bin/env bash
# Sets up Brushwork from a fresh clone. Safe to run again: it brings an existing environment back
# to exactly the locked versions.
#   ./setup.sh         .venv (Python 3.11): SDK, worker, canvas, test tools
#   ./setup.sh --all   also .venv-blender: Blender as a Python module (bpy 5.0.1) for the add-on tests
# Versions come from requirements/lock.txt and requirements/blender-lock.txt: what was tested, so
# an upstream release cannot break an install. docs/dependencies.md says how to refresh them.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
TORCH=${TORCH_VERSION:-2.13.0}
ALL=0
[ "${1:-}" = "--all" ] && ALL=1

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi
# torch first and pinned: a bare "torch" would pull a multi-GB CUDA build on a machine with no GPU.
# It stays out of the lock so that a CUDA build (TORCH_VERSION, or PyPI's default on a GPU
# machine) can stand in for the CPU one.
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH')" 2>/dev/null; then
  echo "setup: installing torch $TORCH" >&2
  .venv/bin/python -m pip install -q "torch==$TORCH"
fi
echo "setup: installing the locked dependencies and brushwork (editable)" >&2
# --no-deps: the lock is complete, and pip must not resolve again: spandrel declares torchvision,
# and resolving it would replace torch with the newest CUDA build (several GB) to fit one.
.venv/bin/python -m pip install -q --no-deps -r requirements/lock.txt
.venv/bin/python -m pip install -q --no-deps -e .
# torchvision stays uninstalled: spandrel's upscalers never use it and PyPI's build cannot import
# beside a CPU torch (it then breaks diffusers' imports too); models/upscalers.py loads spandrel
# without it. That is the one missing requirement pip check may report (docs/dependencies.md).
if ! check=$(.venv/bin/python -m pip check 2>&1); then
  other=$(printf '%s\n' "$check" | grep -v '^spandrel [0-9.]* requires torchvision, which is not installed\.$' || true)
  if [ -n "$other" ]; then printf '%s\n' "$other" >&2; exit 1; fi
fi
# The canvas needs Qt's X11 platform libraries from the system; say what to install (tests run
# Qt offscreen and need none of them, so this only warns).
.venv/bin/python -m brushwork.demo.qt_libs >&2 || echo "setup: (the SDK, worker, tests and Blender add-on work without them)" >&2

if [ "$ALL" = 1 ]; then
  # bpy pins numpy<2 and needs Python 3.11: its own environment, like Blender's own Python.
  if [ ! -x .venv-blender/bin/python ]; then
    echo "setup: creating .venv-blender (bpy 5.0.1)" >&2
    "$PY" -m venv .venv-blender
  fi
  .venv-blender/bin/python -m pip install -q -r requirements/blender-lock.txt
  .venv-blender/bin/python -m pip check >&2
fi
echo "setup: done" >&2
