"""Build a word n-gram language model (ARPA) with interpolated modified Kneser-Ney.

Offline and dependency-free. The input is text, one sentence per line, normalised with
``asr``'s normaliser; ``--debian`` adds the same Debian text the synthetic corpus reads
(fortunes, the King James Bible, WordNet glosses) without its held-out dev sentences,
and ``--manifest`` adds the transcripts of training manifests.

    python tools/build_lm.py --debian --manifest ../shared/data/real/train/manifest.jsonl \
        --order 3 --prune 1 2 --out asr/models/default.arpa.gz

Smoothing (Chen and Goodman 1998, as KenLM's lmplz does it): the highest order uses raw
counts and lower orders use continuation counts (how many distinct words precede an
n-gram; n-grams starting with <s> keep raw counts); three discounts per order come from
the counts of counts; each order interpolates with the next lower one, and unigrams with
the uniform distribution, which gives <unk> its probability. Pruning drops n-grams of
order 2 and up seen fewer times than a threshold and recomputes each context's backoff
weight so that every conditional distribution still sums to one.
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from asr.lm import BOS, EOS, UNK, NgramLM
from asr.text import normalize

Ngram = tuple[str, ...]
#: Used when the counts of counts cannot give discounts (very small corpora).
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from the counts of one order."""
    t = Counter(min(c, 4) for c in counts)
    t1, t2, t3, t4 = (t.get(k, 0) for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) == 0:
        return FALLBACK_DISCOUNTS
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    if not all(0 < dk < k for k, dk in enumerate(d, 1)):
        return FALLBACK_DISCOUNTS
    return d


def estimate(
    sentences: Iterable[Sequence[str]], order: int = 3, vocab_size: int = 0, prune: Sequence[int] = ()
) -> list[dict[Ngram, tuple[float, float]]]:
    """Estimate the model: a list (one per order) of ``{ngram: (log10 prob, log10 backoff)}``.

    ``vocab_size`` > 0 keeps the most frequent words and maps the rest to <unk>.
    ``prune[i]`` is the smallest raw count kept for order ``i + 2``.
    """
    if order < 1:
        raise ValueError("order must be at least 1")
    sentences = [list(s) for s in sentences if s]
    if not sentences:
        raise ValueError("no text to build a language model from")
    words = Counter(w for s in sentences for w in s)
    if vocab_size and len(words) > vocab_size:
        keep = {w for w, _ in words.most_common(vocab_size)}
        sentences = [[w if w in keep else UNK for w in s] for s in sentences]

    raw: list[Counter[Ngram]] = [Counter() for _ in range(order)]
    for s in sentences:
        padded = [BOS, *s, EOS]
        for n in range(1, order + 1):
            table = raw[n - 1]
            for i in range(len(padded) - n + 1):
                table[tuple(padded[i : i + n])] += 1
    del raw[0][(BOS,)]

    # Adjusted counts: raw at the highest order and for n-grams starting with <s>,
    # continuation counts (distinct left neighbours) otherwise.
    adjusted: list[dict[Ngram, int]] = [dict() for _ in range(order)]
    adjusted[order - 1] = dict(raw[order - 1])
    for n in range(order - 1, 0, -1):
        left = Counter(g[1:] for g in raw[n])
        adjusted[n - 1] = {g: (c if g[0] == BOS else left.get(g, 0)) for g, c in raw[n - 1].items()}
        for g, c in adjusted[n - 1].items():
            if c == 0:  # only reachable at the start of a sentence: keep its raw count
                adjusted[n - 1][g] = raw[n - 1][g]
    adjusted[0].setdefault((UNK,), 0)
    adjusted[0].setdefault((EOS,), raw[0].get((EOS,), 0))

    # Interpolated probabilities, lowest order first.
    vocab = [g for g in adjusted[0]]
    prob: list[dict[Ngram, float]] = [dict() for _ in range(order)]
    for n in range(1, order + 1):
        table = adjusted[n - 1]
        d = discounts(c for c in table.values() if c > 0)
        totals: dict[Ngram, float] = defaultdict(float)
        kinds: dict[Ngram, list[int]] = defaultdict(lambda: [0, 0, 0])
        for g, c in table.items():
            totals[g[:-1]] += c
            if c > 0:
                kinds[g[:-1]][min(c, 3) - 1] += 1
        for g, c in table.items():
            h = g[:-1]
            total = totals[h]
            k = kinds[h]
            gamma = (d[0] * k[0] + d[1] * k[1] + d[2] * k[2]) / total
            lower = 1.0 / len(vocab) if n == 1 else prob[n - 2][g[1:]]
            own = (c - d[min(c, 3) - 1]) / total if c > 0 else 0.0
            prob[n - 1][g] = own + gamma * lower

    # Prune, then give every context the backoff weight that makes it sum to one.
    kept: list[set[Ngram]] = [set(prob[0]) | {(BOS,)}]
    for n in range(2, order + 1):
        floor = prune[n - 2] if len(prune) >= n - 1 else 1
        kept.append({g for g in prob[n - 1] if raw[n - 1][g] >= floor and g[:-1] in kept[n - 2]})
    backoff: list[dict[Ngram, float]] = [dict() for _ in range(order)]

    def model_prob(g: Ngram) -> float:
        """P(g[-1] | g[:-1]) in the pruned model, backing off through stored weights."""
        weight = 1.0
        while g not in kept[len(g) - 1]:
            weight *= backoff[len(g) - 2].get(g[:-1], 1.0)
            g = g[1:]
        return weight * prob[len(g) - 1][g]

    for n in range(2, order + 1):
        seen: dict[Ngram, float] = defaultdict(float)
        seen_lower: dict[Ngram, float] = defaultdict(float)
        for g in kept[n - 1]:
            seen[g[:-1]] += prob[n - 1][g]
            seen_lower[g[:-1]] += model_prob(g[1:])
        for h in seen:
            backoff[n - 2][h] = max(1e-12, 1.0 - seen[h]) / max(1e-12, 1.0 - seen_lower[h])

    out: list[dict[Ngram, tuple[float, float]]] = []
    for n in range(1, order + 1):
        table = {}
        for g in sorted(kept[n - 1] - {(BOS,)}):
            p = prob[n - 1][g]
            bow = backoff[n - 1].get(g, 1.0) if n < order else 1.0
            table[g] = (math.log10(p) if p > 0 else -99.0, math.log10(bow))
        out.append(table)
    out[0][(BOS,)] = (-99.0, math.log10(backoff[0].get((BOS,), 1.0)) if order > 1 else 0.0)
    return out


def write_arpa(model: list[dict[Ngram, tuple[float, float]]], path: str) -> None:
    """Write the model as ARPA text; ``.gz`` compresses it."""
    opener = gzip.open if path.endswith(".gz") else open
    tmp = path + ".tmp"
    with opener(tmp, "wt", encoding="utf-8") as f:  # type: ignore[operator]
        f.write("\\data\\\n")
        for n, table in enumerate(model, 1):
            f.write(f"ngram {n}={len(table)}\n")
        for n, table in enumerate(model, 1):
            f.write(f"\n\\{n}-grams:\n")
            for g, (logprob, bow) in sorted(table.items()):
                line = f"{logprob:.6f}\t{' '.join(g)}"
                if n < len(model) and abs(bow) > 1e-9:
                    line += f"\t{bow:.6f}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")
    os.replace(tmp, path)


def read_sentences(paths: Sequence[str], debian: bool, manifests: Sequence[str]) -> list[list[str]]:
    sentences: list[list[str]] = []
    for path in paths:
        latin = 0
        with open(path, "rb") as f:
            for raw in f:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    # Latin-1 decodes any bytes; most non-UTF-8 text is Latin-1 or cp1252.
                    line, latin = raw.decode("latin-1"), latin + 1
                sentences.append(normalize(line).split())
        if latin:
            print(f"warning: {path}: {latin} lines are not UTF-8 text; read them as Latin-1", file=sys.stderr)
    if debian:
        from synth_corpus import load_text  # tools/ is on the path when run as a script

        text, _ = load_text("train", max_words=60)
        sentences += [s.split() for s in text]
    for manifest in manifests:
        from asr.data import read_manifest

        sentences += [normalize(u.text).split() for u in read_manifest(manifest)]
    return [s for s in sentences if s]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("text", nargs="*", help="text files, one sentence per line")
    p.add_argument("--debian", action="store_true", help="add the synthetic corpus's training text")
    p.add_argument("--manifest", action="append", default=[], help="add a manifest's transcripts")
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--vocab-size", type=int, default=0, help="keep the N most frequent words (0: all)")
    p.add_argument(
        "--prune", type=int, nargs="*", default=[], help="smallest count kept for orders 2, 3, ..."
    )
    p.add_argument("--out", required=True, help="ARPA file to write (.gz to compress)")
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        sentences = read_sentences(args.text, args.debian, args.manifest)
        model = estimate(sentences, args.order, args.vocab_size, args.prune)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_arpa(model, args.out)
    lm = NgramLM.from_arpa(args.out)
    sizes = ", ".join(f"{len(t)} {n}-grams" for n, t in enumerate(model, 1))
    words = sum(len(s) for s in sentences)
    print(f"{args.out}: {sizes}; {len(sentences)} sentences, {words} words; vocabulary {len(lm.words)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
