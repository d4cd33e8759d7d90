#!/usr/bin/env bash
# Sets up Brushwork from a fresh clone. Safe to run again: it only adds what is missing.
#   ./setup.sh         .venv (Python 3.11): SDK, worker, canvas, test tools
#   ./setup.sh --all   also .venv-blender: Blender as a Python module (bpy 5.0.1) for the add-on tests
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
ALL=0
[ "${1:-}" = "--all" ] && ALL=1

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY" >&2
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# torch first and pinned: a bare "torch" would pull a multi-GB CUDA build on a machine with no GPU.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing torch ${TORCH_VERSION:-2.13.0}" >&2
  .venv/bin/pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
echo "setup: installing brushwork (editable) with canvas and dev extras" >&2
.venv/bin/pip install -q -e ".[canvas,dev]"

if [ "$ALL" = 1 ]; then
  # bpy pins numpy<2 and needs Python 3.11: its own environment, like Blender's own Python.
  if [ ! -x .venv-blender/bin/python ]; then
    echo "setup: creating .venv-blender (bpy 5.0.1)" >&2
    "$PY" -m venv .venv-blender
  fi
  if ! .venv-blender/bin/python -c "import bpy" 2>/dev/null; then
    .venv-blender/bin/pip install -q "bpy==5.0.1"
  fi
fi
echo "setup: done" >&2
