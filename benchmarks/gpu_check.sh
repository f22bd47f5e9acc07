#!/usr/bin/env bash
# The GPU check of issue 11, on one CUDA GPU in under 8 minutes (the parts' limits add up to 470 s):
#   1. the gpu-marked tests; 2. a 1-GPU NCCL run (torchrun, 1 process) of the demo data;
#   3. a Qwen2.5-0.5B-sized decoder step in bf16 with and without gradient checkpointing, measured peak
#      memory next to `vixml memory`'s estimate; 4. exact search on the GPU against the CPU.
# Usage: benchmarks/gpu_check.sh [OUT]   (figures in OUT/*.json, logs in OUT/*.log; default /tmp/vixml-gpu-check)
# DEVICE=cpu benchmarks/gpu_check.sh OUT: the same steps small on the CPU (gloo, tiny decoder), to try the script.
# On the lent GPU machine (the device tool's `run`; at most 8 files come back from $OUT):
#   bash benchmarks/gpu_check.sh /tmp/gc; rc=$?; cp /tmp/gc/*.json /tmp/gc/gpu.csv $OUT/; tail -n 40 /tmp/gc/*.log > $OUT/logs.txt; exit $rc
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python || command -v python3)}
OUT=${1:-/tmp/vixml-gpu-check}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 MPLBACKEND=Agg
status=0
step() {  # step NAME SECONDS COMMAND...: run with a limit, keep going, remember a failure
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS
  if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then echo "   ok in $((SECONDS - t0))s"; else
    echo "   FAILED (rc $?) in $((SECONDS - t0))s: tail of $OUT/$name.log"; tail -20 "$OUT/$name.log"; status=1; fi
}
if [ "$DEVICE" = cuda ]; then
  $PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" || exit 2
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
  $PY -c "import sys, torch, transformers; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)"
  # the files that hold gpu-marked tests (collecting all of tests/ would import fastapi, selenium, faiss...)
  step gpu-tests 100 $PY -m pytest -q -m gpu -p no:cacheprovider tests/search/test_search_exact.py \
    tests/training/test_losses.py tests/vision/test_embed.py
  SMALL=""
else
  SMALL="--tiny"
fi
step demo-data 40 $PY benchmarks/gpu_check.py demo "$OUT" --device "$DEVICE" $SMALL
step ddp-1-process 120 $PY -m torch.distributed.run --standalone --nproc_per_node 1 -m vixml train "$OUT/demo.yaml" \
  --data "$OUT/demo" --out "$OUT/ddp-run" --json
step decoder-0.5b 150 sh -c "$PY benchmarks/gpu_check.py decoder '$OUT' --device $DEVICE $SMALL > '$OUT/decoder.json'"
step search 60 sh -c "$PY benchmarks/gpu_check.py search --device $DEVICE $SMALL > '$OUT/search.json'"
# the backend the 1-process run used (nccl on a GPU, gloo on the CPU), from its run.json
$PY -c "import json,sys; r=json.load(open(sys.argv[1])); s=r['segments'][-1]; print(json.dumps({'ranks': s.get('ranks'), 'parallel': s.get('parallel'), 'backend': s.get('backend'), 'seconds': s.get('seconds'), 'precision': r['precision']['value']}))" \
  "$OUT/ddp-run/run.json" > "$OUT/ddp.json" 2>&1 || true
cat "$OUT"/ddp.json "$OUT"/decoder.json "$OUT"/search.json 2>/dev/null
exit $status
