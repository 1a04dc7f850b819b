import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.features import FeatureConfig, StreamingFeatures, log_mel, num_frames

RNG = np.random.default_rng(0)
SIGNAL = (0.1 * RNG.standard_normal(8123)).astype(np.float32)
WHOLE = log_mel(SIGNAL)


def split(signal: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    chunks, start = [], 0
    for size in sizes:
        chunks.append(signal[start : start + size])
        start += size
    chunks.append(signal[start:])
    return chunks


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1500), max_size=30))
def test_any_chunking_gives_whole_file_frames(sizes: list[int]) -> None:
    stream = StreamingFeatures()
    parts = [stream.accept(chunk) for chunk in split(SIGNAL, sizes)]
    parts.append(stream.finish())
    frames = torch.cat(parts)
    assert frames.shape == WHOLE.shape
    assert float((frames - WHOLE).abs().max()) <= 1e-5


def test_one_sample_at_a_time() -> None:
    stream = StreamingFeatures()
    parts = [stream.accept(SIGNAL[i : i + 1]) for i in range(2000)]
    parts.append(stream.accept(SIGNAL[2000:]))
    parts.append(stream.finish())
    assert float((torch.cat(parts) - WHOLE).abs().max()) <= 1e-5


def test_frame_count_and_shape() -> None:
    cfg = FeatureConfig()
    assert WHOLE.shape == (num_frames(len(SIGNAL)), cfg.n_mels)
    assert num_frames(160) == 1 and num_frames(161) == 2 and num_frames(0) == 0
    assert log_mel(np.zeros(0, np.float32)).shape == (0, 80)
    # Frames are ready as soon as their 10 ms hop has arrived.
    stream = StreamingFeatures()
    assert stream.accept(np.zeros(159)).shape[0] == 0
    assert stream.accept(np.zeros(1)).shape[0] == 1


def test_frames_track_the_signal() -> None:
    # A 1 kHz tone lights up the same mel bin in every frame; 50x the amplitude is
    # 2500x the power, ln(2500) more in the log-mel.
    t = np.arange(16000) / 16000
    quiet = log_mel(0.01 * np.sin(2 * np.pi * 1000 * t))
    loud = log_mel(0.5 * np.sin(2 * np.pi * 1000 * t))
    bins = quiet[5:-5].argmax(dim=1)
    assert bool((bins == bins[0]).all())
    assert float((loud - quiet)[5:-5, bins[0]].mean()) == pytest.approx(2 * np.log(50), rel=0.05)


def test_config_round_trip() -> None:
    cfg = FeatureConfig(n_mels=40)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    assert log_mel(SIGNAL, cfg).shape[1] == 40


def test_reset_starts_a_new_signal() -> None:
    stream = StreamingFeatures()
    stream.accept(RNG.standard_normal(5000))
    stream.reset()
    frames = torch.cat([stream.accept(SIGNAL), stream.finish()])
    assert float((frames - WHOLE).abs().max()) <= 1e-5


def test_accept_checks_the_sample_rate_and_mono_shape_it_is_given() -> None:
    stream = StreamingFeatures()
    assert stream.accept(SIGNAL[:1600], sample_rate=16000).shape == (10, 80)
    with pytest.raises(ValueError, match=r"16000 Hz.*44100"):
        stream.accept(SIGNAL[:1600], sample_rate=44100)
    # (samples, 1) and (1, samples) are mono; flattening (samples, 2) would interleave.
    assert stream.accept(SIGNAL[:1600, None]).shape == (10, 80)
    assert stream.accept(SIGNAL[None, :1600]).shape == (10, 80)
    with pytest.raises(ValueError, match="mono"):
        stream.accept(np.stack([SIGNAL, SIGNAL], axis=1))
