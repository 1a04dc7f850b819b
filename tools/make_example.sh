#!/usr/bin/env bash
# Regenerates asr/examples/hello.wav, the bundled example, with espeak-ng (16 kHz mono PCM).
set -euo pipefail
cd "$(dirname "$0")/.."
espeak-ng -v en-us -s 150 -w /tmp/asr-example.wav "hello world. please turn on the lights in the kitchen."
sox /tmp/asr-example.wav -r 16000 -c 1 -b 16 asr/examples/hello.wav
rm /tmp/asr-example.wav
