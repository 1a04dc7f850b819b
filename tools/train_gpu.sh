#!/usr/bin/env bash
# Stage 3 of the bundled default model (see models/README.md): continues a model on one
# CUDA GPU for a fixed wall-clock budget, with the learning-rate decay sized to finish in it.
# The data are the manifests tools/pack_for_gpu.py re-encodes to fit a small transfer.
#   DATA=.gpu/data INIT=.gpu/init.pt OUT=runs/gpu MINUTES=7 bash tools/train_gpu.sh
# INIT=none trains a new model from random weights, shaped by HIDDEN, LAYERS,
# CONV_CHANNELS and DROPOUT (asr train's defaults where unset), e.g. a bigger one:
#   INIT=none HIDDEN=512 LAYERS=5 LR=1.5e-3 MINUTES=9 bash tools/train_gpu.sh
# EMA=0.999 ships a moving average of the weights (asr train --ema).
# On a rented machine without this project's dependencies, WHEELS=.whl installs them first.
set -euo pipefail
DATA=${DATA:-.gpu/data}
INIT=${INIT:-asr/models/default.pt}
OUT=${OUT:-runs/gpu}
MINUTES=${MINUTES:-7}
BATCH_SECONDS=${BATCH_SECONDS:-400}
LR=${LR:-8e-4}
WARMUP=${WARMUP:-100}
WORKERS=${WORKERS:-$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$(cd "$(dirname "$0")/.." && pwd):${PYTHONPATH:-}
TRAIN=("$DATA/real_train/manifest.jsonl:3" "$DATA/synth/manifest.jsonl")
# Fail at once on a missing module or device, before any time goes into data loading.
$PY -c "import soundfile, soxr, jiwer, torch, asr.train; torch.zeros(1, device='$DEVICE'); print('torch', torch.__version__, 'on', '$DEVICE')"
# How many steps fit: the augmented data loader sets the pace (the GPU waits for it), so
# measure its audio seconds per second (25 s, PROBE_SECONDS) with all workers, then size
# the schedule (STEPS= skips the measurement).
# The number comes back on descriptor 3, apart from any warning the loader prints.
STEPS=${STEPS:-$($PY - "$WORKERS" "$BATCH_SECONDS" "$MINUTES" "${PROBE_SECONDS:-25}" "${TRAIN[@]}" 3>&1 1>&2 <<'PY'
import os, sys, time, torch
from asr.augment import AugmentConfig, WaveAugment
from asr.data import BucketBatchSampler, SpeechDataset, collate
from asr.features import FeatureConfig
from asr.text import Vocabulary
from asr.train import _manifests
workers, batch_seconds, minutes, probe = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
utts = _manifests(sys.argv[5:])
data = SpeechDataset(utts, Vocabulary(), FeatureConfig(), WaveAugment(AugmentConfig(), seed=0))
sampler = BucketBatchSampler([u.duration for u in utts], batch_seconds, 1)
sampler.set_epoch(1, 0)
loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=collate, num_workers=workers, prefetch_factor=2 if workers else None)
seconds, start = 0.0, time.time()
for batch in loader:  # the workers' start-up counts too, which errs on the safe side
    seconds += batch.seconds
    if time.time() - start > probe:
        break
rate = seconds / (time.time() - start)
# 30 s for start-up and evaluations; 0.85 for the CPU the training process itself takes.
steps = max(1, int(0.85 * rate * (minutes * 60 - 30) / batch_seconds))
print(f"loader: {rate:.0f} s of audio per second with {workers} workers; {steps} steps", file=sys.stderr)
os.write(3, b"%d" % steps)
PY
)}
[[ $STEPS =~ ^[1-9][0-9]*$ ]] || { echo "train_gpu.sh: STEPS must be a positive number of steps, got '$STEPS'" >&2; exit 2; }
START=(--init "$INIT")
if [ "$INIT" = none ]; then
  START=()
  [ -n "${HIDDEN:-}" ] && START+=(--hidden "$HIDDEN")
  [ -n "${LAYERS:-}" ] && START+=(--layers "$LAYERS")
  [ -n "${CONV_CHANNELS:-}" ] && START+=(--conv-channels "$CONV_CHANNELS")
  [ -n "${DROPOUT:-}" ] && START+=(--dropout "$DROPOUT")
fi
# A run already in OUT continues (asr train refuses to start a new one over it).
[ -f "$OUT/last.pt" ] && START=(--resume)
$PY -m asr train --train "${TRAIN[0]}" --train "${TRAIN[1]}" --dev "$DATA/real_dev/manifest.jsonl" --out "$OUT" \
  ${START[@]+"${START[@]}"} --device "$DEVICE" --lr "$LR" --warmup-steps "$WARMUP" --batch-seconds "$BATCH_SECONDS" \
  --max-steps "$STEPS" --max-minutes "$MINUTES" --eval-every $(( STEPS / 10 > 0 ? STEPS / 10 : 1 )) \
  --checkpoint-every 200 --workers "$WORKERS" --threads "${THREADS:-4}" ${EMA:+--ema "$EMA"}
