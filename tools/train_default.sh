#!/usr/bin/env bash
# Reproduces the bundled default model (asr/models/default.pt); see models/README.md.
# Run from the repository root with the project installed. Resumable: run it again
# after an interruption and it continues from runs/default/last.pt.
#   nohup bash tools/train_default.sh > logs/train_default.log 2>&1 &
set -euo pipefail
SHARED=${SHARED:-../shared/data/real}
SYNTH=${SYNTH:-data/synth}
[ -f "$SYNTH/train/manifest.jsonl" ] || python tools/synth_corpus.py --hours 18 --seed 1 --out "$SYNTH/train"
[ -f "$SYNTH/dev/manifest.jsonl" ] || python tools/synth_corpus.py --hours 0.4 --seed 2 --split dev --out "$SYNTH/dev"
# Resume the run when its checkpoint is here; on a fresh machine, continue from the
# shipped weights (INIT=none starts from random weights, as the first run did).
resume=()
if [ -f runs/default/last.pt ]; then
  resume=(--resume)
elif [ "${INIT:-asr/models/default.pt}" != none ] && [ -f "${INIT:-asr/models/default.pt}" ]; then
  resume=(--init "${INIT:-asr/models/default.pt}")
fi
asr train \
  --train "$SHARED/train/manifest.jsonl:3" --train "$SYNTH/train/manifest.jsonl" \
  --dev "$SHARED/dev/manifest.jsonl" --out runs/default \
  --hidden 384 --layers 4 --conv-channels 32 --dropout 0.1 \
  --lr 2e-3 --warmup-steps 400 --batch-seconds 200 --max-steps "${MAX_STEPS:-3000}" --max-minutes "${MAX_MINUTES:-0}" \
  --eval-every 150 --checkpoint-every 100 --workers 1 --threads "${THREADS:-2}" "${resume[@]}"
