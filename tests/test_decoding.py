import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.decoding import (
    GROUPED_CACHE,
    BeamSearchDecoder,
    BeamState,
    GreedyDecoder,
    GreedyState,
    words_from_tokens,
)
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


@pytest.mark.parametrize("decoder", [GreedyDecoder(VOCAB), BeamSearchDecoder(VOCAB)])
def test_decoders_take_numpy_and_refuse_what_is_not_log_probs(decoder) -> None:
    lp = logprobs_for("__hi_ _yo_")
    assert decoder.decode(lp.numpy()).text == decoder.decode(lp).text == "hi yo"
    frozen = lp.numpy().astype(">f8")  # big-endian, read-only: as from np.load or frombuffer
    frozen.flags.writeable = False
    assert decoder.decode(frozen).text == "hi yo"
    lp[3, 0] = -math.inf  # probability 0 is a log-prob like any other
    assert decoder.decode(lp).text == "hi yo"
    nan = lp.clone()
    nan[2, 5] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        decoder.decode(nan)
    with pytest.raises(ValueError, match="apply log_softmax"):
        decoder.decode(lp.exp())  # probabilities
    with pytest.raises(TypeError, match="torch tensor or a numpy array"):
        decoder.decode(lp.tolist())


def test_other_ctc_vocabularies() -> None:
    # wav2vec 2.0's layout: <pad> is the blank (column 0), "|" separates words, capitals.
    tokens = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S"]
    vocab = Vocabulary.from_ctc(tokens, blank="<pad>", space="|")
    assert vocab.tokens[0] == "<blank>" and vocab.tokens[4] == " " and vocab.tokens[5] == "e"
    rows = []
    for ch in "__HH_I__||TH_E_SE_":
        row = torch.full((len(tokens),), -9.0)
        row[0 if ch == "_" else tokens.index(ch)] = 0.0
        rows.append(row.log_softmax(-1))
    lp = torch.stack(rows)
    assert GreedyDecoder(vocab).decode(lp).text == "hi these"
    assert BeamSearchDecoder(vocab, hotwords="these").decode(lp).text == "hi these"
    # <s>, </s> and <unk> stand for no text: never emitted, even where they win a frame.
    assert vocab.muted == (1, 2, 3)
    noisy = lp.clone()
    noisy[3, 1] = 0.0  # "<s>" is the best token of one frame (inside "TH")
    noisy[3] = noisy[3].log_softmax(-1)
    for decoder in (GreedyDecoder(vocab), BeamSearchDecoder(vocab)):
        assert "<" not in decoder.decode(noisy).text
    # A frame whose whole mass is on <unk> (np.log of probabilities) reads as a blank.
    probs = lp.exp().numpy()
    probs[8:10] = 0.0
    probs[8:10, 3] = 1.0  # the two "|" frames between the words
    with np.errstate(divide="ignore"):
        logs = np.log(probs)
    for decoder in (GreedyDecoder(vocab), BeamSearchDecoder(vocab)):
        out = decoder.decode(logs)
        assert out.text == "hithese" and math.isfinite(out.score)
    with pytest.raises(ValueError, match="first output column"):
        Vocabulary.from_ctc(["a", "<pad>", "|"], blank="<pad>", space="|")
    with pytest.raises(ValueError, match="word separator"):
        Vocabulary.from_ctc(["<pad>", "a"], space="|")
    with pytest.raises(ValueError, match="collide"):
        Vocabulary.from_ctc(["<pad>", "|", "a", "A"], space="|")
    no_space = Vocabulary(("<blank>", "a", "b"))
    for make in (GreedyDecoder, BeamSearchDecoder):  # said when built, not at the end of a stream
        with pytest.raises(ValueError, match="no space token"):
            make(no_space)


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


def probs_to_logprobs(rows: list[dict[str, float]]) -> torch.Tensor:
    """Frames given as {character: probability}, the rest spread evenly; '_' is blank."""
    out = []
    for row in rows:
        rest = (1.0 - sum(row.values())) / (len(VOCAB) - len(row))
        probs = torch.full((len(VOCAB),), max(rest, 1e-9))
        for ch, p in row.items():
            probs[0 if ch == "_" else VOCAB.tokens.index(ch)] = p
        out.append((probs / probs.sum()).log())
    return torch.stack(out)


def test_beam_search_sums_paths_that_greedy_misses() -> None:
    # Blank wins every frame, but "a" has more probability over all its paths:
    # P("a") = .4*.4 + .4*.6 + .6*.4 = .64 > P("") = .36.
    lp = probs_to_logprobs([{"_": 0.6, "a": 0.4}, {"_": 0.6, "a": 0.4}])
    assert GreedyDecoder(VOCAB).decode(lp).text == ""
    beam = BeamSearchDecoder(VOCAB, beam_size=4)
    hyp = beam.decode(lp)
    assert hyp.text == "a"
    assert math.exp(hyp.score) == pytest.approx(0.64, abs=0.01)
    # A repeated character needs a blank between: "aa" is not "a" held.
    lp = probs_to_logprobs([{"a": 0.9}, {"_": 0.9}, {"a": 0.9}])
    assert beam.decode(lp).text == "aa"
    lp = probs_to_logprobs([{"a": 0.9}, {"a": 0.9}, {"a": 0.9}])
    assert beam.decode(lp).text == "a"


def test_beam_search_agrees_with_greedy_on_peaky_outputs() -> None:
    beam = BeamSearchDecoder(VOCAB, 0.04, beam_size=8)
    hyp = beam.decode(logprobs_for("__yes____ __no_"))
    assert hyp.text == "yes no"
    assert [(w.word, w.start, w.end) for w in hyp.words] == [("yes", 0.08, 0.2), ("no", 0.48, 0.56)]
    assert hyp.words[0].confidence == pytest.approx(0.9)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=9), max_size=20))
def test_beam_pieces_equal_whole(sizes: list[int]) -> None:
    decoder = BeamSearchDecoder(VOCAB, beam_size=6)
    state, start = decoder.start(), 0
    for size in [*sizes, len(PATH)]:
        state = decoder.step(FULL[start : start + size], state)
        start += size
    pieces = decoder.nbest(state, 3)
    whole = decoder.nbest(decoder.step(FULL, decoder.start()), 3)
    assert [(h.text, h.words) for h in pieces] == [(h.text, h.words) for h in whole]
    assert pieces[0].text == "the quick brown fox jumps over the lazy dog"


def test_nbest_is_distinct_and_ordered() -> None:
    lp = probs_to_logprobs([{"c": 0.5, "b": 0.3}, {"a": 0.6, "_": 0.3}, {"t": 0.6, "p": 0.3}])
    nbest = BeamSearchDecoder(VOCAB, beam_size=10).nbest(
        BeamSearchDecoder(VOCAB, beam_size=10).step(lp, BeamSearchDecoder(VOCAB).start()), 4
    )
    texts = [h.text for h in nbest]
    assert len(set(texts)) == len(texts) == 4 and texts[0] == "cat"
    assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
    with pytest.raises(ValueError, match="beam_size"):
        BeamSearchDecoder(VOCAB, beam_size=0)


def _settled_by_text(decoder: BeamSearchDecoder, state) -> int:  # type: ignore[no-untyped-def]
    """settled_words from first principles: the common start of every beam's whole text."""
    texts = [VOCAB.decode(t.token for t in b.token_spans()) for b in state.beams]
    common = texts[0]
    for text in texts[1:]:
        n = 0
        while n < min(len(common), len(text)) and common[n] == text[n]:
            n += 1
        common = common[:n]
    cut = common.rfind(" ")
    return len(common[:cut].split()) if cut > 0 else 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([2, 4, 16]), st.sampled_from([2.0, 4.0, 8.0]))
def test_settled_words_match_the_beams_texts_frame_by_frame(
    seed: int, beam_size: int, sharpness: float
) -> None:
    """Walking each beam back only to where it meets the best one gives the same answer as
    comparing every beam's whole text, at every frame of a stream."""
    generator = torch.Generator().manual_seed(seed)
    # A random path of letters, spaces and blanks, each frame favouring its token by a
    # random margin: some frames are sure (alternatives pruned, words settle), some not.
    path = torch.randint(0, len(VOCAB.tokens), (80,), generator=generator)
    path[torch.rand(80, generator=generator) < 0.2] = VOCAB.space
    logits = torch.randn(80, len(VOCAB.tokens), generator=generator)
    logits[torch.arange(80), path] += sharpness * torch.rand(80, generator=generator) * 2
    logprobs = logits.log_softmax(-1)
    decoder = BeamSearchDecoder(VOCAB, beam_size=beam_size)
    state = decoder.start()
    settled = []
    for frame in range(logprobs.shape[0]):
        state = decoder.step(logprobs[frame : frame + 1], state)
        settled.append(decoder.settled_words(state))
        assert settled[-1] == _settled_by_text(decoder, state)
    assert settled == sorted(settled)  # settled words are final: the count never falls


def _words_by_definition(spans, offset: float) -> tuple[str, list, list]:
    """Text, kept spans and (word, start, end, confidence) of character spans, straight
    from the definition: spaces split words, leading/doubled/trailing spaces are dropped."""
    kept = []
    for t in spans:
        if t.token == VOCAB.space and (not kept or kept[-1].token == VOCAB.space):
            continue
        kept.append(t)
    while kept and kept[-1].token == VOCAB.space:
        kept.pop()
    groups, current = [], []
    for t in [*kept, None]:
        if t is None or t.token == VOCAB.space:
            if current:
                groups.append(current)
            current = []
        else:
            current.append(t)
    words = [
        (
            VOCAB.decode(t.token for t in g),
            round(offset + g[0].first_frame * 0.04, 3),
            round(offset + (g[-1].last_frame + 1) * 0.04, 3),
            round(sum(t.prob for t in g) / len(g), 4),
        )
        for g in groups
    ]
    return " ".join(w[0] for w in words), kept, words


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=40),
    st.sampled_from([0.0, 3.5]),
)
def test_live_hypotheses_equal_the_definition_chunk_by_chunk(
    seed: int, sizes: list[int], offset: float
) -> None:
    """Both decoders group only what changed since the last hypothesis; after every chunk
    of a stream their words, times and texts equal grouping all the spans afresh."""
    generator = torch.Generator().manual_seed(seed)
    path = torch.randint(0, len(VOCAB.tokens), (120,), generator=generator)
    path[torch.rand(120, generator=generator) < 0.25] = VOCAB.space
    path[torch.rand(120, generator=generator) < 0.3] = 0
    logits = torch.randn(120, len(VOCAB.tokens), generator=generator)
    logits[torch.arange(120), path] += 4.0
    logprobs = logits.log_softmax(-1)
    for decoder in (GreedyDecoder(VOCAB), BeamSearchDecoder(VOCAB, beam_size=4)):
        state, start = decoder.start(), 0
        for n, size in enumerate([*sizes, 120]):
            state = decoder.step(logprobs[start : start + size], state)
            start += size
            # Mostly one offset, as a stream asks; now and then another, which must not
            # reuse words timed from the first.
            at = offset + 1.0 if n % 5 == 4 else offset
            hyp = decoder.hypothesis(state, at)
            spans = state.tokens if isinstance(decoder, GreedyDecoder) else state.beams[0].token_spans()
            text, kept, words = _words_by_definition(spans, at)
            assert hyp.text == text and list(hyp.tokens) == kept
            assert [(w.word, w.start, w.end, w.confidence) for w in hyp.words] == words
            if start >= 120:
                break
        if isinstance(decoder, BeamSearchDecoder):
            assert len(state.grouped) <= GROUPED_CACHE
        # The end of the stream goes through the same grouped words.
        fresh = decoder.step(logprobs, decoder.start())
        ended, whole = decoder.finish(state, offset), decoder.finish(fresh, offset)
        assert (ended.text, ended.tokens, ended.words) == (whole.text, whole.tokens, whole.words)


def test_settled_words_are_shared_by_every_strong_beam() -> None:
    decoder = BeamSearchDecoder(VOCAB, beam_size=8)
    # With near-certain frames the alternatives are pruned and "go" is settled.
    state = decoder.step(logprobs_for("__go_ _ho", 0.999), decoder.start())
    assert decoder.hypothesis(state).text == "go ho"
    assert decoder.settled_words(state) == 1
    # "go" or "ga" (0.55 against 0.4: 0.3 nats apart): nothing is settled, both stay.
    close = spelled("go ho", {1: {"o": 0.55, "a": 0.4}})
    state = decoder.step(close, decoder.start())
    assert decoder.hypothesis(state).text == "go ho" and decoder.settled_words(state) == 0
    assert any(b.spans and "ga" in decoder.hypothesis(BeamState(beams=[b])).text for b in state.beams)
    # "go" or, far weaker, "ga" (0.9 against 0.09: 2.3 nats, beyond COMMIT_MARGIN but
    # within the beam's 5): "go" is settled and the beams that spell "ga" are dropped, so
    # the settled word can never change.
    far = spelled("go ho", {1: {"o": 0.9, "a": 0.09}})
    state = decoder.step(far, decoder.start())
    kept = [decoder.hypothesis(BeamState(beams=[b])).text for b in state.beams]
    assert any(t.startswith("ga") for t in kept)  # alive before the commit
    assert decoder.settled_words(state) == 1
    assert all(decoder.hypothesis(BeamState(beams=[b])).text.startswith("go ") for b in state.beams)
    # With a lexicon the wide beams stay whole: only words every beam shares settle.
    lexical = BeamSearchDecoder(VOCAB, beam_size=8, lexicon=["go", "ga", "ho"])
    state = lexical.step(far, lexical.start())
    assert lexical.settled_words(state) == 0
    greedy = GreedyDecoder(VOCAB)
    assert greedy.settled_words(greedy.step(logprobs_for("__go_ _ho"), greedy.start())) == 1
    assert greedy.settled_words(greedy.step(logprobs_for("__go_ "), greedy.start())) == 1


def spelled(text: str, doubt: dict[int, dict[str, float]] | None = None) -> torch.Tensor:
    """Log-probs that spell ``text`` one character per frame with blanks between; frame
    ``i`` of ``doubt`` replaces that character's frame with the given distribution."""
    rows: list[dict[str, float]] = [{"_": 0.95}]
    for i, ch in enumerate(text):
        rows.append((doubt or {}).get(i, {ch: 0.95}))
        rows.append({"_": 0.95})
    return probs_to_logprobs(rows)


def tiny_lm(tmp_path, sentences: list[str]):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import build_lm

    from asr.lm import load_lm

    path = str(tmp_path / "lm.arpa")
    build_lm.write_arpa(build_lm.estimate([s.split() for s in sentences * 5], order=3), path)
    return load_lm(path)


TEXT = ["the cat sat on the mat", "a cat ate the fish", "the dog sat", "turn on the lights", "the red car"]


def test_lm_fusion_picks_the_likely_word(tmp_path) -> None:
    # Acoustically "cut" is a little more likely than "cat"; the LM knows "the cat sat".
    lp = spelled("the cat sat", {5: {"u": 0.5, "a": 0.45}})
    assert BeamSearchDecoder(VOCAB, beam_size=8).decode(lp).text == "the cut sat"
    lm = tiny_lm(tmp_path, TEXT)
    with_lm = BeamSearchDecoder(VOCAB, beam_size=8, lm=lm, lm_weight=1.0, word_bonus=0.0)
    hyp = with_lm.decode(lp)
    assert hyp.text == "the cat sat"
    assert [w.word for w in hyp.words] == ["the", "cat", "sat"]
    # The score is the acoustic log-prob plus the weighted LM log-prob of the sentence
    # (up to the mass of alignments that the two searches pruned differently).
    plain = BeamSearchDecoder(VOCAB, beam_size=8)
    acoustic = next(h for h in plain.nbest(plain.step(lp, plain.start()), 5) if h.text == "the cat sat").score
    expected = acoustic + lm.sentence_log10(["the", "cat", "sat"]) * math.log(10)
    assert hyp.score == pytest.approx(expected, abs=0.05)


def test_lexicon_restricts_words(tmp_path) -> None:
    lp = spelled("hellp world", {4: {"p": 0.6, "o": 0.35}})
    assert BeamSearchDecoder(VOCAB, beam_size=8).decode(lp).text == "hellp world"
    decoder = BeamSearchDecoder(VOCAB, beam_size=8, lexicon=["hello", "world", "word"])
    assert decoder.decode(lp).text == "hello world"
    # Nothing in the lexicon fits: the decoder still answers, with listed words only.
    for lexicon in (["zebra"], ["hello", "zebra"], ["world"]):
        text = BeamSearchDecoder(VOCAB, lexicon=lexicon).decode(lp).text
        assert set(text.split()) <= set(lexicon), (lexicon, text)
    # An open word the lexicon cannot finish is cut, not printed half-spelled. (With the
    # lexicon's wide default pruning the search reaches "worlds" through an unlikely "s";
    # narrow pruning leaves it stuck at "world".)
    wide = BeamSearchDecoder(VOCAB, beam_size=8, lexicon=["hello", "worlds"]).decode(lp).text
    assert wide == "hello worlds", wide
    cut = BeamSearchDecoder(VOCAB, beam_size=8, lexicon=["hello", "worlds"], token_prune=5, beam_prune=5)
    assert cut.decode(lp).text == "hello"


def test_lexicon_reaches_a_listed_word_the_model_spelled_otherwise() -> None:
    """The model is sure of "zes" (every other character about 8 nats below): an open
    search keeps what it heard; a closed vocabulary must still find "yes", which the
    default pruning widths would never try."""
    from asr.decoding import DEFAULT_BEAM_PRUNE, DEFAULT_TOKEN_PRUNE

    lp = logprobs_for("__zes__", confident=0.99)
    assert math.log(0.01 / (len(VOCAB) - 1)) == pytest.approx(-7.94, abs=0.01)
    assert BeamSearchDecoder(VOCAB).decode(lp).text == "zes"
    assert BeamSearchDecoder(VOCAB, lexicon=["yes", "no"]).decode(lp).text == "yes"
    narrow = BeamSearchDecoder(
        VOCAB, lexicon=["yes", "no"], token_prune=DEFAULT_TOKEN_PRUNE, beam_prune=DEFAULT_BEAM_PRUNE
    )
    assert narrow.decode(lp).text == ""


def test_hotword_recovers_a_rare_word(tmp_path) -> None:
    # "zark" is acoustically a bit less likely than "dark", and the LM has never seen it.
    lp = spelled("the zark car", {4: {"d": 0.55, "z": 0.4}})
    lm = tiny_lm(tmp_path, [*TEXT, "the dark car"])
    plain = BeamSearchDecoder(VOCAB, beam_size=8, lm=lm)
    assert plain.decode(lp).text == "the dark car"
    boosted = BeamSearchDecoder(VOCAB, beam_size=8, lm=lm, hotwords={"zark": 4.0})
    assert boosted.decode(lp).text == "the zark car"
    # Phrases and "WORD:BOOST" specs; the boost only counts for the whole phrase.
    phrase = BeamSearchDecoder(VOCAB, beam_size=8, hotwords=["zark car:3"])
    assert phrase.decode(lp).text == "the zark car"
    assert BeamSearchDecoder(VOCAB, beam_size=8, hotwords=["zark cat:3"]).decode(lp).text == "the dark car"
    # One string is one spec, not a list of single letters to boost.
    assert BeamSearchDecoder(VOCAB, beam_size=8, hotwords="zark car:3").decode(lp).text == "the zark car"


def test_hotword_specs() -> None:
    from asr.decoding import DEFAULT_HOTWORD_BOOST, parse_hotword

    assert parse_hotword("Kubernetes") == ("kubernetes", DEFAULT_HOTWORD_BOOST)
    assert parse_hotword("New York:2.5") == ("new york", 2.5)
    with pytest.raises(ValueError, match="must be a number"):
        parse_hotword("word:lots")
    with pytest.raises(ValueError, match="no letters"):
        parse_hotword("?!:3")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=9), max_size=20))
def test_lm_beam_pieces_equal_whole(tmp_path_factory, sizes: list[int]) -> None:
    lm = _LM.get("lm") or _LM.setdefault("lm", tiny_lm(tmp_path_factory.mktemp("lm"), TEXT))
    decoder = BeamSearchDecoder(VOCAB, beam_size=6, lm=lm, hotwords={"the cat": 2.0})
    lp = spelled("turn on the cat sat", {1: {"u": 0.5, "o": 0.4}, 13: {"a": 0.5, "u": 0.4}})
    state, start = decoder.start(), 0
    for size in [*sizes, lp.shape[0]]:
        state = decoder.step(lp[start : start + size], state)
        start += size
    pieces = decoder.nbest(state, 3)
    whole = decoder.nbest(decoder.step(lp, decoder.start()), 3)
    assert [(h.text, h.words, round(h.score, 6)) for h in pieces] == [
        (h.text, h.words, round(h.score, 6)) for h in whole
    ]


_LM: dict = {}


def test_each_decoder_uses_its_own_calibration() -> None:
    from asr.checkpoint import Bundle
    from asr.features import FeatureConfig
    from asr.model import AcousticModel, ModelConfig
    from asr.streaming import DecoderOptions, make_decoder

    model = AcousticModel(ModelConfig(hidden=16, layers=1, conv_channels=2))
    beam_options = DecoderOptions(decoder="beam", lm=None)
    greedy, beam = [1.0, 0.5, 0.1], [2.0, 0.25, 0.3]
    bundle = Bundle(model, VOCAB, FeatureConfig(), {"confidence": greedy})
    assert list(make_decoder(bundle, beam_options).confidence) == greedy  # falls back to the greedy fit
    bundle.metadata["confidence_beam"] = beam
    assert list(make_decoder(bundle, beam_options).confidence) == beam
    assert list(make_decoder(bundle, "greedy").confidence) == greedy
    assert make_decoder(Bundle(model, VOCAB, FeatureConfig()), beam_options).confidence is None


def test_calibrated_confidence() -> None:
    from asr.decoding import word_confidence

    assert word_confidence([0.9, 0.5]) == pytest.approx(0.7)
    # sigmoid(a * mean log + b * min log + c)
    logs = [math.log(0.9), math.log(0.5)]
    z = 2.0 * sum(logs) / 2 + 1.0 * min(logs) + 0.5
    assert word_confidence([0.9, 0.5], (2.0, 1.0, 0.5)) == pytest.approx(1 / (1 + math.exp(-z)))
    hyp = GreedyDecoder(VOCAB, confidence=(2.0, 1.0, 0.5)).decode(logprobs_for("_go_", 0.9))
    z = 2.0 * math.log(0.9) + math.log(0.9) + 0.5
    assert hyp.words[0].confidence == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-4)


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"lm_weight": math.nan}, "lm_weight must be a number >= 0, got nan"),
        ({"lm_weight": -1.0}, "lm_weight must be a number >= 0"),
        ({"word_bonus": math.inf}, "word_bonus must be a finite number, got inf"),
        ({"token_prune": -2.0}, "token_prune must be a number >= 0"),
    ],
)
def test_beam_search_refuses_settings_that_would_empty_every_hypothesis(
    settings_: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BeamSearchDecoder(VOCAB, **settings_)


def test_a_state_changed_by_hand_or_read_by_another_decoder_is_grouped_afresh() -> None:
    decoder = GreedyDecoder(VOCAB)
    state = decoder.step(logprobs_for("__go_ _ho_me _"), decoder.start())
    assert decoder.hypothesis(state).text == "go home"
    state.tokens.clear()  # reused by hand: the grouped words belong to the old spans
    state = decoder.step(logprobs_for("_abc_ _def_ _gh"), state)
    assert decoder.hypothesis(state).text == "abc def gh"
    # Another decoder's confidence calibration gives other confidences for the same spans.
    calibrated = GreedyDecoder(VOCAB, confidence=(1.0, 0.0, 2.0))
    assert calibrated.hypothesis(state).words != decoder.hypothesis(state).words
    untouched = GreedyState(state.frames, state.last, state.score, list(state.tokens))
    assert calibrated.hypothesis(state).words == calibrated.hypothesis(untouched).words


def test_the_beam_cache_stays_small_over_a_long_stream() -> None:
    decoder = BeamSearchDecoder(VOCAB, beam_size=4)
    state = decoder.start()
    for _ in range(GROUPED_CACHE * 3):
        state = decoder.step(logprobs_for("_go_ "), state)
        decoder.hypothesis(state)
    assert len(state.grouped) == GROUPED_CACHE
    assert decoder.hypothesis(state).text == " ".join(["go"] * GROUPED_CACHE * 3)


def test_multi_character_tokens_decode_but_refuse_lm_lexicon_and_hotwords() -> None:
    tokens = ["<pad>", "|", "he", "llo", "wor", "ld"]
    vocab = Vocabulary.from_ctc(tokens, blank="<pad>", space="|")
    rows = []
    for piece in ["he", "llo", "|", "wor", "ld"]:
        row = torch.full((len(tokens),), -9.0)
        row[tokens.index(piece)] = 0.0
        rows.append(row.log_softmax(-1))
    lp = torch.stack(rows)
    assert GreedyDecoder(vocab).decode(lp).text == "hello world"
    assert BeamSearchDecoder(vocab).decode(lp).text == "hello world"
    for extra in ({"lexicon": ("hello", "world")}, {"hotwords": "hello"}):
        with pytest.raises(ValueError, match="one-character tokens"):
            BeamSearchDecoder(vocab, **extra)
