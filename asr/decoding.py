"""CTC decoders that run incrementally on log-probs from any CTC model.

Every decoder has ``start() -> state``, ``step(logprobs, state) -> state`` and
``finish(state) -> Hypothesis``; the caller owns the state. Decoding log-probs in pieces
gives the same hypothesis as decoding them whole.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from asr.lm import EOS, LN10, NgramLM, PrefixNode, build_prefix_tree
from asr.text import SPACE, Vocabulary, normalize

#: The beam search's tunable defaults (asr/tuning.py), also reachable as asr.decoding.NAME.
from asr.tuning import (
    COMMIT_MARGIN,
    DEFAULT_BEAM_PRUNE,
    DEFAULT_BEAM_SIZE,
    DEFAULT_HOTWORD_BOOST,
    DEFAULT_LM_WEIGHT,
    DEFAULT_NBEST,
    DEFAULT_TOKEN_PRUNE,
    DEFAULT_WORD_BONUS,
    GROUPED_CACHE,
    LEXICON_BEAM_PRUNE,
    LEXICON_TOKEN_PRUNE,
    LM_SLACK,
    MAX_HOTWORD_BOOST,
)


@dataclass(frozen=True)
class Word:
    """A recognised word with its start and end in seconds and a confidence in [0, 1]."""

    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class TokenSpan:
    """One emitted character: its id, the output frames it spans and its best posterior."""

    token: int
    first_frame: int
    last_frame: int
    prob: float


@dataclass(frozen=True)
class Hypothesis:
    """A decoded transcript with its characters, its words and its log score."""

    text: str
    tokens: tuple[TokenSpan, ...]
    words: tuple[Word, ...]
    score: float


def word_confidence(probs: Sequence[float], calibration: Sequence[float] | None = None) -> float:
    """A word's confidence from its characters' best frame posteriors.

    Without ``calibration`` it is their mean. With ``(a, b, c)`` it is the calibrated
    probability that the word is right, ``sigmoid(a * mean log posterior + b * min log
    posterior + c)``, fitted on dev data by tools/calibrate_confidence.py.
    """
    if not probs:
        return 0.0
    if calibration is None:
        return sum(probs) / len(probs)
    logs = [math.log(max(p, 1e-9)) for p in probs]
    a, b, c = calibration
    z = a * sum(logs) / len(logs) + b * min(logs) + c
    return 1.0 / (1.0 + math.exp(-z)) if z > -50 else 0.0


def words_from_tokens(
    tokens: Sequence[TokenSpan],
    vocabulary: Vocabulary,
    frame_seconds: float,
    offset: float = 0.0,
    calibration: Sequence[float] | None = None,
) -> tuple[Word, ...]:
    """Group character spans into words at the space token; times come from CTC frames.

    A word starts at its first character's first frame and ends after its last
    character's last frame; its confidence comes from its characters' posteriors
    (``word_confidence``).
    """
    builder = _WordBuilder(vocabulary, frame_seconds, offset, calibration)
    return builder.finish(_EMPTY, tokens)[1]


@dataclass(frozen=True)
class _Grouped:
    """Characters grouped so far: the spans kept (leading and doubled spaces dropped), the
    words a space has closed, and the characters of the word still open."""

    tokens: tuple[TokenSpan, ...] = ()
    words: tuple[Word, ...] = ()
    open: tuple[TokenSpan, ...] = ()


_EMPTY = _Grouped()


class _WordBuilder:
    """Builds words from character spans incrementally.

    A live stream asks for its hypothesis after every chunk. Spans that can no longer
    change are grouped once (``advance``) and the result kept by the decoder's state; only
    the spans after them are grouped again for each answer (``finish``).
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        frame_seconds: float,
        offset: float,
        calibration: Sequence[float] | None,
    ) -> None:
        self.vocabulary = vocabulary
        self.space = vocabulary.space
        self.frame_seconds = frame_seconds
        self.offset = offset
        self.calibration = calibration
        #: What the words depend on besides the spans: a state's grouped words are reused
        #: only by a builder with the same key.
        self.key = (offset, frame_seconds, tuple(calibration or ()), vocabulary.tokens)

    def word(self, spans: Sequence[TokenSpan]) -> Word:
        """One word from its characters' spans."""
        return Word(
            word=self.vocabulary.decode(t.token for t in spans),
            start=round(self.offset + spans[0].first_frame * self.frame_seconds, 3),
            end=round(self.offset + (spans[-1].last_frame + 1) * self.frame_seconds, 3),
            confidence=round(word_confidence([t.prob for t in spans], self.calibration), 4),
        )

    def advance(self, done: _Grouped, spans: Iterable[TokenSpan]) -> _Grouped:
        """``done`` with ``spans`` appended: spaces close words; leading and doubled
        spaces are dropped, as they carry no words."""
        tokens, words, current = list(done.tokens), list(done.words), list(done.open)
        space = self.space
        for t in spans:
            if t.token == space:
                if not tokens or tokens[-1].token == space:
                    continue
                if current:
                    words.append(self.word(current))
                    current = []
            else:
                current.append(t)
            tokens.append(t)
        return _Grouped(tuple(tokens), tuple(words), tuple(current))

    def finish(
        self, done: _Grouped, tail: Iterable[TokenSpan]
    ) -> tuple[tuple[TokenSpan, ...], tuple[Word, ...]]:
        """The spans (no trailing space) and words of ``done`` followed by ``tail``, the
        open word closed."""
        grouped = self.advance(done, tail)
        tokens, words = grouped.tokens, grouped.words
        if tokens and tokens[-1].token == self.space:
            tokens = tokens[:-1]
        if grouped.open:
            words = (*words, self.word(grouped.open))
        return tokens, words


@dataclass
class GreedyState:
    """Where greedy decoding stands: frames seen, the last best id, the spans so far."""

    frames: int = 0
    last: int = 0
    score: float = 0.0
    tokens: list[TokenSpan] = field(default_factory=list)
    #: ``tokens[:grouped_upto]`` grouped into words by the builder that ``grouped_key``
    #: names (``hypothesis`` keeps them; every span but the last is final), and the last
    #: span grouped, to notice a state that was changed by hand.
    grouped: _Grouped = field(default=_EMPTY, repr=False, compare=False)
    grouped_upto: int = field(default=0, repr=False, compare=False)
    grouped_key: tuple = field(default=(), repr=False, compare=False)
    grouped_last: TokenSpan | None = field(default=None, repr=False, compare=False)


class GreedyDecoder:
    """Best path decoding: the most likely id per frame, repeats merged, blanks dropped."""

    def __init__(
        self, vocabulary: Vocabulary, frame_seconds: float = 0.04, confidence: Sequence[float] | None = None
    ) -> None:
        _check_space(vocabulary)
        self.vocabulary = vocabulary
        self.frame_seconds = frame_seconds
        self.confidence = confidence

    def start(self) -> GreedyState:
        return GreedyState()

    def step(self, logprobs: Tensor, state: GreedyState) -> GreedyState:
        """Consume ``(frames, vocab)`` log-probs (a tensor or a numpy array) of one stream;
        returns the updated state. Raises ValueError for anything but log-probabilities of
        that shape (``as_logprobs``)."""
        logprobs = as_logprobs(logprobs, self.vocabulary)
        best, ids = logprobs.max(dim=-1)
        state.score += float(best.sum())
        probs = best.exp().tolist()
        blank = self.vocabulary.blank
        for i, (token, prob) in enumerate(zip(ids.tolist(), probs, strict=False)):
            frame = state.frames + i
            if token != blank:
                if token == state.last:  # the same character held over several frames
                    prev = state.tokens[-1]
                    state.tokens[-1] = TokenSpan(token, prev.first_frame, frame, max(prev.prob, prob))
                else:
                    state.tokens.append(TokenSpan(token, frame, frame, prob))
            state.last = token
        state.frames += logprobs.shape[0]
        return state

    def hypothesis(self, state: GreedyState, offset: float = 0.0) -> Hypothesis:
        """The hypothesis so far, without ending the stream; word times start at ``offset``.

        The spans grouped by an earlier call (every one but the last is final) are not
        grouped again, so a live stream's partial results stay cheap as it grows.
        """
        builder = _WordBuilder(self.vocabulary, self.frame_seconds, offset, self.confidence)
        upto = state.grouped_upto
        if (
            state.grouped_key != builder.key
            or upto > len(state.tokens)
            or (upto and state.tokens[upto - 1] is not state.grouped_last)
        ):
            state.grouped, state.grouped_upto, state.grouped_key = _EMPTY, 0, builder.key
        # Only the last span may still grow (a character held over more frames).
        final = len(state.tokens) - 1
        if final > state.grouped_upto:
            state.grouped = builder.advance(state.grouped, state.tokens[state.grouped_upto : final])
            state.grouped_upto = final
            state.grouped_last = state.tokens[final - 1]
        tokens, words = builder.finish(state.grouped, state.tokens[state.grouped_upto :])
        text = " ".join(w.word for w in words)
        return Hypothesis(text, tokens, words, state.score)

    def finish(self, state: GreedyState, offset: float = 0.0) -> Hypothesis:
        """End the stream and return its hypothesis; word times start at ``offset``."""
        return self.hypothesis(state, offset)

    def settled_words(self, state: GreedyState) -> int:
        """How many leading words of ``hypothesis(state)`` can no longer change.

        Greedy decoding never revises an emitted character, so every word followed by a
        space is settled; only the last word may still grow.
        """
        words = len(self.hypothesis(state, state.grouped_key[0] if state.grouped_key else 0.0).words)
        ends_with_space = bool(state.tokens) and state.tokens[-1].token == self.vocabulary.space
        return words if ends_with_space else max(0, words - 1)

    def decode(self, logprobs: Tensor) -> Hypothesis:
        """Decode the ``(frames, vocab)`` log-probs of one whole utterance."""
        return self.finish(self.step(logprobs, self.start()))


def _check_shape(logprobs: Tensor, vocabulary: Vocabulary) -> None:
    if logprobs.dim() != 2 or logprobs.shape[1] != len(vocabulary):
        raise ValueError(f"logprobs must be (frames, {len(vocabulary)}), got {tuple(logprobs.shape)}")


def _check_space(vocabulary: Vocabulary) -> None:
    """The decoders split words at the space token: a vocabulary without one is an error."""
    if SPACE not in vocabulary.tokens:
        raise ValueError(
            "the vocabulary has no space token ' ' between words; for a model whose word "
            "separator is another token, use Vocabulary.from_ctc(tokens, space='|')"
        )


#: How far above 0 a log-probability may stray by rounding (log_softmax in float16, say).
_LOGPROB_TOLERANCE = 1e-3


def as_logprobs(logprobs: Tensor | np.ndarray, vocabulary: Vocabulary) -> Tensor:
    """Check CTC log-probs ``(frames, vocab)`` (a tensor or a numpy array) and return them
    as a float32 CPU tensor. Raises ValueError for a wrong shape, NaN or +inf, and for
    values above 0: probabilities or raw logits rather than log-probabilities (apply
    ``log_softmax`` first). -inf (probability 0) is fine. The vocabulary's special
    tokens (``Vocabulary.muted``) are folded into the blank: they are never emitted."""
    if isinstance(logprobs, np.ndarray):  # a copy: read-only and big-endian arrays too
        logprobs = torch.tensor(np.asarray(logprobs, dtype=np.float32))
    if not isinstance(logprobs, Tensor):
        raise TypeError(f"logprobs must be a torch tensor or a numpy array, got {type(logprobs).__name__}")
    _check_shape(logprobs, vocabulary)
    logprobs = logprobs.detach().to("cpu", torch.float32)
    if logprobs.numel():
        if torch.isnan(logprobs).any():
            raise ValueError("logprobs contain NaN")
        if float(logprobs.max()) > _LOGPROB_TOLERANCE:
            raise ValueError(
                "logprobs must be log-probabilities (at most 0), got values up to "
                f"{float(logprobs.max()):.3g}: apply log_softmax over the vocabulary first"
            )
    if vocabulary.muted:
        # Special tokens (<s>, <unk>) stand for no text: their probability joins the
        # blank's (so a frame all on <unk> is a blank, not impossible) and they are never emitted.
        muted = list(vocabulary.muted)
        logprobs = logprobs.clone()
        logprobs[:, 0] = torch.logaddexp(logprobs[:, 0], torch.logsumexp(logprobs[:, muted], dim=1))
        logprobs[:, muted] = -math.inf
    return logprobs


def greedy_texts(logprobs: Tensor, lengths: Tensor, vocabulary: Vocabulary) -> list[str]:
    """Greedy transcripts of a padded batch ``(batch, frames, vocab)`` with ``lengths``."""
    ids = logprobs.argmax(dim=-1)
    texts = []
    for row, n in zip(ids.tolist(), lengths.tolist(), strict=False):
        collapsed = [t for i, t in enumerate(row[:n]) if t != 0 and (i == 0 or t != row[i - 1])]
        texts.append(" ".join(vocabulary.decode(collapsed).split()))
    return texts


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


def parse_hotword(spec: str) -> tuple[str, float]:
    """``"WORD"``, ``"SOME PHRASE"`` or ``"WORD:BOOST"`` -> (normalised text, boost)."""
    text, sep, boost = spec.rpartition(":")
    if not sep:
        text, boost = spec, ""
    try:
        value = float(boost) if boost else DEFAULT_HOTWORD_BOOST
    except ValueError:
        raise ValueError(f"hotword {spec!r}: the boost after ':' must be a number") from None
    if not -MAX_HOTWORD_BOOST <= value <= MAX_HOTWORD_BOOST:  # also rejects nan and inf
        raise ValueError(
            f"hotword {spec!r}: the boost must be between -{MAX_HOTWORD_BOOST} and {MAX_HOTWORD_BOOST}"
        )
    phrase = normalize(text)
    if not phrase:
        raise ValueError(f"hotword {spec!r} has no letters or digits")
    return phrase, value


class _Context:
    """What a prefix's text means to the language side of the search: the word being
    spelled, where it stands in the prefix trees, the LM state, and the text score.

    ``bonus`` is what ranking adds to the acoustic score: the LM and word-bonus score of
    the finished words, finished hotwords, and estimates for the word under way (its best
    LM continuation and its partial hotword matches). It depends only on the prefix's
    text, so prefixes that merge always agree on it.
    """

    __slots__ = ("bonus", "hot", "lexicon", "lm_state", "node", "word", "words_score")

    def __init__(
        self,
        word: str,
        node: PrefixNode | None,
        lexicon: PrefixNode | None,
        lm_state: tuple[str, ...],
        words_score: float,
        hot: tuple[tuple[int, int], ...],
        bonus: float,
    ) -> None:
        self.word = word
        self.node = node
        self.lexicon = lexicon
        self.lm_state = lm_state
        self.words_score = words_score
        self.hot = hot
        self.bonus = bonus


class _Beam:
    """One prefix: its text key (a rolling hash of its ids), its last id, its spans (a
    linked list ``(token, first_frame, last_frame, prob, parent)``), the log-probs of the
    paths ending in a blank and in its last character, and its text context."""

    __slots__ = ("blank", "context", "key", "last", "nonblank", "spans")

    def __init__(
        self, key: int, last: int, spans: tuple | None, blank: float, nonblank: float, context: _Context
    ):
        self.key = key
        self.last = last
        self.spans = spans
        self.blank = blank
        self.nonblank = nonblank
        self.context = context

    @property
    def acoustic(self) -> float:
        return _logaddexp(self.blank, self.nonblank)

    @property
    def score(self) -> float:
        return _logaddexp(self.blank, self.nonblank) + self.context.bonus

    def token_spans(self) -> list[TokenSpan]:
        out = []
        cell = self.spans
        while cell is not None:
            out.append(TokenSpan(cell[0], cell[1], cell[2], cell[3]))
            cell = cell[4]
        out.reverse()
        return out


@dataclass
class BeamState:
    """The beams after ``frames`` frames, best first; ``cache`` remembers the contexts of
    extended prefixes, which stay the same from frame to frame."""

    frames: int = 0
    beams: list[_Beam] = field(default_factory=list)
    cache: dict[tuple[int, int], _Context | None] = field(default_factory=dict)
    #: Words grouped up to a space cell of a beam, keyed by the cell's id (the cell kept
    #: alive beside them), by the builder that ``grouped_key`` names: cells never change,
    #: so a live stream's hypotheses group only the characters after the last word they
    #: share. At most GROUPED_CACHE entries, the oldest dropped first.
    grouped: dict[int, tuple[tuple, _Grouped]] = field(default_factory=dict, repr=False, compare=False)
    grouped_key: tuple = field(default=(), repr=False, compare=False)


_HASH_MOD = (1 << 61) - 1
_HASH_BASE = 1_000_003


class BeamSearchDecoder:
    """CTC prefix beam search over characters, incremental and exact in pieces, with
    optional word n-gram LM fusion, a lexicon and hotwords.

    Works on any CTC model's ``(frames, vocab)`` log-probs given its vocabulary (blank
    = 0, a space token between words). The score of a prefix is its CTC log-probability
    plus ``lm_weight`` times the LM log-probability of its words plus ``word_bonus`` per
    word, plus hotword boosts. ``lexicon`` restricts the output to the listed words (and
    the hotwords). ``hotwords`` maps a word or phrase to its boost (natural log); the
    boost grows letter by letter as a prefix spells the phrase, and is taken back when
    the prefix turns away from it. ``token_prune`` and ``beam_prune`` (log-prob widths;
    None: ``DEFAULT_*``, or ``LEXICON_*`` with a lexicon) bound which characters are
    tried and which beams are kept.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        frame_seconds: float = 0.04,
        beam_size: int = DEFAULT_BEAM_SIZE,
        token_prune: float | None = None,
        beam_prune: float | None = None,
        lm: NgramLM | None = None,
        lm_weight: float = DEFAULT_LM_WEIGHT,
        word_bonus: float = DEFAULT_WORD_BONUS,
        lexicon: Iterable[str] | None = None,
        hotwords: Mapping[str, float] | Iterable[str] | None = None,
        confidence: Sequence[float] | None = None,
    ) -> None:
        _check_space(vocabulary)
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        if not 0 <= lm_weight < math.inf:
            raise ValueError(f"lm_weight must be a number >= 0, got {lm_weight}")
        if not math.isfinite(word_bonus):
            raise ValueError(f"word_bonus must be a finite number, got {word_bonus}")
        for name, width in (("token_prune", token_prune), ("beam_prune", beam_prune)):
            if width is not None and not width >= 0:  # inf: no pruning
                raise ValueError(f"{name} must be a number >= 0, got {width}")
        pieces = [
            t for i, t in enumerate(vocabulary.tokens) if i and len(t) != 1 and i not in vocabulary.muted
        ]
        if pieces and (lm is not None or lexicon is not None or hotwords):
            raise ValueError(
                f"an LM, a lexicon and hotwords spell words letter by letter and need one-character "
                f"tokens; this vocabulary has {pieces[0]!r}: decode it without them"
            )
        self.vocabulary = vocabulary
        self.frame_seconds = frame_seconds
        self.beam_size = beam_size
        closed = lexicon is not None
        default_token, default_beam = (
            (LEXICON_TOKEN_PRUNE, LEXICON_BEAM_PRUNE) if closed else (DEFAULT_TOKEN_PRUNE, DEFAULT_BEAM_PRUNE)
        )
        self.token_prune = default_token if token_prune is None else token_prune
        self.beam_prune = default_beam if beam_prune is None else beam_prune
        self.commit_margin = math.inf if closed else COMMIT_MARGIN
        self.lm = lm
        self.lm_weight = lm_weight if lm is not None else 0.0
        self.word_bonus = word_bonus if lm is not None else 0.0
        self.confidence = confidence
        self._chars = list(vocabulary.tokens)
        self._space = vocabulary.space

        if hotwords is None:
            hotwords = {}
        elif isinstance(hotwords, str):  # one spec, not a sequence of letters
            hotwords = dict([parse_hotword(hotwords)])
        elif not isinstance(hotwords, Mapping):
            hotwords = dict(parse_hotword(h) for h in hotwords)
        self.hotwords = {normalize(k): float(v) for k, v in hotwords.items() if normalize(k)}
        self._hot = [(phrase, boost) for phrase, boost in self.hotwords.items()]
        self._hot_first: dict[str, list[int]] = {}
        for i, (phrase, _) in enumerate(self._hot):
            self._hot_first.setdefault(phrase[0], []).append(i)
        hot_words = {w for phrase in self.hotwords for w in phrase.split()}

        self._tree: PrefixNode | None = None
        self._unk = 0.0
        self._char_logprob = -math.log(max(2, len(vocabulary) - 1))
        self._floor = 0.0
        self._hot_oov: set[str] = set()
        if lm is not None:
            self._unk = lm.unk_log10 * LN10
            tree = lm.prefix_tree()
            # Hotwords the LM does not know score like its rarest known word, not like <unk>.
            self._hot_oov = {w for w in hot_words if w not in lm.words}
            if self._hot_oov:
                self._floor = min((n.best for n in _leaves(tree)), default=self._unk)
            for word in self._hot_oov:
                tree = _insert_copy(tree, word, self._floor)
            self._tree = tree
        self._lexicon: PrefixNode | None = None
        if lexicon is not None:
            words = {w for entry in lexicon for w in normalize(entry).split()} | hot_words
            if not words:
                raise ValueError("the lexicon lists no words")
            self._lexicon = build_prefix_tree(dict.fromkeys(words, 0.0))
        self._plain = lm is None and self._lexicon is None and not self._hot
        # What the LM and hotwords may add to a prefix's score in one frame, at most.
        self._slack = max(0.0, self.word_bonus) + max((b for _, b in self._hot), default=0.0)
        if lm is not None:
            self._slack += self.lm_weight * LM_SLACK
        self._root = _Context("", self._tree, self._lexicon, lm.begin() if lm else (), 0.0, (), 0.0)

    def start(self) -> BeamState:
        return BeamState(beams=[_Beam(0, 0, None, 0.0, -math.inf, self._root)])

    def step(self, logprobs: Tensor, state: BeamState) -> BeamState:
        """Consume ``(frames, vocab)`` log-probs (a tensor or a numpy array) of one stream;
        returns the updated state. Raises ValueError for anything but log-probabilities of
        that shape (``as_logprobs``)."""
        rows = as_logprobs(logprobs, self.vocabulary).tolist()
        for i, row in enumerate(rows):
            state.beams = self._frame(row, state.frames + i, state.beams, state.cache)
        state.frames += len(rows)
        if len(state.cache) > 50_000:
            live = {b.key for b in state.beams}
            state.cache = {k: v for k, v in state.cache.items() if k[0] in live}
        return state

    def _extend(self, context: _Context, token: int) -> _Context | None:
        """The context after appending ``token``, or None when the lexicon forbids it."""
        ch = self._chars[token]
        words_score = context.words_score
        lm_state = context.lm_state
        if token == self._space:
            word = context.word
            if not word:
                return None  # no leading or doubled spaces: they spell nothing
            if context.lexicon is not None and not context.lexicon.is_word:
                return None
            words_score += self._word_score(lm_state, word)
            if self.lm is not None:
                lm_state = self.lm.score(lm_state, word)[1]
            hot, done = self._advance_hot(context.hot, ch, False)
            words_score += done
            return _Context(
                "",
                self._tree,
                self._lexicon,
                lm_state,
                words_score,
                hot,
                words_score + self._hot_estimate(hot),
            )
        lexicon = context.lexicon
        if lexicon is not None:
            lexicon = lexicon.children.get(ch)
            if lexicon is None:
                return None
        node = context.node.children.get(ch) if context.node is not None else None
        hot, done = self._advance_hot(context.hot, ch, not context.word)
        words_score += done
        estimate = 0.0
        if self.lm is not None:
            best = node.best if node is not None else self._oov_logprob(len(context.word) + 1)
            estimate = self.lm_weight * best + self.word_bonus
        estimate += self._hot_estimate(hot)
        return _Context(context.word + ch, node, lexicon, lm_state, words_score, hot, words_score + estimate)

    def _hot_estimate(self, hot: tuple[tuple[int, int], ...]) -> float:
        """The boost earned so far by the best partial hotword match."""
        if not hot:
            return 0.0
        return max(self._hot[i][1] * k / len(self._hot[i][0]) for i, k in hot)

    def _word_score(self, lm_state: tuple[str, ...], word: str) -> float:
        if self.lm is None:
            return 0.0
        if word in self._hot_oov:
            logprob = self._floor
        else:
            logprob = self.lm.score(lm_state, word)[0]
            if word not in self.lm.words:
                logprob = self._oov_logprob(len(word))
        return self.lm_weight * logprob + self.word_bonus

    def _oov_logprob(self, letters: int) -> float:
        """ln P of a word the LM does not know: P(<unk>) times the chance of its spelling,
        one uniform character at a time and then the end of the word. Without the
        spelling term, one long made-up word would cost less than the real words it
        swallows, and the search would drop the spaces between them."""
        return self._unk + (letters + 1) * self._char_logprob

    def _advance_hot(
        self, hot: tuple[tuple[int, int], ...], ch: str, word_start: bool
    ) -> tuple[tuple[tuple[int, int], ...], float]:
        """Hotword matches after ``ch``, and the boosts of phrases it completed."""
        if not self._hot:
            return (), 0.0
        out, done = [], 0.0
        for i, k in hot:
            phrase = self._hot[i][0]
            if k < len(phrase):
                if phrase[k] == ch:
                    out.append((i, k + 1))
            elif ch == " ":
                done += self._hot[i][1]
        if word_start:
            out += [(i, 1) for i in self._hot_first.get(ch, ())]
        return tuple(out), done

    def _frame(
        self, row: list[float], frame: int, beams: list[_Beam], cache: dict[tuple[int, int], _Context | None]
    ) -> list[_Beam]:
        neg, exp, log1p = -math.inf, math.exp, math.log1p
        best = max(row)
        floor = best - self.token_prune
        candidates = [(t, lp) for t, lp in enumerate(row) if t and lp >= floor]
        blank_lp = row[0]
        totals = []
        for beam in beams:
            b, nb = beam.blank, beam.nonblank
            if nb == neg:
                totals.append(b)
            elif b == neg:
                totals.append(nb)
            else:
                totals.append(b + log1p(exp(nb - b)) if b > nb else nb + log1p(exp(b - nb)))
        if not candidates:
            return self._blank_frame(row, frame, beams, totals)
        # Every beam survives this frame at least by a blank, so the best of those bounds
        # the next best score from below: extensions that cannot come within beam_prune of
        # it, allowing a margin for what LM and hotwords may add, are not expanded at all.
        # A heuristic: a word whose n-gram probability far exceeds its unigram estimate
        # can gain more than the margin when it closes.
        cutoff = max(t + beam.context.bonus for t, beam in zip(totals, beams, strict=True)) + blank_lp
        cutoff -= self.beam_prune + self._slack
        # key -> [blank, nonblank, spans, best path log-prob, last, context]
        table: dict[int, list] = {}
        merge = _merge
        plain = self._plain
        space = self._space
        for beam, total in zip(beams, totals, strict=True):
            key = beam.key
            spans = beam.spans
            context = beam.context
            # The prefix stays as it is: a blank, or its last character held.
            merge(table, key, total + blank_lp, neg, spans, beam.last, context)
            if spans is not None and beam.nonblank > neg:
                lp_last = row[beam.last]
                prob = exp(lp_last)
                held = (spans[0], spans[1], frame, prob if prob > spans[3] else spans[3], spans[4])
                merge(table, key, neg, beam.nonblank + lp_last, held, beam.last, context)
            bound = cutoff - context.bonus
            last = beam.last
            for token, lp in candidates:
                # A repeated character needs a blank between: only blank-ending paths extend.
                source = beam.blank if token == last else total
                score = source + lp
                if score < bound or score == neg:
                    continue
                if plain:
                    # Without LM, lexicon or hotwords, only spaces need a look at the text.
                    if token == space and (last == space or last == 0):
                        continue
                    extended = context
                else:
                    ck = (key, token)
                    extended = cache.get(ck, _MISSING)
                    if extended is _MISSING:
                        extended = cache[ck] = self._extend(context, token)
                    if extended is None:
                        continue
                new_key = (key * _HASH_BASE + token + 1) % _HASH_MOD
                cell = (token, frame, frame, exp(lp), spans)
                entry = table.get(new_key)
                if entry is None:
                    table[new_key] = [neg, score, cell, score, token, extended]
                else:  # the same prefix reached from another beam (or held): add the paths
                    nb = entry[1]
                    entry[1] = score + log1p(exp(nb - score)) if score > nb else nb + log1p(exp(score - nb))
                    if score > entry[3]:
                        entry[2], entry[3] = cell, score

        scored = []
        for key, entry in table.items():
            b, nb = entry[0], entry[1]
            if nb == neg:
                acoustic = b
            elif b == neg:
                acoustic = nb
            else:
                acoustic = b + log1p(exp(nb - b)) if b > nb else nb + log1p(exp(b - nb))
            scored.append((acoustic + entry[5].bonus, key, entry))
        top = heapq.nlargest(self.beam_size, scored, key=_first)
        limit = top[0][0] - self.beam_prune
        return [
            _Beam(key, entry[4], entry[2], entry[0], entry[1], entry[5])
            for score, key, entry in top
            if score >= limit
        ]

    def _blank_frame(
        self, row: list[float], frame: int, beams: list[_Beam], totals: list[float]
    ) -> list[_Beam]:
        """A frame where no character is worth trying: every prefix only stays (the same
        result as the general update, without its bookkeeping; most frames are like this)."""
        neg = -math.inf
        blank_lp = row[0]
        scored = []
        for beam, total in zip(beams, totals, strict=True):
            blank, nonblank, spans = total + blank_lp, neg, beam.spans
            if spans is not None and beam.nonblank > neg:
                lp_last = row[beam.last]
                nonblank = beam.nonblank + lp_last
                if nonblank > blank:  # the held character's path is the better one: it sets the spans
                    prob = math.exp(lp_last)
                    spans = (spans[0], spans[1], frame, prob if prob > spans[3] else spans[3], spans[4])
            acoustic = _logaddexp(blank, nonblank)
            scored.append(
                (
                    acoustic + beam.context.bonus,
                    _Beam(beam.key, beam.last, spans, blank, nonblank, beam.context),
                )
            )
        scored.sort(key=_first, reverse=True)
        limit = scored[0][0] - self.beam_prune
        return [beam for score, beam in scored if score >= limit]

    def _final_beams(self, state: BeamState) -> list[tuple[float, _Beam, bool]]:
        """The beams rescored as complete utterances: the open word finished (or the beam
        dropped when the lexicon does not list it) and the LM's end of sentence added.
        The flag says to cut the beam's unfinished last word from its text."""
        scored = []
        for beam in state.beams:
            context = beam.context
            if context.word:
                closed = self._extend(context, self._space)
                if closed is None:
                    continue
                context = closed
            bonus = context.words_score
            if self.lm is not None:
                bonus += self.lm_weight * self.lm.score(context.lm_state, EOS)[0]
            scored.append((beam.acoustic + bonus, beam, False))
        if not scored:
            # The lexicon rejected every beam's last word: keep the best beam's finished
            # words only, so the output still holds listed words alone.
            scored = [(b.score, b, True) for b in state.beams[:1]]
        scored.sort(key=lambda sb: sb[0], reverse=True)
        return scored

    def _hypothesis(
        self,
        beam: _Beam,
        score: float,
        offset: float,
        cut_open: bool = False,
        state: BeamState | None = None,
    ) -> Hypothesis:
        """``beam`` as a Hypothesis; with ``state``, through its cache of grouped words."""
        builder = _WordBuilder(self.vocabulary, self.frame_seconds, offset, self.confidence)
        if cut_open or state is None:
            spans = beam.token_spans()
            if cut_open:
                last_space = max((i for i, t in enumerate(spans) if t.token == self._space), default=0)
                spans = spans[:last_space]
            tokens, words = builder.finish(_EMPTY, spans)
        else:
            tokens, words = self._grouped(beam, builder, state)
        return Hypothesis(" ".join(w.word for w in words), tokens, words, score)

    def _grouped(
        self, beam: _Beam, builder: _WordBuilder, state: BeamState
    ) -> tuple[tuple[TokenSpan, ...], tuple[Word, ...]]:
        """The spans and words of ``beam``, grouping only its cells after the last space
        cell found in ``state.grouped``, and remembering its own last space cell there."""
        if state.grouped_key != builder.key:
            state.grouped, state.grouped_key = {}, builder.key
        done, cells = _EMPTY, []
        cell = beam.spans
        while cell is not None:
            hit = state.grouped.get(id(cell))
            if hit is not None and hit[0] is cell:
                done = hit[1]
                break
            cells.append(cell)
            cell = cell[4]
        cells.reverse()
        spans = [TokenSpan(c[0], c[1], c[2], c[3]) for c in cells]
        last_space = max((i for i, c in enumerate(cells) if c[0] == self._space), default=-1)
        if last_space >= 0:
            done = builder.advance(done, spans[: last_space + 1])
            state.grouped[id(cells[last_space])] = (cells[last_space], done)
            while len(state.grouped) > GROUPED_CACHE:
                del state.grouped[next(iter(state.grouped))]
            spans = spans[last_space + 1 :]
        return builder.finish(done, spans)

    def hypothesis(self, state: BeamState, offset: float = 0.0) -> Hypothesis:
        """The best hypothesis so far, without ending the stream.

        What the best beam shares with earlier answers is not grouped again, so a live
        stream's partial results stay cheap as it grows.
        """
        if not state.beams:
            state.beams = self.start().beams
        beam = state.beams[0]
        return self._hypothesis(beam, beam.score, offset, state=state)

    def finish(self, state: BeamState, offset: float = 0.0) -> Hypothesis:
        """End the stream and return its best hypothesis; word times start at ``offset``."""
        if not state.beams:
            state.beams = self.start().beams
        score, beam, cut = self._final_beams(state)[0]
        return self._hypothesis(beam, score, offset, cut, state)

    def nbest(self, state: BeamState, n: int = DEFAULT_NBEST, offset: float = 0.0) -> list[Hypothesis]:
        """The ``n`` best distinct transcripts of the ended stream, best first."""
        if not state.beams:
            state.beams = self.start().beams
        out: list[Hypothesis] = []
        for score, beam, cut in self._final_beams(state):
            hyp = self._hypothesis(beam, score, offset, cut)
            if all(h.text != hyp.text for h in out):
                out.append(hyp)
            if len(out) == n:
                break
        return out

    def decode(self, logprobs: Tensor) -> Hypothesis:
        """Decode the ``(frames, vocab)`` log-probs of one whole utterance."""
        return self.finish(self.step(logprobs, self.start()))

    def settled_words(self, state: BeamState) -> int:
        """Leading words of the best hypothesis that every beam within ``commit_margin`` of
        the best shares, each closed by a space; the weaker beams that do not share them
        are dropped from ``state``. Every later beam then extends one that spells them, so
        they are final."""
        if not state.beams:
            return 0
        # Beams are persistent lists of (token, start, end, prob, earlier cell) cells that
        # share the cells of their common history, so only the best beam is walked from
        # its start; every other one is walked back until it meets that chain. A live
        # stream asks this for every chunk; decoding every beam's whole text cost
        # beams x the utterance's length each time.
        chain = []
        cell = state.beams[0].spans
        while cell is not None:
            chain.append(cell)
            cell = cell[4]
        chain.reverse()
        best = [c[0] for c in chain]
        position = {id(c): i for i, c in enumerate(chain)}  # the chain keeps its cells alive
        floor = state.beams[0].score - self.commit_margin
        common = len(best)
        shared = [len(best)]  # how many of the best beam's tokens each beam spells alike
        for beam in state.beams[1:]:
            tail = []
            cell = beam.spans
            while cell is not None and id(cell) not in position:
                tail.append(cell[0])
                cell = cell[4]
            tail.reverse()
            n = position[id(cell)] + 1 if cell is not None else 0
            for token in tail:
                if n >= len(best) or best[n] != token:
                    break
                n += 1
            shared.append(n)
            if beam.score >= floor:
                common = min(common, n)
        # The settled words end at the last space among the tokens the strong beams share.
        cut = max((i for i in range(common) if best[i] == self._space), default=-1)
        if cut < 0:
            return 0
        if min(shared) <= cut:
            state.beams = [beam for beam, n in zip(state.beams, shared, strict=True) if n > cut]
        return len(self.vocabulary.decode(best[:cut]).split())


_MISSING = _Context("", None, None, (), 0.0, (), 0.0)


def _first(item: tuple) -> float:
    return item[0]


def _merge(
    table: dict[int, list], key: int, blank: float, nonblank: float, spans, last: int, context
) -> None:
    """Add paths into the prefix ``key``; its spans follow its single most likely path."""
    path = _logaddexp(blank, nonblank)
    entry = table.get(key)
    if entry is None:
        table[key] = [blank, nonblank, spans, path, last, context]
        return
    entry[0] = _logaddexp(entry[0], blank)
    entry[1] = _logaddexp(entry[1], nonblank)
    if path > entry[3]:
        entry[2], entry[3] = spans, path


def _leaves(node: PrefixNode) -> Iterator[PrefixNode]:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.is_word:
            yield n
        stack.extend(n.children.values())


def _insert_copy(root: PrefixNode, word: str, logprob: float) -> PrefixNode:
    """A tree with ``word`` added, sharing every node off its path with ``root``."""
    new_root = PrefixNode(dict(root.children), max(root.best, logprob), root.is_word)
    node = new_root
    for ch in word:
        old = node.children.get(ch)
        child = (
            PrefixNode(dict(old.children), max(old.best, logprob), old.is_word)
            if old is not None
            else PrefixNode(best=logprob)
        )
        node.children[ch] = child
        node = child
    node.is_word = True
    return new_root
