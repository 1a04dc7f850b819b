"""Word n-gram language models for beam search: an ARPA reader and scorer.

The decoder asks one question of a language model: the log-probability of the next word
given the words before it. ``NgramLM`` answers it from an ARPA file (plain or gzipped)
with Katz-style backoff, in natural-log units, and also gives the decoder a prefix tree
of its vocabulary so that partial words can be scored before they end.
"""

from __future__ import annotations

import gzip
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
#: ARPA files store log10; the decoder works in natural log.
LN10 = math.log(10.0)
#: The log10 probability given to an unknown word when the ARPA file has no ``<unk>``.
DEFAULT_UNK_LOG10 = -7.0


class LanguageModelError(ValueError):
    """An ARPA file that cannot be read; the message names the file and the line."""


@dataclass
class PrefixNode:
    """A node of a word prefix tree: its children by character and the best unigram
    log-probability (natural log) of any word below it, for scoring partial words."""

    children: dict[str, PrefixNode] = field(default_factory=dict)
    best: float = -math.inf
    is_word: bool = False


def build_prefix_tree(words: dict[str, float]) -> PrefixNode:
    """A prefix tree over ``{word: logprob}``; each node keeps the best logprob below it."""
    root = PrefixNode()
    for word, logprob in words.items():
        node = root
        node.best = max(node.best, logprob)
        for ch in word:
            child = node.children.get(ch)
            if child is None:
                child = node.children[ch] = PrefixNode()
            node = child
            node.best = max(node.best, logprob)
        node.is_word = True
    return root


class NgramLM:
    """A backoff n-gram model read from ARPA text, scoring words in natural log.

    ``state`` is the tuple of the last ``order - 1`` words (``(BOS,)`` at the start).
    ``score(state, word)`` returns ``(logprob, next_state)``; words the model does not
    know get the ``<unk>`` probability.
    """

    def __init__(self, ngrams: list[dict[tuple[str, ...], tuple[float, float]]], path: str = "") -> None:
        if not ngrams or not ngrams[0]:
            raise LanguageModelError(f"{path or 'language model'}: no unigrams")
        self.path = path
        self.order = len(ngrams)
        # One dict for all orders: n-gram -> (log10 prob, log10 backoff).
        self._table: dict[tuple[str, ...], tuple[float, float]] = {}
        for table in ngrams:
            self._table.update(table)
        unk = self._table.get((UNK,))
        self.unk_log10 = unk[0] if unk is not None else DEFAULT_UNK_LOG10
        self.words = {w[0] for w in ngrams[0] if w[0] not in (BOS, EOS, UNK)}
        self._cache: dict[tuple[tuple[str, ...], str], tuple[float, tuple[str, ...]]] = {}
        self._tree: PrefixNode | None = None

    @classmethod
    def from_arpa(cls, path: str | os.PathLike[str]) -> NgramLM:
        """Read an ARPA file (``.arpa`` or ``.arpa.gz``)."""
        path = os.fspath(path)
        opener = gzip.open if path.endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
                return cls(_parse_arpa(f, path), path)
        except FileNotFoundError:
            raise LanguageModelError(f"{path}: no such language model file") from None
        except (OSError, UnicodeDecodeError, EOFError) as e:
            raise LanguageModelError(f"{path}: cannot read the language model ({e})") from None

    def begin(self) -> tuple[str, ...]:
        """The state at the start of an utterance."""
        return (BOS,)

    def log10_prob(self, context: tuple[str, ...], word: str) -> float:
        """log10 P(word | context) with backoff; ``context`` holds the preceding words."""
        if word not in self.words and word not in (EOS, BOS):
            word = UNK
        context = context[len(context) - self.order + 1 :] if self.order > 1 else ()
        penalty = 0.0
        while True:
            entry = self._table.get((*context, word))
            if entry is not None:
                return penalty + entry[0]
            if not context:
                return penalty + self.unk_log10
            backoff = self._table.get(context)
            if backoff is not None:
                penalty += backoff[1]
            context = context[1:]

    def score(self, state: tuple[str, ...], word: str) -> tuple[float, tuple[str, ...]]:
        """``(ln P(word | state), next state)``; ``EOS`` scores the end of the utterance."""
        key = (state, word)
        hit = self._cache.get(key)
        if hit is None:
            logprob = self.log10_prob(state, word) * LN10
            following = self._follow(state, word)
            hit = (logprob, following)
            if len(self._cache) > 500_000:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def prefix_tree(self) -> PrefixNode:
        """The prefix tree of the vocabulary, with unigram log-probs (natural log)."""
        if self._tree is None:
            self._tree = build_prefix_tree({w: self._table[(w,)][0] * LN10 for w in self.words})
        return self._tree

    def sentence_log10(self, words: Iterable[str]) -> float:
        """log10 P of a whole sentence, ``</s>`` included (as KenLM and SRILM report it)."""
        state, total = self.begin(), 0.0
        for word in [*words, EOS]:
            total += self.log10_prob(state, word)
            state = self._follow(state, word)
        return total

    def _follow(self, state: tuple[str, ...], word: str) -> tuple[str, ...]:
        """The state after ``word``: an unknown word enters the context as ``<unk>``, as in
        KenLM, so the next word pays ``<unk>``'s backoff instead of backing off for free."""
        if self.order == 1:
            return ()
        if word not in self.words and word not in (EOS, BOS):
            word = UNK
        return (*state, word)[-(self.order - 1) :]


def _parse_arpa(lines: Iterable[str], path: str) -> list[dict[tuple[str, ...], tuple[float, float]]]:
    counts: list[int] = []
    tables: list[dict[tuple[str, ...], tuple[float, float]]] = []
    section = -1  # -1 before \data\, 0 in \data\, n in \n-grams:
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if section > 0 and line[0] != "\\":  # an n-gram line: nearly every line, so first
            # Our text is lowercase: uppercase ARPA files (LibriSpeech's, <UNK> too) must match.
            parts = line.lower().split()
            try:
                ngram = tuple(parts[1 : 1 + section])
                tables[section - 1][ngram] = (
                    float(parts[0]),
                    float(parts[1 + section]) if len(parts) > 1 + section else 0.0,
                )
                if len(ngram) == section:
                    continue
            except (ValueError, IndexError):
                pass
            raise LanguageModelError(f"{path}:{number}: bad {section}-gram line {line!r}")
        if line == "\\data\\":
            section = 0
            continue
        if line == "\\end\\":
            break
        if line.startswith("\\") and line.endswith("-grams:"):
            try:
                section = int(line[1:].split("-", 1)[0])
            except ValueError:
                raise LanguageModelError(f"{path}:{number}: bad section header {line!r}") from None
            while len(tables) < section:
                tables.append({})
            continue
        if section == 0:
            if line.startswith("ngram ") and "=" in line:
                try:
                    counts.append(int(line.split("=", 1)[1]))
                except ValueError:
                    raise LanguageModelError(f"{path}:{number}: bad header line {line!r}") from None
            continue
        if section == -1:
            continue
        raise LanguageModelError(f"{path}:{number}: unexpected line {line!r}")
    if section == -1:
        raise LanguageModelError(f"{path}: not an ARPA file (no \\data\\ section)")
    if len(counts) != len(tables):
        raise LanguageModelError(
            f"{path}: the header lists {len(counts)} orders but the file has {len(tables)}"
        )
    for n, (expected, table) in enumerate(zip(counts, tables, strict=True), 1):
        if expected != len(table):
            raise LanguageModelError(
                f"{path}: the header promises {expected} {n}-grams but the file has {len(table)}"
            )
    return tables


def load_lm(path: str | os.PathLike[str]) -> NgramLM:
    """Read an ARPA language model; raises ``LanguageModelError`` with a one-line reason."""
    return NgramLM.from_arpa(path)


def read_lexicon(path: str | os.PathLike[str]) -> list[str]:
    """Words of a lexicon file: one word per line (the first field), normalised; blank
    lines and ``#`` comments are skipped."""
    from asr.text import normalize

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise LanguageModelError(f"{path}: no such lexicon file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LanguageModelError(f"{path}: cannot read the lexicon ({e})") from None
    words = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            words += normalize(line.split()[0]).split()
    if not words:
        raise LanguageModelError(f"{path}: the lexicon lists no words")
    return words
