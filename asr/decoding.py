"""CTC decoders that run incrementally on log-probs from any CTC model.

Every decoder has ``start() -> state``, ``step(logprobs, state) -> state`` and
``finish(state) -> Hypothesis``; the caller owns the state. Decoding log-probs in pieces
gives the same hypothesis as decoding them whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from asr.text import Vocabulary

#: Tunable defaults of the beam search, in one place.
DEFAULT_BEAM_SIZE = 16
#: Characters whose log-prob is this far below the frame's best are not tried.
DEFAULT_TOKEN_PRUNE = 8.0
#: Beams this far (in log-prob) below the best are dropped even when there is room.
DEFAULT_BEAM_PRUNE = 8.0
#: How many hypotheses ``finish`` returns in ``nbest``.
DEFAULT_NBEST = 5


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


def words_from_tokens(
    tokens: Sequence[TokenSpan], vocabulary: Vocabulary, frame_seconds: float, offset: float = 0.0
) -> tuple[Word, ...]:
    """Group character spans into words at the space token; times come from CTC frames.

    A word starts at its first character's first frame and ends after its last
    character's last frame; its confidence is the mean of its characters' posteriors.
    """
    words: list[Word] = []
    current: list[TokenSpan] = []
    space = vocabulary.space

    def flush() -> None:
        if current:
            words.append(
                Word(
                    word=vocabulary.decode(t.token for t in current),
                    start=round(offset + current[0].first_frame * frame_seconds, 3),
                    end=round(offset + (current[-1].last_frame + 1) * frame_seconds, 3),
                    confidence=round(sum(t.prob for t in current) / len(current), 4),
                )
            )
            current.clear()

    for t in tokens:
        if t.token == space:
            flush()
        else:
            current.append(t)
    flush()
    return tuple(words)


@dataclass
class GreedyState:
    """Where greedy decoding stands: frames seen, the last best id, the spans so far."""

    frames: int = 0
    last: int = 0
    score: float = 0.0
    tokens: list[TokenSpan] = field(default_factory=list)


class GreedyDecoder:
    """Best path decoding: the most likely id per frame, repeats merged, blanks dropped."""

    def __init__(self, vocabulary: Vocabulary, frame_seconds: float = 0.04) -> None:
        self.vocabulary = vocabulary
        self.frame_seconds = frame_seconds

    def start(self) -> GreedyState:
        return GreedyState()

    def step(self, logprobs: Tensor, state: GreedyState) -> GreedyState:
        """Consume ``(frames, vocab)`` log-probs of one stream; returns the updated state."""
        _check_shape(logprobs, self.vocabulary)
        best, ids = logprobs.detach().float().max(dim=-1)
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
        """The hypothesis so far, without ending the stream; word times start at ``offset``."""
        tokens = _strip_spaces(state.tokens, self.vocabulary.space)
        text = " ".join(self.vocabulary.decode(t.token for t in tokens).split())
        words = words_from_tokens(tokens, self.vocabulary, self.frame_seconds, offset)
        return Hypothesis(text, tuple(tokens), words, state.score)

    def finish(self, state: GreedyState, offset: float = 0.0) -> Hypothesis:
        """End the stream and return its hypothesis; word times start at ``offset``."""
        return self.hypothesis(state, offset)

    def settled_words(self, state: GreedyState) -> int:
        """How many leading words of ``hypothesis(state)`` can no longer change.

        Greedy decoding never revises an emitted character, so every word followed by a
        space is settled; only the last word may still grow.
        """
        words = len(self.hypothesis(state).words)
        ends_with_space = bool(state.tokens) and state.tokens[-1].token == self.vocabulary.space
        return words if ends_with_space else max(0, words - 1)

    def decode(self, logprobs: Tensor) -> Hypothesis:
        """Decode the ``(frames, vocab)`` log-probs of one whole utterance."""
        return self.finish(self.step(logprobs, self.start()))


def _check_shape(logprobs: Tensor, vocabulary: Vocabulary) -> None:
    if logprobs.dim() != 2 or logprobs.shape[1] != len(vocabulary):
        raise ValueError(f"logprobs must be (frames, {len(vocabulary)}), got {tuple(logprobs.shape)}")


def _strip_spaces(tokens: Sequence[TokenSpan], space: int) -> list[TokenSpan]:
    """Drop leading, trailing and doubled spaces, which carry no words."""
    out: list[TokenSpan] = []
    for t in tokens:
        if t.token == space and (not out or out[-1].token == space):
            continue
        out.append(t)
    while out and out[-1].token == space:
        out.pop()
    return out


def greedy_texts(logprobs: Tensor, lengths: Tensor, vocabulary: Vocabulary) -> list[str]:
    """Greedy transcripts of a padded batch ``(batch, frames, vocab)`` with ``lengths``."""
    ids = logprobs.argmax(dim=-1)
    texts = []
    for row, n in zip(ids.tolist(), lengths.tolist(), strict=False):
        collapsed = [t for i, t in enumerate(row[:n]) if t != 0 and (i == 0 or t != row[i - 1])]
        texts.append(" ".join(vocabulary.decode(collapsed).split()))
    return texts


@dataclass(frozen=True)
class Beam:
    """One prefix: its characters' spans and the log-probs of the paths ending in a blank
    and in its last character (``last`` is that character, or 0 for an empty prefix)."""

    tokens: tuple[TokenSpan, ...]
    blank: float
    nonblank: float

    @property
    def score(self) -> float:
        return _logaddexp(self.blank, self.nonblank)

    @property
    def last(self) -> int:
        return self.tokens[-1].token if self.tokens else 0


@dataclass
class BeamState:
    """The beams after ``frames`` frames, best first."""

    frames: int = 0
    beams: list[Beam] = field(default_factory=lambda: [Beam((), 0.0, -math.inf)])


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


class BeamSearchDecoder:
    """CTC prefix beam search over characters, incremental and exact in pieces.

    Works on any CTC model's ``(frames, vocab)`` log-probs given its vocabulary (blank
    = 0). ``finish`` returns the best hypothesis; ``nbest`` the best few.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        frame_seconds: float = 0.04,
        beam_size: int = DEFAULT_BEAM_SIZE,
        token_prune: float = DEFAULT_TOKEN_PRUNE,
        beam_prune: float = DEFAULT_BEAM_PRUNE,
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        self.vocabulary = vocabulary
        self.frame_seconds = frame_seconds
        self.beam_size = beam_size
        self.token_prune = token_prune
        self.beam_prune = beam_prune

    def start(self) -> BeamState:
        return BeamState()

    def step(self, logprobs: Tensor, state: BeamState) -> BeamState:
        """Consume ``(frames, vocab)`` log-probs of one stream; returns the updated state."""
        _check_shape(logprobs, self.vocabulary)
        rows = logprobs.detach().float().tolist()
        for i, row in enumerate(rows):
            state.beams = self._frame(row, state.frames + i, state.beams)
        state.frames += len(rows)
        return state

    def _frame(self, row: list[float], frame: int, beams: list[Beam]) -> list[Beam]:
        best = max(row)
        candidates = [(t, lp) for t, lp in enumerate(row) if t != 0 and lp >= best - self.token_prune]
        blank_lp = row[0]
        # prefix -> [blank, nonblank, spans, score of the path that set the spans]
        next_beams: dict[tuple[int, ...], list] = {}

        def add(key: tuple[int, ...], blank: float, nonblank: float, spans: tuple[TokenSpan, ...]) -> None:
            entry = next_beams.get(key)
            path = _logaddexp(blank, nonblank)
            if entry is None:
                next_beams[key] = [blank, nonblank, spans, path]
                return
            entry[0] = _logaddexp(entry[0], blank)
            entry[1] = _logaddexp(entry[1], nonblank)
            if path > entry[3]:
                entry[2], entry[3] = spans, path

        for beam in beams:
            key = tuple(t.token for t in beam.tokens)
            total = beam.score
            # The prefix stays as it is: a blank, or its last character held.
            add(key, total + blank_lp, -math.inf, beam.tokens)
            if beam.tokens:
                last = beam.tokens[-1]
                held = TokenSpan(
                    last.token, last.first_frame, frame, max(last.prob, math.exp(row[last.token]))
                )
                add(key, -math.inf, beam.nonblank + row[last.token], (*beam.tokens[:-1], held))
            for token, lp in candidates:
                span = TokenSpan(token, frame, frame, math.exp(lp))
                # A repeated character needs a blank between: only the blank-ending paths extend.
                source = beam.blank if token == beam.last else total
                add((*key, token), -math.inf, source + lp, (*beam.tokens, span))
        ranked = sorted(next_beams.values(), key=lambda e: _logaddexp(e[0], e[1]), reverse=True)
        top = _logaddexp(ranked[0][0], ranked[0][1])
        return [
            Beam(spans, blank, nonblank)
            for blank, nonblank, spans, _ in ranked[: self.beam_size]
            if _logaddexp(blank, nonblank) >= top - self.beam_prune
        ]

    def _hypothesis(self, beam: Beam, offset: float) -> Hypothesis:
        tokens = _strip_spaces(beam.tokens, self.vocabulary.space)
        text = " ".join(self.vocabulary.decode(t.token for t in tokens).split())
        words = words_from_tokens(tokens, self.vocabulary, self.frame_seconds, offset)
        return Hypothesis(text, tuple(tokens), words, beam.score)

    def hypothesis(self, state: BeamState, offset: float = 0.0) -> Hypothesis:
        """The best hypothesis so far, without ending the stream."""
        return self._hypothesis(state.beams[0], offset)

    def finish(self, state: BeamState, offset: float = 0.0) -> Hypothesis:
        """End the stream and return its best hypothesis; word times start at ``offset``."""
        return self.hypothesis(state, offset)

    def nbest(self, state: BeamState, n: int = DEFAULT_NBEST, offset: float = 0.0) -> list[Hypothesis]:
        """The ``n`` best distinct transcripts, best first."""
        out: list[Hypothesis] = []
        for beam in state.beams:
            hyp = self._hypothesis(beam, offset)
            if all(h.text != hyp.text for h in out):
                out.append(hyp)
            if len(out) == n:
                break
        return out

    def decode(self, logprobs: Tensor) -> Hypothesis:
        """Decode the ``(frames, vocab)`` log-probs of one whole utterance."""
        return self.finish(self.step(logprobs, self.start()))

    def settled_words(self, state: BeamState) -> int:
        """Leading words of the best hypothesis that every beam shares, each closed by a
        space in every beam: every later beam extends a current one, so they are final."""
        texts = [self.vocabulary.decode(t.token for t in b.tokens).lstrip(" ") for b in state.beams]
        common = texts[0]
        for text in texts[1:]:
            n = 0
            while n < min(len(common), len(text)) and common[n] == text[n]:
                n += 1
            common = common[:n]
        cut = common.rfind(" ")
        return len(common[:cut].split()) if cut > 0 else 0
