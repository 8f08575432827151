#!/usr/bin/env bash
# The GPU check: the CUDA tests (tests/test_gpu.py), then benchmarks/bench_gpu.py with real images.
#
#   bash scripts/gpu_check.sh [LOG_DIR]      (or: make gpu-check)
#
# Run it from the repository root on a machine with a CUDA GPU; it needs nothing but a Python
# with torch, torchvision, numpy, scipy, pandas, scikit-learn, matplotlib, seaborn, tqdm and pytest
# (PY, default .venv/bin/python if there, else python3). Logs go to LOG_DIR (default gpu-check/).
# Fashion-MNIST is found as ift_core.data finds it; a folder .gpu-data/ holding its four .gz files
# is used when present (how to carry them to a machine without internet). The whole check takes
# a few minutes on one H100/H200-class GPU; each stage has its own time limit, so a slow or hung
# stage still leaves the others' logs. Exit status 0 only when every stage passed.
set -uo pipefail
log=${1:-gpu-check}
mkdir -p "$log"
if [ -n "${PY:-}" ]; then py=$PY; elif [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
if [ -d .gpu-data ] && [ -z "${IFT_DATA:-}" ]; then export IFT_DATA="$PWD/.gpu-data"; fi
IFT_CACHE=$(mktemp -d) && export IFT_CACHE   # never mixes with (or fills) the user's cache

status=0
stage() {  # stage NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit} s): $*" | tee "$log/$name.log"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$log/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log/$name.log"
  [ "$rc" = 0 ] || status=1
}

stage env 60 "$py" -c "import torch, torchvision, numpy; print('torch', torch.__version__, 'torchvision', \
torchvision.__version__, 'numpy', numpy.__version__); print('CUDA', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "GPU check: NOT RUN, no CUDA GPU is visible to $py (torch.cuda.is_available() is False)" | tee -a "$log/env.log"
  exit 2
fi
stage tests 200 "$py" -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py
stage bench 330 "$py" benchmarks/bench_gpu.py --seeds-per-gpu 1,4,8 --steps 200 --real 3 --budget 240
echo "GPU check: $([ $status = 0 ] && echo PASSED || echo FAILED); logs in $log/"
exit $status
