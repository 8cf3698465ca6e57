#!/usr/bin/env bash
# GPU check of the sweeps: the smoke sweep and the 1,000-trial benchmark with --device cuda, in one
# go. Run from the repository root on a machine with a CUDA device (and torch built for it):
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Prints the device, the smoke sweep's table summary and the benchmark's tables; exits non-zero if
# no CUDA device is visible or a step fails. Nothing else in the project depends on it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="${PYTHONPATH:-src}"
PY="${PYTHON:-python}"
out="${1:-${OUT:-/tmp}/attnmech-gpu-check}"
rm -rf "$out"
mkdir -p "$out"

"$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch; nothing to check")
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PYEOF

echo "== smoke sweep on cuda"
time "$PY" -m attnmech sweep examples/sweeps/smoke.toml --out "$out/smoke" --device cuda \
    --workers 1 --no-progress
"$PY" -m attnmech sweep-status "$out/smoke"
echo "== the same sweep on cpu (the numbers must agree)"
"$PY" -m attnmech sweep examples/sweeps/smoke.toml --out "$out/smoke-cpu" --workers 1 --no-progress
"$PY" - "$out" <<'PYEOF'
import sys
import numpy as np
from attnmech.studies.sweeps import load_results
a = load_results(f"{sys.argv[1]}/smoke")
b = load_results(f"{sys.argv[1]}/smoke-cpu")
oa, ob = np.lexsort((a["trial"], a["cell"])), np.lexsort((b["trial"], b["cell"]))
worst = 0.0
for name in a.names:
    x = a[name][oa]
    if x.dtype != object and not name.endswith("time_s") and name not in ("dataset_seed", "init_seed"):
        y = b[name][ob]
        both = np.isfinite(x) & np.isfinite(y)
        if both.any():
            worst = max(worst, float(np.abs(x[both] - y[both]).max()))
print(f"cuda vs cpu smoke sweep: largest difference {worst:.2e} over {len(a)} rows")
PYEOF

echo "== 1,000-trial benchmark on cuda"
time "$PY" benchmarks/bench_sweep.py --device cuda --workers 1 --reference-trials 2 --repeats 3
