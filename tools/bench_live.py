#!/usr/bin/env python3
"""What the live path costs besides the model: features, decoding and partial results.

Streams audio files through a Recognizer in 100 ms chunks (as ``asr listen`` does) on one
thread, first as is (the whole live path), then again with the model's outputs replayed
from the first pass, so the second figure is everything but the model: features, the
decoder and a partial result after every chunk. Both decoders, the same audio, the same
run.

    python tools/bench_live.py /tmp/cathy60.wav                 # one long utterance
    python tools/bench_live.py ../shared/data/real/dev/manifest.jsonl --limit 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from asr.audio import load_audio
from asr.checkpoint import load_model
from asr.data import read_manifest
from asr.export import quantize_int8
from asr.model import ModelState
from asr.streaming import Recognizer


class _Replay(Recognizer):
    """A Recognizer whose model steps return recorded outputs instead of running."""

    def __init__(self, *args, tape: list[tuple[torch.Tensor, ModelState]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tape = tape
        self.position = 0

    def _run(
        self, feats: torch.Tensor, state: ModelState, final: bool = False
    ) -> tuple[torch.Tensor, ModelState]:
        out = self.tape[self.position]
        self.position += 1
        return out


class _Recording(Recognizer):
    """A Recognizer that keeps every model step's outputs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tape: list[tuple[torch.Tensor, ModelState]] = []

    def _run(
        self, feats: torch.Tensor, state: ModelState, final: bool = False
    ) -> tuple[torch.Tensor, ModelState]:
        out = super()._run(feats, state, final)
        self.tape.append(out)
        return out


def stream_all(recognizer: Recognizer, clips: list[np.ndarray], chunk: int) -> tuple[float, list[str]]:
    """Seconds to stream every clip in ``chunk``-sample pieces, and the final texts."""
    texts = []
    began = time.perf_counter()
    for audio in clips:
        stream = recognizer.stream()
        for i in range(0, len(audio), chunk):
            stream.accept_waveform(audio[i : i + chunk], 16000)
        texts.append(stream.finish().text)
    return time.perf_counter() - began, texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="audio files or JSONL manifests")
    parser.add_argument("--model", help="model file (default: the bundled model)")
    parser.add_argument("--no-int8", action="store_true", help="float32 (default: int8, as asr listen)")
    parser.add_argument("--limit", type=int, default=0, help="first N utterances of each manifest")
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings (default 3)")
    parser.add_argument("--chunk-ms", type=int, default=100, help="audio per chunk (default 100)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_model(args.model)
    if not args.no_int8:
        bundle = quantize_int8(bundle)
    paths: list[str] = []
    for name in args.inputs:
        if name.endswith(".jsonl"):
            utterances = read_manifest(name)
            paths += [u.audio for u in (utterances[: args.limit] if args.limit else utterances)]
        else:
            paths.append(name)
    clips = [load_audio(p) for p in paths]
    seconds = sum(len(c) for c in clips) / 16000
    chunk = 16000 * args.chunk_ms // 1000
    figures: dict[str, dict[str, float]] = {}
    for decoder in ("greedy", "beam"):
        recording = _Recording(bundle, decoder=decoder)
        whole, texts = stream_all(recording, clips, chunk)
        for _ in range(args.repeats - 1):
            recording.tape.clear()
            whole = min(whole, stream_all(recording, clips, chunk)[0])
        overhead = float("inf")
        for _ in range(args.repeats):
            replay = _Replay(bundle, decoder=decoder, tape=recording.tape)
            spent, replayed = stream_all(replay, clips, chunk)
            if replayed != texts:
                raise SystemExit("bench_live.py: the replayed outputs decoded differently")
            overhead = min(overhead, spent)
        figures[decoder] = {
            "rtf_live": round(whole / seconds, 4),
            "rtf_without_model": round(overhead / seconds, 4),
        }
    model = "float32" if args.no_int8 else "int8"
    print(f"{len(clips)} clips, {seconds:.1f} s of audio, {args.chunk_ms} ms chunks, {model} model, 1 thread")
    print(f"{'decoder':<8} {'live path RTF':>14} {'without the model':>18}")
    for decoder, f in figures.items():
        print(f"{decoder:<8} {f['rtf_live']:>14.4f} {f['rtf_without_model']:>18.4f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"audio_seconds": seconds, "model": model, "figures": figures}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
