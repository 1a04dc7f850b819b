"""Calibrate word confidence on dev data and store the calibration in the model file.

A raw confidence (the mean of a word's character posteriors) is not a probability of
being right. This tool decodes dev utterances, marks each hypothesis word right or wrong
through its jiwer alignment with the reference, and fits ``P(right) = sigmoid(a * mean
log posterior + b * min log posterior + c)``. It reports the expected calibration error
(ECE, 10 bins) and Brier score before and after, measured by two-fold cross-validation
over utterances (fit on one half, score the other), then fits on everything and, with
``--write``, stores ``(a, b, c)`` in the model file's metadata, where ``asr`` picks it up.

Each decoder gets its own calibration, fitted on its own output: ``--decoder greedy``
writes ``confidence`` (greedy decoding), ``--decoder beam`` writes ``confidence_beam``
(the beam search with the model's default settings: its bundled LM and tuned weights),
since the beam search's words are right more often for the same character posteriors.

    python tools/calibrate_confidence.py --manifest ../shared/data/real/dev/manifest.jsonl --write
    python tools/calibrate_confidence.py --manifest ../shared/data/real/dev/manifest.jsonl \
        --decoder beam --write
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence

import jiwer
import torch

from asr.checkpoint import atomic_save, default_model_path, is_checkpoint, load_model, safe_load, save_model
from asr.data import read_manifest
from asr.decoding import TokenSpan
from asr.streaming import CALIBRATION_KEYS, compute_logprobs, make_decoder
from asr.text import normalize

Features = list[tuple[float, float]]
#: Fewer words than this give a calibration worth little: a warning says so.
MIN_WORDS = 200


def word_features(tokens: Sequence[TokenSpan], space: int) -> Features:
    """(mean log posterior, min log posterior) of each word's characters."""
    out, current = [], []
    for t in [*tokens, None]:
        if t is None or t.token == space:
            if current:
                logs = [math.log(max(p, 1e-9)) for p in current]
                out.append((sum(logs) / len(logs), min(logs)))
            current = []
        else:
            current.append(t.prob)
    return out


def labels(ref: str, hyp: str) -> list[int]:
    """1 for each hypothesis word that the alignment marks equal to the reference, else 0."""
    words = hyp.split()
    if not words:
        return []
    if not ref:
        return [0] * len(words)
    right = [0] * len(words)
    for chunk in jiwer.process_words(ref, hyp).alignments[0]:
        if chunk.type == "equal":
            for i in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
                right[i] = 1
    return right


def fit(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Logistic regression ``sigmoid(x @ w[:2] + w[2])`` by L-BFGS on the log loss."""
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x[:, :2] @ w[:2] + w[2], y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return [round(float(v), 4) for v in w.detach()]


def predict(x: torch.Tensor, w: Sequence[float] | None) -> torch.Tensor:
    if w is None:  # the raw confidence: mean of the character posteriors
        return x[:, 2]
    return torch.sigmoid(x[:, 0] * w[0] + x[:, 1] * w[1] + w[2])


def ece(p: torch.Tensor, y: torch.Tensor, bins: int = 10) -> float:
    """Expected calibration error: mean |accuracy - confidence| over equal-width bins."""
    index = torch.clamp((p * bins).long(), max=bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += float(mask.sum()) * abs(float(y[mask].mean()) - float(p[mask].mean()))
    return total / max(1, len(p))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", action="append", required=True, help="dev manifest(s); repeatable")
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--decoder", choices=["greedy", "beam"], default="greedy")
    p.add_argument("--limit", type=int, default=0, help="utterances per manifest (0: all)")
    p.add_argument("--write", action="store_true", help="store the calibration in the model file")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    path = args.model or str(default_model_path())
    bundle = load_model(path)
    vocab = bundle.vocabulary
    key = CALIBRATION_KEYS[args.decoder]
    # Fit on raw confidences: the decoder the app would get, minus any stored calibration.
    plain = dataclasses.replace(
        bundle, metadata={k: v for k, v in bundle.metadata.items() if k not in CALIBRATION_KEYS.values()}
    )
    decoder = make_decoder(plain, args.decoder)
    groups: list[tuple[list[list[float]], list[int]]] = []
    for manifest in args.manifest:
        for utt in read_manifest(manifest)[: args.limit or None]:
            hyp = decoder.decode(compute_logprobs(utt.audio, bundle))
            feats = word_features(hyp.tokens, vocab.space)
            raw = [w.confidence for w in hyp.words]
            groups.append(
                (
                    [[a, b, r] for (a, b), r in zip(feats, raw, strict=True)],
                    labels(normalize(utt.text), hyp.text),
                )
            )

    if not any(ys for _, ys in groups):
        print("error: the model said no words on these manifests: nothing to calibrate", file=sys.stderr)
        return 1

    def stack(part: list) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [f for feats, _ in part for f in feats]
        ys = [y for _, ys in part for y in ys]
        return torch.tensor(rows, dtype=torch.float64).reshape(-1, 3), torch.tensor(ys, dtype=torch.float64)

    folds = [groups[0::2], groups[1::2]]
    held_p, held_y, raw_p = [], [], []
    for k in range(2):
        x_fit, y_fit = stack(folds[k])
        x_out, y_out = stack(folds[1 - k])
        held_p.append(predict(x_out, fit(x_fit, y_fit)))
        raw_p.append(predict(x_out, None))
        held_y.append(y_out)
    y_all = torch.cat(held_y)
    calibrated, raw = torch.cat(held_p), torch.cat(raw_p)
    x, y = stack(groups)
    weights = fit(x, y)
    report = {
        "words": len(y),
        "accuracy": round(float(y.mean()), 4),
        "raw": {"ece": round(ece(raw, y_all), 4), "brier": round(float(((raw - y_all) ** 2).mean()), 4)},
        "calibrated": {
            "ece": round(ece(calibrated, y_all), 4),
            "brier": round(float(((calibrated - y_all) ** 2).mean()), 4),
        },
        "calibration": weights,
    }
    print(f"{report['words']} words, {report['accuracy']:.1%} right")
    print(f"raw mean posterior: ECE {report['raw']['ece']:.4f}, Brier {report['raw']['brier']:.4f}")
    print(
        f"calibrated (2-fold): ECE {report['calibrated']['ece']:.4f}, Brier {report['calibrated']['brier']:.4f}"
    )
    print(f"calibration (a, b, c) = {tuple(weights)}")
    if args.json:  # the figures, whether or not they are written into the model
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if len(y) < MIN_WORDS:
        print(
            f"warning: {len(y)} words are few for a calibration (aim for {MIN_WORDS} or more)",
            file=sys.stderr,
        )
    if args.write:
        if float(y.min()) == float(y.max()):
            print(
                f"error: every word was {'right' if float(y[0]) else 'wrong'}, which says nothing about "
                f"confidence; {path} is left as it was",
                file=sys.stderr,
            )
            return 1
        stored = safe_load(path)
        if is_checkpoint(stored):
            # A training checkpoint keeps its optimizer, step and settings: only the model's
            # metadata changes, so the run still resumes.
            stored["model"].setdefault("metadata", {})[key] = weights
            atomic_save(stored, path)
        else:
            bundle.metadata[key] = weights
            # Keep the file's precision: the shipped model stores float16 weights.
            half = any(v.dtype == torch.float16 for v in stored["state_dict"].values())
            save_model(bundle, path, half=half)
        print(f"wrote the {args.decoder} calibration into {path} (metadata {key!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
