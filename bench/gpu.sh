#!/usr/bin/env bash
# One-GPU benchmark (docs/performance.md#gpu): FLYP and StarFT images/s, MFU and peak memory for
# ViT-B/16 at batch 256 in bf16 (random init, nothing downloaded), then evaluation throughput.
# Run from anywhere:  bash bench/gpu.sh [extra gpu_bench.py flags, e.g. --peak-tflops 989]
# Results: printed, and written to $OUT/gpu_bench.json when OUT is set (else ./gpu_bench.json).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

# The repo's venv if there is one; else a Python that already has torch and open_clip (a
# machine without network); else make one with `make install`.
if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
elif python3 -c "import torch, open_clip" 2>/dev/null; then
    PY=python3
else
    make install
    PY=.venv/bin/python
fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true

out="${OUT:-.}/gpu_bench.json"
"$PY" bench/gpu_bench.py --device cuda --out "$out" "$@"
echo "results: $out"
