#!/usr/bin/env python3
"""float32 vs int8 (dynamic quantisation) on the same manifests, in the same run.

For each manifest: greedy WER/CER of both models, and their real-time factor on one CPU
thread, offline (whole files) and streaming (100 ms chunks through a Stream). The audio
is decoded into memory first, so the timings cover features, model and decoding only.

    python tools/bench_int8.py ../shared/data/real/dev/manifest.jsonl data/synth/dev/manifest.jsonl
    python tools/bench_int8.py --decoder beam ../shared/data/real/dev/manifest.jsonl   # as asr listen
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from asr.audio import load_audio
from asr.checkpoint import load_model
from asr.data import read_manifest
from asr.evaluate import score
from asr.export import quantize_int8, save_int8
from asr.streaming import Recognizer, transcribe


def run(bundle, clips, chunk_seconds: float, decoder: str = "greedy") -> tuple[list[str], float, float]:
    """Texts, offline RTF and streaming RTF of ``bundle`` over ``clips`` ``[(audio, text)]``.

    The streaming figure is the whole live path: features, model, ``decoder`` and a
    partial result after every chunk.
    """
    audio_seconds = sum(len(a) for a, _ in clips) / 16000
    began = time.perf_counter()
    texts = [transcribe(audio, bundle, decoder=decoder).text for audio, _ in clips]
    offline = (time.perf_counter() - began) / audio_seconds
    recognizer = Recognizer(bundle, decoder=decoder)
    step = int(16000 * chunk_seconds)
    began = time.perf_counter()
    for audio, _ in clips:
        stream = recognizer.stream()
        for i in range(0, len(audio), step):
            stream.accept_waveform(audio[i : i + step], 16000)
        stream.finish()
    streaming = (time.perf_counter() - began) / audio_seconds
    return texts, offline, streaming


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+")
    parser.add_argument("--model", help="model file (default: the bundled model)")
    parser.add_argument(
        "--decoder",
        choices=["greedy", "beam"],
        default="greedy",
        help="greedy (default) or beam (16 beams with the bundled LM, as asr listen decodes)",
    )
    parser.add_argument("--limit", type=int, default=0, help="first N utterances of each manifest")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fp32 = load_model(args.model)
    int8 = quantize_int8(fp32)
    with tempfile.TemporaryDirectory() as tmp:
        save_int8(int8, Path(tmp) / "int8.pt")
        sizes = {"int8": os.path.getsize(Path(tmp) / "int8.pt") / 1e6}
    sizes["fp32"] = 4 * fp32.model.num_parameters() / 1e6
    figures: dict[str, dict] = {}
    for manifest in args.manifests:
        utterances = read_manifest(manifest)
        if args.limit:
            utterances = utterances[: args.limit]
        clips = [(load_audio(u.audio), u.text) for u in utterances]
        refs = [t for _, t in clips]
        for name, bundle in (("fp32", fp32), ("int8", int8)):
            texts, offline, streaming = run(bundle, clips, 0.1, args.decoder)
            s = score(refs, texts)
            figures[f"{manifest} {name}"] = {
                "wer": round(s.wer, 4),
                "cer": round(s.cer, 4),
                "rtf_offline": round(offline, 4),
                "rtf_stream": round(streaming, 4),
                "utterances": len(clips),
                "decoder": args.decoder,
            }
            print(f"{manifest} {name}: {figures[f'{manifest} {name}']}", file=sys.stderr, flush=True)
    print(f"{'set':<48} {'model':<5} {'WER':>6} {'CER':>6} {'RTF offline':>12} {'RTF 100 ms':>11}")
    for key, f in figures.items():
        manifest, name = key.rsplit(" ", 1)
        print(
            f"{manifest[-48:]:<48} {name:<5} {f['wer']:>6.3f} {f['cer']:>6.3f} "
            f"{f['rtf_offline']:>12.4f} {f['rtf_stream']:>11.4f}"
        )
    print(f"model size: float32 {sizes['fp32']:.1f} MB, int8 file {sizes['int8']:.1f} MB (1 thread)")
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes_mb": sizes, "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
