#!/usr/bin/env bash
# What ONE device-tool `run` call executes on a bare GPU machine (benchmarks/GPU.md has the call):
# install the carried wheels, check the GPU, run the CUDA-marked tests, then the GPU benchmark
# figures group by group. Everything it learns lands in $OUT (at most 8 files come back):
#   session.log    the whole output          results.json  figures so far, merged after each group
#   RESULTS.md     the same as a table       pytest.txt    the CUDA tests' report
# A group that fails or times out is recorded in results.json's not_measured; the others still run.
#
# usage: bash benchmarks/gpu_session.sh [STAGE ...]   stages: tests sd15 live texture sdxl (default: all,
#        in that order), and demo_train (never by default: the demo model's whole trainer on the GPU,
#        its finished stages packed into $OUT/demo-stages.tgz; docs/demo.md says how to assemble them).
#        QUICK=1 for fewer repeats. Stops starting stages after BUDGET_S seconds.
#        ALLOW_NO_GPU=1 runs it without a GPU (to check the script itself: GPU groups then fail).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD
OUT=${OUT:-$REPO/out/gpu-session}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(tests sd15 live texture sdxl)
for stage in "${STAGES[@]}"; do
  case $stage in tests|sd15|live|texture|sdxl|demo_train) ;;
    *) echo "gpu_session: unknown stage $stage (tests sd15 live texture sdxl demo_train)"; exit 2 ;; esac
done
BUDGET_S=${BUDGET_S:-560}  # the call's limit is 600 s; leave time to merge and copy back
QUICK_FLAG=()
[ "${QUICK:-0}" = 1 ] && QUICK_FLAG=(--quick)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
PARTS=$(mktemp -d)

say() { echo "== [$(( SECONDS ))s] $*"; }
left() { echo $(( BUDGET_S - SECONDS )); }

# ---- wheels the image lacks (benchmarks/gpu_wheels.sh made them here, the call carried .whl) ----
# Into the image's own environment where we may write (the machine is thrown away after the call):
# then subprocesses that set their own PYTHONPATH (large_texture_bench's jobs) see the same
# packages, and a .pth file puts brushwork (sdk/) on every interpreter's path. Else --target.
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
PIP=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade)
if [ "${ALLOW_NO_GPU:-0}" = 1 ]; then
  say "ALLOW_NO_GPU=1: a trial of this script off the GPU machine; nothing installed"
elif [ -w "$SITE" ]; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    wheels=(.whl/*.whl)
    say "installing ${#wheels[@]} carried wheels into $SITE"
    "${PIP[@]}" .whl/*.whl || { echo "gpu_session: installing the carried wheels failed"; exit 3; }
  fi
  echo "$REPO/sdk" > "$SITE/brushwork-gpu-session.pth"
else
  if compgen -G ".whl/*.whl" >/dev/null; then
    say "$SITE is read-only: installing the carried wheels into /tmp/site (subprocess jobs will not see them)"
    "${PIP[@]}" --target /tmp/site .whl/*.whl || { echo "gpu_session: installing the carried wheels failed"; exit 3; }
    export PYTHONPATH=/tmp/site
  fi
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$REPO/sdk:$REPO  # brushwork and benchmarks, not installed

say "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,temperature.gpu --format=csv || true
"$PY" - <<'EOF' || { echo "gpu_session: the Python environment is not usable (see above)"; exit 4; }
import sys
import torch, diffusers, transformers, brushwork
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"diffusers {diffusers.__version__}, transformers {transformers.__version__}")
import os
if os.environ.get("ALLOW_NO_GPU") != "1":  # ALLOW_NO_GPU=1: try this script's other parts on a CPU
    assert torch.cuda.is_available(), "torch sees no CUDA device"
    print("device:", torch.cuda.get_device_name(0))
EOF

merge() {  # results.json and RESULTS.md from every group's JSON so far
  "$PY" - "$PARTS" "$OUT" "${QUICK:-0}" <<'EOF'
import json, sys
from pathlib import Path
import benchmarks.__main__ as suite
from benchmarks.common import Figure
parts, out, quick = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
suite.HERE = out  # the table goes to $OUT/RESULTS.md, never over the repository's benchmarks/RESULTS.md
merged = {"device": "", "date": "", "quick": quick, "figures": {}, "details": {}, "not_measured": []}
for part in sorted(parts.glob("*.json")):
    data = json.loads(part.read_text())
    if "error" in data:
        merged["not_measured"].append(data["error"])
        continue
    merged["device"], merged["date"] = data["device"], data["date"]
    merged["figures"].update(data["figures"])
    merged["details"].update(data["details"])
    merged["not_measured"] += data["not_measured"]
(out / "results.json").write_text(json.dumps(merged, indent=2))
figures = []
for key, value in merged["figures"].items():
    d = {k: v for k, v in merged["details"][key].items() if k != "met"}
    figures.append(Figure(key, value, d.pop("unit", ""), d.pop("goal", ""), note=d.pop("note", ""), detail=d))
suite.write_results_md(figures, merged["not_measured"], merged["device"] or "?", quick)
EOF
}

bench() {  # bench NAME SECONDS KEY...: one `python -m benchmarks --only` run, its JSON kept in PARTS
  local name=$1 cap=$2; shift 2
  local limit; limit=$(left)
  [ "$limit" -gt "$cap" ] && limit=$cap
  if [ "$limit" -lt 30 ]; then
    say "$name: skipped, ${limit}s left"
    echo "{\"error\": \"$name: not run (session time budget spent)\"}" > "$PARTS/$name.json"
    merge
    return
  fi
  say "$name (limit ${limit}s): $*"
  timeout -k 10 "$limit" "$PY" -m benchmarks "${QUICK_FLAG[@]}" --no-results-md --json "$PARTS/$name.json" --only "$@"
  local rc=$?
  if [ $rc -ne 0 ] || [ ! -s "$PARTS/$name.json" ]; then
    echo "{\"error\": \"$name: exit $rc (124 = timed out after ${limit}s)\"}" > "$PARTS/$name.json"
  fi
  merge
}

for stage in "${STAGES[@]}"; do
  case $stage in
    tests)
      limit=$(left); [ "$limit" -gt 150 ] && limit=150
      say "CUDA-marked tests (limit ${limit}s)"
      timeout -k 10 "$limit" "$PY" -m pytest tests/sdk tests/benchmarks -m gpu -q -n 0 -p no:cacheprovider \
        --continue-on-collection-errors -rsP 2>&1 | tee "$OUT/pytest.txt"
      ;;
    sd15) bench sd15 240 sd15_unet_its sd15_e2e_s sd15_speedup sd15_peak_vram_gib preview_overhead_cuda_ratio \
            controlnet_overhead_ratio controlnet_peak_vram_gib ;;
    live) bench live 120 live_frame_ms live_frame_speedup live_frame_peak_vram_gib ;;
    texture) bench texture 200 large_texture_peak_memory_ratio ;;
    sdxl) bench sdxl 240 sdxl_e2e_s sdxl_speedup sdxl_peak_vram_gib ;;
    demo_train)
      # Every stage, finished ones kept in the work folder with the text encoder they were trained
      # against (a cut-off run still returns them); measured 2026-12-04 on an H200: VAE 500 steps
      # 23 s, UNet 11.3 steps/s at batch 32, so the default plan needs about 9 minutes.
      limit=$(left)
      say "demo_train (limit ${limit}s)"
      timeout -k 10 "$limit" "$PY" -m brushwork.demo.train --device "${DEMO_DEVICE:-cuda}" --no-save --work /tmp/demo-stages \
        --threads 8 ${DEMO_TRAIN_ARGS:-} > "$OUT/train.log" 2>&1
      say "demo_train: exit $? (124 = cut off; finished stages are kept)"
      grep -v Writing "$OUT/train.log" | tail -3
      # in 15 MiB parts (the device tool returns files up to 16 MiB): cat demo-stages.tgz.* | tar xz
      [ -d /tmp/demo-stages ] && tar -C /tmp -cz demo-stages | split -b 15M - "$OUT/demo-stages.tgz."
      ;;
  esac
done
say "done"
[ -f "$OUT/RESULTS.md" ] && cat "$OUT/RESULTS.md"
rm -rf "$PARTS"
