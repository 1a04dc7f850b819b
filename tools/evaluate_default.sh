#!/usr/bin/env bash
# Measures the figures in models/README.md: asr (greedy) beside PocketSphinx on real/dev,
# real/test and the held-out synthetic dev set, per subset, with the real-time factor on
# one thread. Usage: bash tools/evaluate_default.sh [MODEL] > logs/evaluate_default.md
set -euo pipefail
MODEL=${1:-asr/models/default.pt}
SHARED=${SHARED:-../shared/data/real}
SYNTH=${SYNTH:-data/synth}
[ -f "$SYNTH/dev/manifest.jsonl" ] || python tools/synth_corpus.py --hours 0.4 --seed 2 --split dev --out "$SYNTH/dev"
for manifest in "$SHARED/dev/manifest.jsonl" "$SHARED/test/manifest.jsonl" "$SYNTH/dev/manifest.jsonl"; do
  echo
  python tools/bench_peers.py "$manifest" --model "$MODEL" --markdown
done
