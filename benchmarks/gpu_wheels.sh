#!/usr/bin/env bash
# Download, on THIS machine (pip reaches PyPI here, never on the GPU machine), the wheels the GPU
# machine's image lacks into .whl/ (git-ignored), for its Python 3.12 on x86-64 Linux.
#
# The image has torch, accelerate, safetensors, huggingface_hub, tokenizers, numpy, pillow,
# filelock, pytest, pytest-xdist and hypothesis (/work/.library/device/KINDS.md); it lacks
# diffusers, and its transformers/peft are other versions than ours. We carry exactly the versions
# installed in .venv (what the tests ran with) plus the pure-Python packages they need that the
# image does not list (importlib_metadata, zipp) or may hold too old (regex, for transformers).
# benchmarks/gpu_session.sh installs them with `pip install --no-index --no-deps --target`.
#
# usage: bash benchmarks/gpu_wheels.sh        (then carry ".whl" in the device call)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PACKAGES=(diffusers transformers peft importlib_metadata zipp regex)
DEST=.whl
LIMIT_MIB=64  # the device tool's limit on the working tree plus carried paths

pins=()
for name in "${PACKAGES[@]}"; do
  version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name") || {
    echo "gpu_wheels: $name is not installed in $PY; run setup.sh first" >&2; exit 1; }
  pins+=("$name==$version")
done

rm -rf "$DEST.partial" && mkdir -p "$DEST.partial"
# --platform values: pip matches manylinux_2_N exactly, so name the common ones (device README).
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST.partial" "${pins[@]}"
rm -rf "$DEST" && mv "$DEST.partial" "$DEST"  # never a half-filled .whl/ for the session to install

# one version of each package, or pip --target stops the whole install
dupes=$(find "$DEST" -name '*.whl' -printf '%f\n' | sed -E 's/-[0-9].*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [ -n "$dupes" ]; then echo "gpu_wheels: two versions of: $dupes" >&2; exit 1; fi

wheels_kib=$(du -sk "$DEST" | cut -f1)
tree_kib=$(git ls-files -z --cached --others --exclude-standard | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1)
total_mib=$(( (wheels_kib + tree_kib) / 1024 ))
printf 'gpu_wheels: %s\n' "${pins[*]}"
echo "gpu_wheels: wheels $((wheels_kib / 1024)) MiB + working tree $((tree_kib / 1024)) MiB = $total_mib MiB (limit $LIMIT_MIB)"
if [ "$total_mib" -ge "$LIMIT_MIB" ]; then echo "gpu_wheels: over the device tool's $LIMIT_MIB MiB" >&2; exit 1; fi
