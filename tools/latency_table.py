#!/usr/bin/env python3
"""The latency/accuracy table of tools/compare_latency.sh: each trained variant's greedy
WER/CER on each manifest, its algorithmic latency, and (for streaming models) the
latency measured by streaming real/dev in 100 ms chunks.

    python tools/latency_table.py runs/latency-uni runs/latency-lc8+2 runs/latency-lc16+8 \
        runs/latency-bi --manifests ../shared/data/real/dev/manifest.jsonl data/synth/dev/manifest.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from asr.checkpoint import load_model
from asr.data import read_manifest
from asr.evaluate import evaluate_manifest


def algorithmic_latency(config) -> str:
    """Audio the model waits for beyond the 40 ms frame it emits (worst case, per frame)."""
    if not config.bidirectional:
        return "0 ms"
    if not config.chunk_frames:
        return "whole utterance"
    worst = (config.chunk_frames + config.lookahead_frames) * 40
    best = (config.lookahead_frames + 1) * 40
    return f"{best}-{worst} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (best.pt inside) or model files")
    parser.add_argument("--manifests", nargs="+", required=True)
    parser.add_argument("--stream-manifest", help="measure streaming latency here (default: the first)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run in args.runs:
        path = Path(run) / "best.pt" if Path(run).is_dir() else Path(run)
        bundle = load_model(path)
        config = bundle.model.config
        row = {
            "model": Path(run).name if Path(run).is_dir() else Path(run).stem,
            "config": config.to_dict(),
            "parameters": bundle.model.num_parameters(),
            "steps": bundle.metadata.get("steps"),
            "algorithmic_latency": algorithmic_latency(config),
        }
        for manifest in args.manifests:
            report = evaluate_manifest(read_manifest(manifest), bundle, decoder="greedy")
            row[manifest] = {"wer": report.overall.wer, "cer": report.overall.cer, "rtf": report.rtf}
        if config.streaming:
            manifest = args.stream_manifest or args.manifests[0]
            report = evaluate_manifest(read_manifest(manifest), bundle, decoder="greedy", stream_chunk=0.1)
            row["stream"] = {
                k: report.streams.get(k, float("nan"))
                for k in ("first_seen_median", "committed_median", "rtf")
            }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    names = [
        Path(m).parent.name if Path(m).name == "manifest.jsonl" else Path(m).stem for m in args.manifests
    ]
    sets = [f"{Path(m).parent.parent.name}/{n}" for m, n in zip(args.manifests, names, strict=True)]
    header = "| model | params | algorithmic latency | " + " | ".join(f"{s} WER / CER" for s in sets)
    print(header + " | word seen (median) | committed (median) |")
    print("|---" * (5 + len(sets)) + "|")
    for row in rows:
        cells = [f"{row[m]['wer']:.3f} / {row[m]['cer']:.3f}" for m in args.manifests]
        stream = row.get("stream")
        seen = f"{stream['first_seen_median']:.2f} s" if stream else "offline only"
        done = f"{stream['committed_median']:.2f} s" if stream else "offline only"
        print(
            f"| {row['model']} | {row['parameters'] / 1e6:.2f}M | {row['algorithmic_latency']} | "
            + " | ".join(cells)
            + f" | {seen} | {done} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
