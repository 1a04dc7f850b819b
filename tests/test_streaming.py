"""Recognizer and Stream: chunking invariance, endpoints, batching, input checks, memory."""

import itertools
import warnings

import numpy as np
import pytest
import torch
from conftest import tiny_config
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.checkpoint import Bundle
from asr.features import FeatureConfig
from asr.model import AcousticModel
from asr.streaming import EndpointConfig, Recognizer, Stream, transcribe
from asr.text import Vocabulary

VOCAB = Vocabulary()
RNG = np.random.default_rng(0)
AUDIO = (0.1 * RNG.standard_normal(16000 * 3)).astype(np.float32)


def bundle() -> Bundle:
    torch.manual_seed(3)
    return Bundle(AcousticModel(tiny_config()).eval(), VOCAB, FeatureConfig())


BUNDLE = bundle()
# Short utterances, so that the random model's output is cut into several of them.
CUT = EndpointConfig(max_utterance=0.6)


def feed(stream: Stream, audio: np.ndarray, sizes: list[int]) -> list:
    finals, start = [], 0
    for size in [*sizes, len(audio)]:
        for event in stream.accept_waveform(audio[start : start + size], 16000):
            if event.kind == "final":
                finals.append(event.result)
        start += size
        if start >= len(audio):
            break
    return [*finals, stream.finish()]


WHOLE = feed(Recognizer(BUNDLE, CUT).stream(), AUDIO, [])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), max_size=40))
def test_any_chunking_gives_the_same_finals(sizes: list[int]) -> None:
    finals = feed(Recognizer(BUNDLE, CUT).stream(), AUDIO, sizes)
    assert [(r.text, r.start, r.words) for r in finals] == [(r.text, r.start, r.words) for r in WHOLE]


def test_finals_cover_the_offline_transcript() -> None:
    assert len(WHOLE) >= 4  # 3 s in utterances of at most 0.6 s
    assert [r.start for r in WHOLE[:4]] == pytest.approx([0.0, 0.6, 1.2, 1.8])
    # Without cuts, the stream's one final is exactly the offline transcript.
    (only,) = feed(Recognizer(BUNDLE, EndpointConfig(max_utterance=100)).stream(), AUDIO, [123, 4567])
    offline = transcribe(AUDIO, BUNDLE)
    assert only.text == offline.text and only.words == offline.words


def test_one_sample_at_a_time() -> None:
    stream = Recognizer(BUNDLE, CUT).stream()
    finals = []
    for sample in AUDIO[:8000]:
        finals += [e.result.text for e in stream.accept_waveform(sample[None], 16000) if e.kind == "final"]
    finals.append(stream.finish().text)
    expected = feed(Recognizer(BUNDLE, CUT).stream(), AUDIO[:8000], [])
    assert finals == [r.text for r in expected]


def test_batched_streams_equal_single_streams() -> None:
    rec = Recognizer(BUNDLE, CUT)
    signals = [AUDIO, AUDIO[::-1].copy(), 0.5 * AUDIO[:30000]]
    streams = [rec.stream() for _ in signals]
    finals: list[list[str]] = [[] for _ in signals]
    for start in range(0, len(AUDIO), 2400):
        for s, signal in zip(streams, signals, strict=True):
            s.accept_waveform(signal[start : start + 2400], 16000, decode=False)
        for i, events in enumerate(rec.decode_streams(streams)):
            finals[i] += [e.result.text for e in events if e.kind == "final"]
    for i, s in enumerate(streams):
        finals[i].append(s.finish().text)
        alone = feed(Recognizer(BUNDLE, CUT).stream(), signals[i], [])
        assert finals[i] == [r.text for r in alone]


def logprobs(path: str) -> torch.Tensor:
    """One-hot-ish log-probs spelling ``path``: '_' is blank."""
    out = torch.full((len(path), len(VOCAB)), -10.0)
    for i, ch in enumerate(path):
        out[i, 0 if ch == "_" else VOCAB.tokens.index(ch)] = 0.0
    return out


def consume(path: str, endpoint: EndpointConfig, pieces: int = 1) -> list[tuple[str, float]]:
    stream = Recognizer(BUNDLE, endpoint).stream()
    lp, events = logprobs(path), []
    for chunk in torch.tensor_split(lp, pieces):
        events += stream._consume(chunk)
    return [(e.result.text, e.result.start) for e in events if e.kind == "final"]


# 40 ms frames: 20 blank frames are 0.8 s of silence.
SPEECH = "__hi " + "_" * 19 + "yo" + "_" * 25 + "ok" + "_" * 5


@pytest.mark.parametrize("pieces", [1, 3, 7, len(SPEECH)])
def test_endpoint_after_trailing_silence(pieces: int) -> None:
    # "hi " then 19 blanks (0.76 s): no endpoint yet; "yo" then 20 blanks: endpoint at
    # frame 45.
    rule = EndpointConfig(silence_after_speech=0.8)
    assert consume(SPEECH, rule, pieces) == [("hi yo", 0.0)]
    # The next utterance starts right after the endpoint frame.
    assert consume(SPEECH + "_" * 30, rule) == [("hi yo", 0.0), ("ok", pytest.approx(46 * 0.04))]


def test_silence_without_speech_and_max_length() -> None:
    rule = EndpointConfig(silence_without_speech=0.4, max_utterance=100)
    stream = Recognizer(BUNDLE, rule).stream()
    stream._consume(logprobs("_" * 25 + "go"))
    # 10 silent frames restart the empty utterance twice; "go" starts at frame 20.
    assert stream.result().start == pytest.approx(20 * 0.04)
    rule = EndpointConfig(max_utterance=0.2)  # 5 frames
    assert consume("abcdefghijkl", rule) == [("abcde", 0.0), ("fghij", 0.2)]


def test_committed_text_never_changes() -> None:
    stream = Recognizer(BUNDLE, EndpointConfig(silence_after_speech=100, max_utterance=100)).stream()
    seen = []
    for i in range(len(SPEECH)):
        stream._consume(logprobs(SPEECH[i : i + 1]))
        seen.append(stream.result())
    for before, after in itertools.pairwise(seen):
        assert after.committed.startswith(before.committed)
    assert seen[3].unstable == "hi" and seen[3].committed == ""
    assert seen[4].committed == "hi" and seen[4].unstable == ""
    assert seen[26].committed == "hi" and seen[26].unstable == "yo"


@pytest.mark.parametrize(
    ("chunk", "rate", "message"),
    [
        (np.zeros((10, 2), np.float32), 16000, "shape"),
        (np.zeros(10, np.uint8), 16000, "uint8"),
        (np.array([0.0, np.nan], np.float32), 16000, "NaN"),
        (np.zeros(10, np.float32), 0, "sample_rate"),
        (np.zeros(10, np.float32), 16000.5, "sample_rate"),
        (np.zeros(10, np.float32), 1, "sample_rate must be 4000-768000 Hz"),
    ],
)
def test_bad_chunks_raise_value_error(chunk, rate, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recognizer(BUNDLE).stream().accept_waveform(chunk, rate)


def test_chunks_may_be_tensors_and_other_types_are_type_errors() -> None:
    as_tensor = feed(Recognizer(BUNDLE, CUT).stream(), torch.from_numpy(AUDIO), [])
    assert [r.text for r in as_tensor] == [r.text for r in WHOLE]
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        Recognizer(BUNDLE).stream().accept_waveform([0.0, 0.1], 16000)  # type: ignore[arg-type]
    stream = Recognizer(BUNDLE).stream()
    stream.accept_waveform(AUDIO[:1600], 16000.0)  # a whole number of Hz as a float


def test_a_rate_change_mid_stream_loses_no_audio() -> None:
    from asr.audio import resample

    # 1 s at 8 kHz, 1 s at 16 kHz, 1 s at 8 kHz again: 3 s of stream, none of it dropped
    # in the resampler's filter when the rate changes.
    stream = Recognizer(BUNDLE, EndpointConfig(max_utterance=100)).stream()
    low = resample(AUDIO[:16000], 16000, 8000)
    stream.accept_waveform(low, 8000)
    stream.accept_waveform(AUDIO[16000:32000], 16000)
    stream.accept_waveform(resample(AUDIO[32000:], 16000, 8000), 8000)
    assert stream.finish().duration == pytest.approx(3.0, abs=0.01)
    assert stream.samples == 0  # reset by finish
    stream.accept_waveform(low, 8000)
    stream.accept_waveform(AUDIO[16000:17600], 16000)
    assert stream.samples == pytest.approx(17600, abs=2)


def test_endpoint_rules_must_be_positive() -> None:
    import math

    EndpointConfig(max_utterance=math.inf)  # a rule turned off
    EndpointConfig(max_utterance=np.float32(5.0))
    for bad in (0, -1, math.nan, "1", True):
        with pytest.raises(ValueError, match="positive number of seconds"):
            EndpointConfig(silence_after_speech=bad)  # type: ignore[arg-type]


def test_finals_carry_their_nbest_lists() -> None:
    from asr.streaming import DecoderOptions

    rec = Recognizer(BUNDLE, CUT, decoder=DecoderOptions("beam", lm=None, nbest=3))
    finals = feed(rec.stream(), AUDIO, [4000])
    for result in finals:
        assert 1 <= len(result.nbest) <= 3 and result.nbest[0][0] == result.text
        assert sum(p for _, p in result.nbest) == pytest.approx(1.0, abs=1e-3)
    plain = feed(Recognizer(BUNDLE, CUT, decoder="beam").stream(), AUDIO, [4000])
    assert all(r.nbest == () for r in plain)
    # A string of hotwords is one hotword, not a sequence of letters.
    assert DecoderOptions("beam", hotwords="door:2").hotwords == ("door:2",)


def test_other_sample_rates_are_resampled() -> None:
    from asr.audio import resample

    audio_8k = resample(AUDIO, 16000, 8000)
    stream = Recognizer(BUNDLE, EndpointConfig(max_utterance=100)).stream()
    for start in range(0, len(audio_8k), 777):
        stream.accept_waveform(audio_8k[start : start + 777], 8000)
    # The resampler's delayed tail is flushed at the end: all 3 s are decoded.
    assert stream.finish().duration == pytest.approx(3.0, abs=0.05)
    pcm = (AUDIO * 32767).astype(np.int16)
    ints = feed(Recognizer(BUNDLE, CUT).stream(), pcm, [1000, 3000])
    assert [r.text for r in ints] == [r.text for r in WHOLE]


def test_memory_stays_flat_on_a_long_stream() -> None:
    stream = Recognizer(BUNDLE, EndpointConfig(max_utterance=2.0)).stream()
    minute = (0.1 * RNG.standard_normal(16000 * 60)).astype(np.float32)
    finals = 0
    for _ in range(3):
        for start in range(0, len(minute), 16000):
            finals += sum(e.kind == "final" for e in stream.accept_waveform(minute[start : start + 16000]))
            assert stream._pending.shape[0] < 8
            assert len(stream._utt.decoded.tokens) <= 50  # at most 2 s of characters
    assert finals >= 80


def test_whole_utterance_bidirectional_models_cannot_stream() -> None:
    bi = Bundle(AcousticModel(tiny_config(bidirectional=True)), VOCAB, FeatureConfig())
    with pytest.raises(ValueError, match="cannot stream"):
        Recognizer(bi)


def test_latency_controlled_model_streams_like_offline() -> None:
    torch.manual_seed(4)
    model = AcousticModel(tiny_config(bidirectional=True, chunk_frames=4, lookahead_frames=3)).eval()
    lc = Bundle(model, VOCAB, FeatureConfig())
    rule = EndpointConfig(max_utterance=100)
    offline = transcribe(AUDIO, lc)
    for sizes in ([], [1, 2, 3, 500, 1601], [1600] * 40):
        (final,) = feed(Recognizer(lc, rule).stream(), AUDIO, sizes)
        assert (final.text, final.words) == (offline.text, offline.words)
    assert offline.text


def test_beam_search_streams_with_committed_text_that_holds() -> None:
    rec = Recognizer(BUNDLE, EndpointConfig(max_utterance=100), decoder="beam", beam_size=4)
    offline = transcribe(AUDIO, BUNDLE, decoder="beam", beam_size=4)
    stream = rec.stream()
    committed = ""
    for start in range(0, len(AUDIO), 1000):
        for event in stream.accept_waveform(AUDIO[start : start + 1000]):
            assert event.result.committed.startswith(committed)
            committed = event.result.committed
    final = stream.finish()
    assert final.text == offline.text and final.text.startswith(committed)
    with pytest.raises(ValueError, match="unknown decoder"):
        Recognizer(BUNDLE, decoder="viterbi")


def test_finish_keeps_utterances_that_end_in_the_flush() -> None:
    stream = Recognizer(BUNDLE, CUT).stream()
    assert stream.accept_waveform(AUDIO, 16000, decode=False) == []
    rest = stream.finish()  # every endpoint falls inside the flush
    assert rest.text == " ".join(r.text for r in WHOLE if r.text)
    assert rest.start == 0.0 and rest.words == tuple(w for r in WHOLE for w in r.words)


def test_numpy_integer_rates_are_accepted_and_bools_are_not() -> None:
    stream = Recognizer(BUNDLE).stream()
    stream.accept_waveform(AUDIO[:1600], np.int64(16000))
    with pytest.raises(ValueError, match="sample_rate"):
        stream.accept_waveform(AUDIO[:1600], True)
    with pytest.raises(ValueError, match="sample_rate"):
        transcribe(AUDIO, BUNDLE, sample_rate=0)


def test_a_stream_reused_after_finish_resamples_afresh() -> None:
    from asr.audio import resample

    audio_8k = resample(AUDIO, 16000, 8000)
    rec = Recognizer(BUNDLE, EndpointConfig(max_utterance=100))
    stream = rec.stream()
    stream.accept_waveform(audio_8k, 8000)
    first = stream.finish()
    stream.accept_waveform(audio_8k, 8000)  # the same stream, a new signal
    again = stream.finish()
    assert (again.text, again.words, again.duration) == (first.text, first.words, first.duration)


def test_whole_arrays_may_have_channels_like_files(tmp_path) -> None:
    import soundfile as sf

    from asr.audio import resample
    from asr.streaming import compute_logprobs, transcribe_stream

    left = resample(AUDIO, 16000, 44100)
    stereo = np.stack([left, 0.5 * left[::-1]], axis=1)  # (samples, channels), as soundfile reads
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    data, rate = sf.read(path, dtype="float32")
    from_file = compute_logprobs(path, BUNDLE)
    assert torch.equal(compute_logprobs(data, BUNDLE, sample_rate=rate), from_file)
    assert transcribe(data, BUNDLE, sample_rate=rate) == transcribe(path, BUNDLE)
    pcm, _ = sf.read(path, dtype="int16")
    assert transcribe(pcm, BUNDLE, sample_rate=rate).duration == pytest.approx(3.0, abs=0.01)
    rec = Recognizer(BUNDLE, EndpointConfig(max_utterance=100))
    assert transcribe_stream(data, rec, sample_rate=rate).text == transcribe_stream(path, rec).text
    # (channels, samples), the torch layout, is refused rather than read as many channels.
    with pytest.raises(ValueError, match=r"\(channels, samples\)"):
        transcribe(data.T, BUNDLE, sample_rate=rate)
    # A stream's chunks stay mono: a short 2-D chunk's layout is ambiguous.
    with pytest.raises(ValueError, match=r"mono.*mean"):
        rec.stream().accept_waveform(data[:4410], rate)


def test_transcribe_says_what_it_cannot_take(tmp_path) -> None:
    import soundfile as sf

    with pytest.raises(TypeError, match=r"file path or a numpy array of samples, got list; pass np.asarray"):
        transcribe([0.0] * 1600, BUNDLE)  # type: ignore[arg-type]
    path = tmp_path / "a.wav"
    sf.write(path, AUDIO, 16000)
    with pytest.raises(ValueError, match=r"sample_rate=8000, but .*a\.wav is at 16000 Hz"):
        transcribe(path, BUNDLE, sample_rate=8000)
    # The file's own rate, given, is fine (wrappers that always pass a rate keep working).
    assert transcribe(path, BUNDLE, sample_rate=16000).words == transcribe(AUDIO, BUNDLE).words


def test_a_tensor_transcribes_as_its_array() -> None:
    assert transcribe(torch.from_numpy(AUDIO), BUNDLE).words == transcribe(AUDIO, BUNDLE).words


def test_float_audio_far_beyond_full_scale_warns() -> None:
    with pytest.warns(UserWarning, match="int16 values as floats"):
        transcribe(AUDIO * 32768, BUNDLE)
    stream = Recognizer(BUNDLE).stream()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stream.accept_waveform(AUDIO[:1600] * 1.5)  # loud, not wrongly scaled: no warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for i in range(5):  # a stream of wrongly scaled chunks warns once, not per chunk
            stream.accept_waveform(AUDIO[i * 1600 : (i + 1) * 1600] * 32768)
    assert len(caught) == 1


def test_decoder_options_take_lists_and_sets_and_check_numbers_when_made(tmp_path) -> None:
    from asr.streaming import DecoderOptions

    listed = DecoderOptions("beam", lm=None, hotwords=["door", "open:2"], lexicon=["yes", "no"])
    assert listed.hotwords == ("door", "open:2") and listed.lexicon == ("yes", "no")
    assert DecoderOptions("beam", lm=None, lexicon={"no", "yes"}).lexicon == ("no", "yes")
    assert DecoderOptions("beam", lm="none").lm is None  # as the CLI and the server say it
    # Hashable, so a list is as good as a tuple to the recognizer's decoder cache.
    text = transcribe(AUDIO, BUNDLE, decoder=listed).text
    assert set(text.split()) <= {"yes", "no", "door", "open"}  # hotwords join the lexicon
    for bad, message in (
        ({"beam_size": -3}, "beam_size"),
        ({"beam_size": 2.5}, "beam_size"),
        ({"lm_weight": -1}, "lm_weight"),
        ({"word_bonus": float("nan")}, "word_bonus"),
        ({"nbest": 2.5}, "nbest"),
    ):
        with pytest.raises(ValueError, match=message):
            DecoderOptions("beam", **bad)
    swept = DecoderOptions("beam", beam_size=np.int64(4), lm_weight=np.float32(0.5), word_bonus=np.float64(1))
    assert (swept.beam_size, swept.lm_weight, swept.word_bonus) == (4, 0.5, 1.0)  # np.arange sweeps
    assert type(swept.beam_size) is int and type(swept.lm_weight) is float
    with pytest.raises(TypeError, match="hotwords must be strings"):
        DecoderOptions("beam", hotwords=[3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="inside DecoderOptions"):
        Recognizer(BUNDLE, decoder=DecoderOptions("beam", lm=None), beam_size=2)
    assert Recognizer(BUNDLE, decoder=DecoderOptions("beam", lm=None, beam_size=2)).decoder.beam_size == 2


def test_decode_streams_refuses_a_stream_twice_or_another_recognizers() -> None:
    rec = Recognizer(BUNDLE, CUT)
    stream = rec.stream()
    stream.accept_waveform(AUDIO, 16000, decode=False)
    with pytest.raises(ValueError, match="listed twice"):
        rec.decode_streams([stream, stream])
    with pytest.raises(ValueError, match="another model or chunk size"):
        Recognizer(bundle(), CUT).decode_streams([stream])
    with pytest.raises(ValueError, match="another model or chunk size"):
        Recognizer(BUNDLE, CUT, chunk_frames=16).decode_streams([stream])
    # The refused calls decoded nothing: the stream still gives what it gives alone.
    finals = [e.result for e in rec.decode_streams([stream])[0] if e.kind == "final"]
    assert [r.text for r in [*finals, stream.finish()]] == [r.text for r in WHOLE]


def test_chunk_frames_must_be_whole() -> None:
    with pytest.raises(ValueError, match="whole multiple of 4"):
        Recognizer(BUNDLE, chunk_frames=4.0)  # type: ignore[arg-type]
    assert Recognizer(BUNDLE, chunk_frames=np.int64(8)).chunk_frames == 8


def test_half_precision_tensors_and_bytes() -> None:
    stream = Recognizer(BUNDLE).stream()
    stream.accept_waveform(torch.from_numpy(AUDIO[:1600]).to(torch.bfloat16), 16000)
    with pytest.raises(TypeError, match=r"np\.frombuffer\(data, np\.int16\)"):
        stream.accept_waveform(b"\x00\x01" * 800, 16000)  # type: ignore[arg-type]


def test_recognizers_made_at_once_read_the_lm_once(tmp_path, monkeypatch) -> None:
    import threading
    import time

    import asr.streaming as streaming
    from asr.streaming import DecoderOptions

    arpa = tmp_path / "tiny.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0 <s>\n-0.5 yes\n-0.5 </s>\n\n\\end\\\n", encoding="utf-8"
    )
    loads = []
    real = streaming.load_lm

    def counting(path):
        loads.append(path)
        time.sleep(0.2)  # a real LM takes about a second: long enough for the others to ask too
        return real(path)

    monkeypatch.setattr(streaming, "load_lm", counting)
    streaming._cached_lm.cache_clear()
    barrier = threading.Barrier(6)

    def make(i: int) -> None:
        barrier.wait()
        Recognizer(BUNDLE, decoder=DecoderOptions("beam", lm=str(arpa), hotwords=(f"word{i}",)))

    threads = [threading.Thread(target=make, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
