#!/usr/bin/env bash
# Refreshes requirements/lock.txt and requirements/blender-lock.txt against the newest releases that
# pyproject.toml's ranges allow, reinstalls, and runs the whole suite. Upgrading is a deliberate,
# tested step: commit the new locks only if this ends green (docs/dependencies.md).
#   tools/refresh-lock.sh            refresh both locks, set up, run ruff + mypy + tests
#   tools/refresh-lock.sh --no-test  refresh and set up only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
PIP_TOOLS=${PIP_TOOLS_VERSION:-7.7.0}
tooldir=$(mktemp -d)
trap 'rm -rf "$tooldir"' EXIT
# pip-compile runs in a throwaway venv so its own dependencies never leak into the lock.
"$PY" -m venv "$tooldir/venv"
"$tooldir/venv/bin/python" -m pip install -q "pip-tools==$PIP_TOOLS"
compile=("$tooldir/venv/bin/pip-compile" -q --upgrade --strip-extras --no-emit-find-links
         --no-emit-index-url --no-emit-trusted-host)
# torch stays out of the lock (setup.sh installs the CPU or CUDA build first); the constraint only
# makes torch's own dependencies resolve for the version setup.sh installs. torchvision stays out
# too: only spandrel asks for it, its upscalers never import it, and PyPI's build beside a CPU torch
# breaks diffusers' imports (docs/dependencies.md).
"${compile[@]}" --extra canvas --extra dev --extra batch --extra upscale --unsafe-package torch --unsafe-package torchvision \
    -c requirements/torch-constraint.txt -o requirements/lock.txt pyproject.toml
"${compile[@]}" -o requirements/blender-lock.txt requirements/blender.in
git --no-pager diff --stat -- requirements/
./setup.sh --all
[ "${1:-}" = "--no-test" ] && exit 0
bash .ci/run
