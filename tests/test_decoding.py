import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.decoding import GreedyDecoder, words_from_tokens
from asr.text import Vocabulary

VOCAB = Vocabulary()


def logprobs_for(path: str, confident: float = 0.9) -> torch.Tensor:
    """Log-probs whose best path spells ``path``; '_' is blank, ' ' is space."""
    rows = []
    for ch in path:
        index = 0 if ch == "_" else VOCAB.tokens.index(ch)
        row = torch.full((len(VOCAB),), (1 - confident) / (len(VOCAB) - 1))
        row[index] = confident
        rows.append(row.log())
    return torch.stack(rows)


def test_collapses_repeats_and_drops_blanks() -> None:
    decoder = GreedyDecoder(VOCAB, frame_seconds=0.04)
    hyp = decoder.decode(logprobs_for("__hhe_ll_lo___  __wwo_rld__"))
    assert hyp.text == "hello world"
    assert [w.word for w in hyp.words] == ["hello", "world"]


def test_word_times_come_from_frames() -> None:
    decoder = GreedyDecoder(VOCAB, frame_seconds=0.04)
    hyp = decoder.decode(logprobs_for("__yes____ __no_"))
    yes, no = hyp.words
    assert (yes.start, yes.end) == (0.08, 0.2)  # frames 2..4
    assert (no.start, no.end) == pytest.approx((0.48, 0.56))  # frames 12..13
    assert yes.confidence == pytest.approx(0.9)


def test_confidence_follows_posteriors() -> None:
    decoder = GreedyDecoder(VOCAB)
    sure = decoder.decode(logprobs_for("_go_", 0.95)).words[0].confidence
    unsure = decoder.decode(logprobs_for("_go_", 0.4)).words[0].confidence
    assert sure > unsure and 0 < unsure < 1


def test_empty_and_blank_only() -> None:
    decoder = GreedyDecoder(VOCAB)
    assert decoder.decode(torch.zeros(0, len(VOCAB))).text == ""
    hyp = decoder.decode(logprobs_for("_____   __"))
    assert hyp.text == "" and hyp.words == ()


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="logprobs must be"):
        GreedyDecoder(VOCAB).decode(torch.zeros(5, 10))


PATH = "__th_e  _qu_iick__ brr_own _ffox __ jumps___ oo_ver   the_ lazy dog__"
FULL = logprobs_for(PATH, 0.7)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=9), max_size=20))
def test_pieces_equal_whole(sizes: list[int]) -> None:
    decoder = GreedyDecoder(VOCAB)
    state, start = decoder.start(), 0
    for size in [*sizes, len(PATH)]:
        state = decoder.step(FULL[start : start + size], state)
        start += size
    pieces = decoder.finish(state)
    whole = decoder.decode(FULL)
    assert (pieces.text, pieces.tokens, pieces.words) == (whole.text, whole.tokens, whole.words)
    assert whole.text == "the quick brown fox jumps over the lazy dog"
    assert math.isclose(pieces.score, whole.score, rel_tol=1e-6)


def test_words_from_tokens_offset() -> None:
    hyp = GreedyDecoder(VOCAB, 0.04).decode(logprobs_for("_hi_"))
    (word,) = words_from_tokens(hyp.tokens, VOCAB, 0.04, offset=10.0)
    assert word.word == "hi" and word.start == pytest.approx(10.04)
