#!/usr/bin/env bash
# Measures the figures in models/README.md: asr (greedy) beside PocketSphinx on real/dev,
# real/test, the held-out synthetic dev set and the reserved Festival voices reading
# Harvard sentences (tools/festival_eval.py), per subset, with the real-time factor on
# one thread. Usage: bash tools/evaluate_default.sh [MODEL] > logs/evaluate_default.md
set -euo pipefail
MODEL=${1:-asr/models/default.pt}
SHARED=${SHARED:-../shared/data/real}
SYNTH=${SYNTH:-data/synth}
FESTIVAL=${FESTIVAL:-data/festival}
[ -f "$SYNTH/dev/manifest.jsonl" ] || python tools/synth_corpus.py --hours 0.4 --seed 2 --split dev --out "$SYNTH/dev"
[ -f "$FESTIVAL/manifest.jsonl" ] || python tools/festival_eval.py --out "$FESTIVAL"
for manifest in "$SHARED/dev/manifest.jsonl" "$SHARED/test/manifest.jsonl" "$SYNTH/dev/manifest.jsonl" "$FESTIVAL/manifest.jsonl"; do
  echo
  python tools/bench_peers.py "$manifest" --model "$MODEL" --markdown
done
