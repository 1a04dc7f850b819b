"""Forced alignment: where each word of a known transcript lies in a CTC model's output.

``align_words(logprobs, text, vocabulary)`` runs CTC forced alignment
(``torchaudio.functional.forced_align``, a Viterbi pass over the blank-interleaved
transcript) and groups the character spans into words. Times are in output frames;
multiply by the model's frame length (``bundle.frame_seconds``) for seconds.

A CTC model emits each character as a short spike, usually a little after the sound:
a unidirectional model waits for the evidence. Word spans are therefore spike spans,
not acoustic boundaries; ``tools/cut_segments.py`` measures the lag and cuts the audio
at the quietest point between two words.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torchaudio.functional as taf
from torch import Tensor

from asr.text import Vocabulary


class AlignmentError(ValueError):
    """The transcript cannot be aligned to the log-probs (too long, or not in the vocabulary)."""


@dataclass(frozen=True)
class AlignedWord:
    """A word of the transcript and the output frames its characters occupy.

    ``start`` is the first frame of its first character, ``end`` one past the last frame
    of its last character (exclusive); ``score`` is the mean posterior of its characters'
    frames (blank frames between them not counted).
    """

    word: str
    start: int
    end: int
    score: float


def min_frames(tokens: list[int]) -> int:
    """Frames CTC needs for ``tokens``: one each, plus a blank between repeated tokens."""
    return len(tokens) + sum(a == b for a, b in itertools.pairwise(tokens))


def align_words(logprobs: Tensor, text: str, vocabulary: Vocabulary) -> list[AlignedWord]:
    """Align normalised ``text`` to ``logprobs`` ``(frames, vocab)`` (CTC, blank 0).

    Returns the words of ``text`` in order with their frame spans. Raises
    ``AlignmentError`` for an empty text, a character outside the vocabulary, or a text
    that needs more frames than ``logprobs`` has.
    """
    _check_shape(logprobs, vocabulary)
    words = text.split()
    if not words:
        raise AlignmentError("nothing to align: the transcript is empty")
    try:
        tokens = vocabulary.encode(" ".join(words))
    except ValueError as e:
        raise AlignmentError(str(e)) from None
    if min_frames(tokens) > logprobs.shape[0]:
        raise AlignmentError(
            f"the transcript needs at least {min_frames(tokens)} frames, the audio gives {logprobs.shape[0]}"
        )
    targets = torch.tensor([tokens], dtype=torch.int32)
    labels, scores = taf.forced_align(logprobs.float().unsqueeze(0).cpu(), targets, blank=vocabulary.blank)
    spans = taf.merge_tokens(labels[0], scores[0].exp(), blank=vocabulary.blank)
    if len(spans) != len(tokens):  # forced alignment visits every target token once
        raise AlignmentError(f"alignment found {len(spans)} of {len(tokens)} characters")
    aligned: list[AlignedWord] = []
    index = 0
    for word in words:
        chars = spans[index : index + len(word)]
        index += len(word) + 1  # the space after the word
        score = sum(s.score * (s.end - s.start) for s in chars) / sum(s.end - s.start for s in chars)
        aligned.append(AlignedWord(word, chars[0].start, chars[-1].end, float(score)))
    return aligned


def alignment_score(logprobs: Tensor, text: str, vocabulary: Vocabulary) -> float:
    """The CTC log-likelihood of ``text`` per character, spaces between words included
    (higher is a surer alignment).

    ``logprobs``: ``(frames, vocab)``. Returns ``-inf`` where ``text`` cannot be aligned
    (empty, a character outside the vocabulary, too few frames); raises ``AlignmentError``
    for log-probs of the wrong shape.
    """
    _check_shape(logprobs, vocabulary)
    try:
        tokens = vocabulary.encode(" ".join(text.split()))
    except ValueError:
        return -math.inf
    if not tokens or min_frames(tokens) > logprobs.shape[0]:
        return -math.inf
    loss = torch.nn.functional.ctc_loss(
        logprobs.float().unsqueeze(1),
        torch.tensor([tokens]),
        torch.tensor([logprobs.shape[0]]),
        torch.tensor([len(tokens)]),
        blank=vocabulary.blank,
        reduction="sum",
    )
    return -float(loss) / len(tokens)


def _check_shape(logprobs: Tensor, vocabulary: Vocabulary) -> None:
    if logprobs.dim() != 2 or logprobs.shape[1] != len(vocabulary):
        raise AlignmentError(f"expected log-probs (frames, {len(vocabulary)}), got {tuple(logprobs.shape)}")
