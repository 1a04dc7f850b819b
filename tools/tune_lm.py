"""Tune the LM weight (alpha) and word bonus (beta) of the beam search on dev data.

The model runs once; every (alpha, beta) pair then decodes the same log-probs. It prints
the WER of greedy decoding, of beam search without the LM and of each pair, and the best
pair, each with its decoding speed (log-prob frames per second, one thread). ``--lexicon``
tunes for a closed vocabulary; ``--token-prune``/``--beam-prune`` set the search's
pruning widths. Tune on dev sets only, never on test.

    python tools/tune_lm.py --manifest ../shared/data/real/dev/manifest.jsonl \
        --lm asr/models/default.arpa.gz --alphas 0.3 0.5 0.8 1.2 --betas 0 1 2 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import jiwer
import torch

from asr.checkpoint import default_lm_path, load_model
from asr.data import read_manifest
from asr.decoding import (
    DEFAULT_BEAM_PRUNE,
    DEFAULT_BEAM_SIZE,
    DEFAULT_TOKEN_PRUNE,
    LEXICON_BEAM_PRUNE,
    LEXICON_TOKEN_PRUNE,
    BeamSearchDecoder,
    GreedyDecoder,
)
from asr.lm import load_lm, read_lexicon
from asr.streaming import compute_logprobs
from asr.text import normalize


def wer(decoder, logprobs: Sequence[torch.Tensor], refs: Sequence[str]) -> float:
    return wer_speed(decoder, logprobs, refs)[0]


def wer_speed(decoder, logprobs: Sequence[torch.Tensor], refs: Sequence[str]) -> tuple[float, float]:
    """WER over ``refs`` and decoded frames per second, for ``(frames, vocab)`` log-probs."""
    start = time.perf_counter()
    hyps = [decoder.decode(lp).text for lp in logprobs]
    speed = sum(lp.shape[0] for lp in logprobs) / max(time.perf_counter() - start, 1e-9)
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]), speed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", action="append", required=True, help="dev manifest(s); repeatable")
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--lm", help="ARPA file (default: the bundled LM)")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.3, 0.5, 0.8, 1.2])
    p.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    p.add_argument("--beam-size", type=int, default=DEFAULT_BEAM_SIZE)
    p.add_argument("--limit", type=int, default=0, help="utterances per manifest (0: all)")
    p.add_argument("--lexicon", help="word list (one word per line): tune for a closed vocabulary")
    p.add_argument(
        "--token-prune",
        type=float,
        help=f"default {DEFAULT_TOKEN_PRUNE}, {LEXICON_TOKEN_PRUNE} with --lexicon",
    )
    p.add_argument(
        "--beam-prune", type=float, help=f"default {DEFAULT_BEAM_PRUNE}, {LEXICON_BEAM_PRUNE} with --lexicon"
    )
    p.add_argument("--json", help="also write the grid to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    bundle = load_model(args.model)
    lm = load_lm(args.lm or default_lm_path())
    vocab, seconds = bundle.vocabulary, bundle.frame_seconds
    logprobs, refs = [], []
    for manifest in args.manifest:
        for utt in read_manifest(manifest)[: args.limit or None]:
            logprobs.append(compute_logprobs(utt.audio, bundle))
            refs.append(normalize(utt.text))
    print(f"{len(refs)} utterances from {', '.join(args.manifest)}; LM {lm.path} ({len(lm.words)} words)")

    search = {"lexicon": read_lexicon(args.lexicon) if args.lexicon else None}
    if args.token_prune is not None:
        search["token_prune"] = args.token_prune
    if args.beam_prune is not None:
        search["beam_prune"] = args.beam_prune
    plain = BeamSearchDecoder(vocab, seconds, args.beam_size, **search)
    report = {
        "greedy": wer(GreedyDecoder(vocab, seconds), logprobs, refs),
        "beam": wer(plain, logprobs, refs),
        "search": {"lexicon": args.lexicon, "token_prune": plain.token_prune, "beam_prune": plain.beam_prune},
        "grid": [],
    }
    print(f"greedy WER {report['greedy']:.4f}; beam {args.beam_size} without LM {report['beam']:.4f}")
    print(f"{'alpha':>6} {'beta':>5} {'WER':>7} {'frames/s':>9}")
    for alpha in args.alphas:
        for beta in args.betas:
            decoder = BeamSearchDecoder(
                vocab, seconds, args.beam_size, lm=lm, lm_weight=alpha, word_bonus=beta, **search
            )
            value, speed = wer_speed(decoder, logprobs, refs)
            report["grid"].append({"alpha": alpha, "beta": beta, "wer": value, "frames_per_second": speed})
            print(f"{alpha:>6.2f} {beta:>5.2f} {value:>7.4f} {speed:>9.0f}", flush=True)
    best = min(report["grid"], key=lambda row: row["wer"])
    report["best"] = best
    print(f"best: alpha {best['alpha']} beta {best['beta']} WER {best['wer']:.4f}")
    print(
        f"use them with --lm-weight {best['alpha']} --word-bonus {best['beta']} (asr transcribe, eval, "
        "listen, serve) or DecoderOptions(lm_weight=..., word_bonus=...)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
