#!/usr/bin/env bash
# Stage 2 of the bundled default model (see models/README.md): fine-tunes the stage-1
# model (tools/train_default.sh) on mostly real speech with the milder augmentation,
# choosing the checkpoint by real/dev CER. Resumable: run it again after an interruption.
# INIT, OUT, LR, WARMUP and EMA (weight-average decay) set a new run's schedule (a resumed
# run keeps its own, except EMA and DROPOUT when given; SHUFFLE=1 shuffles the first epoch instead of
# going shortest first); MAX_STEPS, MAX_MINUTES and THREADS apply to
# every run. EXTRA names more training manifests (space-separated, each path[:weight]),
# e.g. the word and phrase pieces of tools/cut_segments.py; keep it the same when resuming
# (the run's data mix and its position in the epoch depend on it).
#   nohup bash tools/finetune_default.sh > logs/finetune_default.log 2>&1 &
set -euo pipefail
SHARED=${SHARED:-../shared/data/real}
SYNTH=${SYNTH:-data/synth}
INIT=${INIT:-runs/default/best.pt}
OUT=${OUT:-runs/ft-aug}
[ -f "$SYNTH/train/manifest.jsonl" ] || python tools/synth_corpus.py --hours 18 --seed 1 --out "$SYNTH/train"
# 3,000 synthetic utterances (a fixed, seeded draw) keep the synthetic voices in view.
[ -f "$SYNTH/train/manifest_small.jsonl" ] || python - "$SYNTH/train" <<'PY'
import random, sys
lines = open(f"{sys.argv[1]}/manifest.jsonl").readlines()
random.Random(7).shuffle(lines)
open(f"{sys.argv[1]}/manifest_small.jsonl", "w").writelines(lines[:3000])
PY
extra=()
read -r -a extra_paths <<< "${EXTRA:-}"
for m in ${extra_paths[@]+"${extra_paths[@]}"}; do extra+=(--train "$m"); done
start=(--init "$INIT")
[ -f "$OUT/last.pt" ] && start=(--resume)
asr train \
  --train "$SHARED/train/manifest.jsonl:3" --train "$SYNTH/train/manifest_small.jsonl" ${extra[@]+"${extra[@]}"} \
  --dev "$SHARED/dev/manifest.jsonl" --out "$OUT" \
  --lr "${LR:-6e-4}" --warmup-steps "${WARMUP:-50}" ${EMA:+--ema "$EMA"} ${DROPOUT:+--dropout "$DROPOUT"} --batch-seconds 200 --max-steps "${MAX_STEPS:-700}" --max-minutes "${MAX_MINUTES:-0}" \
  --eval-every 50 --checkpoint-every 50 --workers 1 --threads "${THREADS:-2}" ${SHUFFLE:+--shuffle-first-epoch} "${start[@]}"
