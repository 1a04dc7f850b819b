#!/usr/bin/env bash
# Prepares, on this machine, what a run of tools/train_gpu.sh needs on a rented GPU machine
# that lacks this project's dependencies and takes at most 64 MiB with it (the device tool):
# the training data re-encoded in .gpu/data and Python 3.12 wheels in .whl, both kept out
# of git. Run from the repository root; then carry .gpu and .whl (see models/README.md).
#   bash tools/prepare_gpu.sh        # SYNTH_COUNT=1200 synthetic utterances by default
set -euo pipefail
SHARED=${SHARED:-../shared/data/real}
SYNTH=${SYNTH:-data/synth}
PY=${PYTHON:-python}
mkdir -p .git/info
for path in /.gpu/ /.whl/; do
  grep -qxF "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude
done
[ -f "$SYNTH/train/manifest.jsonl" ] || $PY tools/synth_corpus.py --hours 18 --seed 1 --out "$SYNTH/train"
if [ ! -f .gpu/data/real_train/manifest.jsonl ]; then
  $PY tools/pack_for_gpu.py --out .gpu/data \
    real_train="$SHARED/train/manifest.jsonl:12" real_dev="$SHARED/dev/manifest.jsonl:12" \
    synth="$SYNTH/train/manifest.jsonl:10:${SYNTH_COUNT:-1200}"
fi
# The versions that ran on the H200 image (Python 3.12, torch 2.11, numpy 2.5).
for wheel in cffi==2.1.1 pycparser==3.12 soundfile==0.13.1 soxr==1.1.0 jiwer==4.0.0 rapidfuzz==3.14.6; do
  ls .whl/"${wheel%%==*}"-"${wheel##*==}"-*.whl >/dev/null 2>&1 && continue
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$wheel"
done
repo=$(git ls-files -z | xargs -0 du -cb --apparent-size | tail -1 | cut -f1)
extra=$(du -cb --apparent-size .gpu .whl | tail -1 | cut -f1)
total=$(( (repo + extra) / 1048576 ))
echo "to carry: repository $(( repo / 1048576 )) MiB + .gpu and .whl $(( extra / 1048576 )) MiB = $total MiB (limit 64)"
if (( total >= 64 )); then
  echo "over the limit: copy the INIT model over asr/models/default.pt for the call instead of carrying it, or pack fewer synthetic utterances (SYNTH_COUNT)" >&2
  exit 1
fi
