#!/usr/bin/env bash
# Rebuilds the bundled word LM (asr/models/default.arpa.gz; see models/README.md):
# a 3-gram, modified Kneser-Ney, 30k words, bigrams and trigrams seen at least twice,
# from the synthetic corpus's training text (fortunes, KJV Bible, WordNet glosses;
# its dev sentences held out) and the real/train transcripts. About 3 minutes on 2 idle cores.
set -euo pipefail
SHARED=${SHARED:-../shared/data/real}
python tools/build_lm.py --debian --manifest "$SHARED/train/manifest.jsonl" \
  --order 3 --vocab-size 30000 --prune 2 2 --out "${OUT:-asr/models/default.arpa.gz}"
