#!/usr/bin/env python3
"""Peers side by side: WER, CER and real-time factor of asr and of PocketSphinx on the same
manifest, in the same run.

PocketSphinx (PyPI ``pocketsphinx``, its bundled US English acoustic model, language
model and dictionary) decodes each utterance in streaming mode, 0.1 s at a time. asr
decodes greedily with one CPU thread. Both see the same 16 kHz audio and are scored by
the same normaliser and jiwer.

    python tools/bench_peers.py ../shared/data/real/test/manifest.jsonl \
        --model asr/models/default.pt --markdown
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asr.audio import AudioError, load_audio
from asr.checkpoint import load_model
from asr.data import read_manifest
from asr.evaluate import Scores, score
from asr.streaming import transcribe

CHUNK = 1600


def pocketsphinx_decoder():
    try:
        from pocketsphinx import Decoder
    except ImportError:
        sys.exit("error: PocketSphinx is not installed: pip install pocketsphinx")
    return Decoder(samprate=16000, loglevel="FATAL")


def pocketsphinx_text(decoder, audio: np.ndarray) -> str:
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    decoder.start_utt()
    for start in range(0, len(pcm), CHUNK):
        decoder.process_raw(pcm[start : start + CHUNK].tobytes(), False, False)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


def table(results: dict[str, dict[str, Scores]], rtf: dict[str, float], markdown: bool) -> str:
    systems = list(results)
    subsets = [*sorted({s for r in results.values() for s in r} - {"all"}), "all"]
    head = ["subset", "utts"] + [f"{s} WER" for s in systems] + [f"{s} CER" for s in systems]
    rows = []
    for subset in subsets:
        first = results[systems[0]][subset]
        rows.append(
            [subset, str(first.utterances)]
            + [f"{results[s][subset].wer:.3f}" for s in systems]
            + [f"{results[s][subset].cer:.3f}" for s in systems]
        )
    rows.append(["RTF (1 thread)", ""] + [f"{rtf[s]:.4f}" for s in systems] + [""] * len(systems))
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
        lines = ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--model", help="asr model file (default: the bundled model)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", help="also write the per-utterance results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    utterances = read_manifest(args.manifest)
    bundle = load_model(args.model)
    sphinx = pocketsphinx_decoder()
    rows: list[dict] = []
    seconds: dict[str, float] = defaultdict(float)
    audio_seconds = 0.0
    for utt in utterances:
        try:
            audio = load_audio(utt.audio)
        except AudioError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        audio_seconds += len(audio) / 16000
        began = time.perf_counter()
        ours = transcribe(audio, bundle, decoder="greedy").text  # the measure: best path
        seconds["asr"] += time.perf_counter() - began
        began = time.perf_counter()
        theirs = pocketsphinx_text(sphinx, audio)
        seconds["pocketsphinx"] += time.perf_counter() - began
        rows.append(
            {"audio": utt.audio, "subset": utt.subset, "ref": utt.text, "asr": ours, "pocketsphinx": theirs}
        )
    results: dict[str, dict[str, Scores]] = {}
    for system in ("asr", "pocketsphinx"):
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            groups[row["subset"]].append(row)
            groups["all"].append(row)
        results[system] = {k: score([r["ref"] for r in g], [r[system] for r in g]) for k, g in groups.items()}
    rtf = {s: seconds[s] / audio_seconds for s in results}
    print(f"{args.manifest}: {len(rows)} utterances, {audio_seconds / 60:.1f} min")
    print(table(results, rtf, args.markdown))
    if args.json:
        out = {"results": {s: {k: asdict(v) for k, v in r.items()} for s, r in results.items()}, "rtf": rtf}
        Path(args.json).write_text(json.dumps({**out, "utterances": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
