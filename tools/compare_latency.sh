#!/usr/bin/env bash
# The latency/accuracy trade-off of issue 4: trains four models on the same data and
# budget, then reports greedy WER/CER on real/dev and the synthetic dev set:
#   uni      unidirectional GRU                     algorithmic latency 0 (+ 40 ms frame)
#   lc8+2    bidirectional, 8-frame chunks, 2 ahead  (8 + 2) x 40 ms = 400 ms worst case
#   lc16+8   bidirectional, 16-frame chunks, 8 ahead (16 + 8) x 40 ms = 960 ms worst case
#   bi       whole-utterance bidirectional          the whole utterance (offline only)
# STEPS (default 1000) sets each run's length, HIDDEN/LAYERS/LR/WARMUP the model and
# schedule (the same for all four); on a GPU add DEVICE=cuda. Resumable.
set -euo pipefail
SHARED=${SHARED:-../shared/data/real}
SYNTH=${SYNTH:-data/synth}
STEPS=${STEPS:-1000}
OUT=${OUT:-runs}
common=(--train "$SHARED/train/manifest.jsonl:3" --train "$SYNTH/train/manifest.jsonl"
        --dev "$SHARED/dev/manifest.jsonl" --hidden "${HIDDEN:-384}" --layers "${LAYERS:-4}"
        --lr "${LR:-2e-3}" --warmup-steps "${WARMUP:-400}" --batch-seconds 200
        --max-steps "$STEPS" --eval-every "${EVAL_EVERY:-250}" --checkpoint-every 50
        --seed 1 --device "${DEVICE:-auto}")
declare -A variants=(
  [uni]=""
  [lc8+2]="--bidirectional --chunk-frames 8 --lookahead-frames 2"
  [lc16+8]="--bidirectional --chunk-frames 16 --lookahead-frames 8"
  [bi]="--bidirectional"
)
for name in uni lc8+2 lc16+8 bi; do
  resume=()
  [ -f "$OUT/latency-$name/last.pt" ] && resume=(--resume)
  # shellcheck disable=SC2086
  asr train "${common[@]}" ${variants[$name]} --out "$OUT/latency-$name" "${resume[@]}"
done
python tools/latency_table.py "$OUT"/latency-{uni,lc8+2,lc16+8,bi} \
  --manifests "$SHARED/dev/manifest.jsonl" "$SYNTH/dev/manifest.jsonl" --json "$OUT/latency-table.json"
