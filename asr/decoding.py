"""CTC decoders that run incrementally on log-probs from any CTC model.

Every decoder has ``start() -> state``, ``step(logprobs, state) -> state`` and
``finish(state) -> Hypothesis``; the caller owns the state. Decoding log-probs in pieces
gives the same hypothesis as decoding them whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from asr.text import Vocabulary


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
        if logprobs.dim() != 2 or logprobs.shape[1] != len(self.vocabulary):
            raise ValueError(
                f"logprobs must be (frames, {len(self.vocabulary)}), got {tuple(logprobs.shape)}"
            )
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

    def decode(self, logprobs: Tensor) -> Hypothesis:
        """Decode the ``(frames, vocab)`` log-probs of one whole utterance."""
        return self.finish(self.step(logprobs, self.start()))


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
