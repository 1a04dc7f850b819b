"""Decoder speed and accuracy on the same log-probs: ours against torchaudio and pyctcdecode.

The model runs once over the utterances; every decoder then decodes the same log-probs,
at each beam size, without and with the word LM. It prints frames per second, WER, and
our throughput as a ratio of each peer's (above 1: ours is faster).

    python tools/bench_decoders.py --manifest ../shared/data/real/dev/manifest.jsonl \
        --limit 100 --lm asr/models/default.arpa.gz --beam-sizes 8 16 64

Pairs compared like for like:
- no LM: ours, torchaudio's lexicon-free ``ctc_decoder``, pyctcdecode;
- LM, open vocabulary: ours and pyctcdecode (KenLM, same ARPA file, same alpha/beta);
- LM + lexicon (output restricted to the LM's words): ours with ``lexicon`` and
  torchaudio's lexicon decoder (flashlight, KenLM), which needs a lexicon to use a word LM.
Each decoder keeps its own pruning defaults; beam size, LM, alpha and beta are shared.
Peers that are not installed are reported as missing (pip install pyctcdecode kenlm
flashlight-text).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import jiwer
import torch

from asr.checkpoint import default_lm_path, load_model
from asr.data import read_manifest
from asr.decoding import DEFAULT_LM_WEIGHT, DEFAULT_WORD_BONUS, BeamSearchDecoder
from asr.lm import load_lm
from asr.streaming import compute_logprobs
from asr.text import Vocabulary, normalize

Decode = Callable[[torch.Tensor], str]


def ours(vocabulary: Vocabulary, beam: int, lm, alpha: float, beta: float, lexicon: bool) -> Decode:
    decoder = BeamSearchDecoder(
        vocabulary,
        beam_size=beam,
        lm=lm,
        lm_weight=alpha,
        word_bonus=beta,
        lexicon=sorted(lm.words) if lexicon and lm is not None else None,
    )
    return lambda lp: decoder.decode(lp).text


def torchaudio_decoder(
    vocabulary: Vocabulary, beam: int, arpa: str | None, lexicon_path: str | None, alpha: float, beta: float
) -> Decode:
    from torchaudio.models.decoder import ctc_decoder

    tokens = ["-", "|", *vocabulary.tokens[2:]]
    decoder = ctc_decoder(
        lexicon=lexicon_path,
        tokens=tokens,
        lm=arpa,
        beam_size=beam,
        # flashlight's KenLM scores are log10; our alpha weighs natural logs.
        lm_weight=alpha * math.log(10) if arpa else 0.0,
        word_score=beta if arpa else 0.0,
        log_add=True,
    )

    def decode(lp: torch.Tensor) -> str:
        hyp = decoder(lp.unsqueeze(0).float().contiguous())[0][0]
        if lexicon_path:
            return " ".join(hyp.words)
        text = "".join(tokens[i] for i in hyp.tokens.tolist() if i != 0)
        return " ".join(text.replace("|", " ").split())

    return decode


def pyctcdecode_decoder(vocabulary: Vocabulary, beam: int, arpa: str | None, words, alpha, beta) -> Decode:
    import pyctcdecode

    labels = ["", " ", *vocabulary.tokens[2:]]
    decoder = pyctcdecode.build_ctcdecoder(
        labels, kenlm_model_path=arpa, unigrams=sorted(words) if arpa else None, alpha=alpha, beta=beta
    )
    return lambda lp: " ".join(decoder.decode(lp.numpy(), beam_width=beam).split())


def run(decode: Decode, logprobs: Sequence[torch.Tensor], refs: Sequence[str]) -> tuple[float, float]:
    """(frames per second, WER) of one decoder over every utterance."""
    began = time.perf_counter()
    hyps = [decode(lp) for lp in logprobs]
    seconds = time.perf_counter() - began
    frames = sum(lp.shape[0] for lp in logprobs)
    pairs = [(r, normalize(h)) for r, h in zip(refs, hyps, strict=True) if r]
    return frames / seconds, jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", default="../shared/data/real/dev/manifest.jsonl")
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--limit", type=int, default=100, help="utterances, evenly spaced (0: all)")
    p.add_argument("--lm", help="ARPA file (default: the bundled LM); 'none' skips the LM rows")
    p.add_argument("--alpha", type=float, default=DEFAULT_LM_WEIGHT)
    p.add_argument("--beta", type=float, default=DEFAULT_WORD_BONUS)
    p.add_argument("--beam-sizes", type=int, nargs="+", default=[8, 16, 64])
    p.add_argument("--threads", type=int, default=1, help="torch threads (decoders are single-threaded)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    bundle = load_model(args.model)
    utterances = read_manifest(args.manifest)
    if args.limit and len(utterances) > args.limit:  # evenly spaced, so every subset is in
        utterances = utterances[:: len(utterances) // args.limit][: args.limit]
    logprobs = [compute_logprobs(u.audio, bundle) for u in utterances]
    refs = [normalize(u.text) for u in utterances]
    frames = sum(lp.shape[0] for lp in logprobs)
    print(f"{len(utterances)} utterances, {frames} frames of log-probs from {args.manifest}")

    arpa_arg = args.lm or (str(default_lm_path()) if default_lm_path().exists() else "none")
    lm = None if arpa_arg == "none" else load_lm(arpa_arg)
    workdir = tempfile.mkdtemp(prefix="bench_decoders_")
    arpa = lexicon_path = None
    if lm is not None:
        # KenLM and flashlight read plain ARPA text; flashlight also wants a spelled lexicon.
        arpa = os.path.join(workdir, "lm.arpa")
        opener = gzip.open if arpa_arg.endswith(".gz") else open
        with opener(arpa_arg, "rb") as src, open(arpa, "wb") as dst:  # type: ignore[operator]
            shutil.copyfileobj(src, dst)
        lexicon_path = os.path.join(workdir, "lexicon.txt")
        with open(lexicon_path, "w") as f:
            for word in sorted(lm.words):
                f.write(f"{word} {' '.join(word)} |\n")
        print(f"LM {arpa_arg}: {len(lm.words)} words; alpha {args.alpha}, beta {args.beta}")

    vocab = bundle.vocabulary
    words = sorted(lm.words) if lm is not None else []

    def build(name: str, beam: int, setting: str) -> Decode:
        with_lm = setting != "none"
        if name == "asr":
            return ours(vocab, beam, lm if with_lm else None, args.alpha, args.beta, setting == "lm+lexicon")
        if name == "torchaudio":
            lexicon = lexicon_path if with_lm else None
            return torchaudio_decoder(vocab, beam, arpa if with_lm else None, lexicon, args.alpha, args.beta)
        return pyctcdecode_decoder(vocab, beam, arpa if with_lm else None, words, args.alpha, args.beta)

    rows = []
    peers = {"none": ["torchaudio", "pyctcdecode"], "lm": ["pyctcdecode"], "lm+lexicon": ["torchaudio"]}
    for beam in args.beam_sizes:
        for setting in ["none", "lm", "lm+lexicon"] if lm is not None else ["none"]:
            measured = {}
            for name in ["asr", *peers[setting]]:
                try:
                    decode = build(name, beam, setting)
                except ImportError as e:
                    print(f"  {name}: not installed ({e.name})", file=sys.stderr)
                    continue
                measured[name] = run(decode, logprobs, refs)
            mine = measured["asr"][0]
            for name, (fps, wer) in measured.items():
                rows.append(
                    {
                        "beam": beam,
                        "lm": setting,
                        "decoder": name,
                        "fps": fps,
                        "wer": wer,
                        "ours_over_peer": mine / fps,
                    }
                )
    shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\n{'beam':>4}  {'LM':<10}  {'decoder':<11}  {'frames/s':>9}  {'WER':>6}  {'asr speed / peer':>16}"
    )
    for r in rows:
        ratio = "" if r["decoder"] == "asr" else f"{r['ours_over_peer']:.2f}x"
        print(
            f"{r['beam']:>4}  {r['lm']:<10}  {r['decoder']:<11}  {r['fps']:>9.0f}  {r['wer']:>6.3f}  {ratio:>16}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
