import numpy as np
import pytest
import torch

from asr.audio import SAMPLE_RATE
from asr.augment import (
    AugmentConfig,
    WaveAugment,
    add_noise,
    band_limit,
    reverberate,
    set_level,
    spec_augment,
    speed_perturb,
)

RNG = np.random.default_rng(0)
T = np.arange(SAMPLE_RATE) / SAMPLE_RATE
TONE = (0.3 * np.sin(2 * np.pi * 500 * T)).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def dominant_hz(x: np.ndarray) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x))) * SAMPLE_RATE / len(x))


def test_speed_changes_tempo_and_pitch() -> None:
    fast = speed_perturb(TONE, 1.25)
    assert len(fast) == pytest.approx(SAMPLE_RATE / 1.25, abs=2)
    assert dominant_hz(fast) == pytest.approx(625, abs=3)


def test_set_level() -> None:
    assert rms_db(set_level(TONE, -40.0)) == pytest.approx(-40.0, abs=0.01)
    assert np.array_equal(set_level(np.zeros(100, np.float32), -20.0), np.zeros(100))


@pytest.mark.parametrize("snr", [0.0, 10.0, 30.0])
def test_noise_at_the_requested_snr(snr: float) -> None:
    noisy = add_noise(TONE, snr, np.random.default_rng(1))
    measured = rms_db(TONE) - rms_db(noisy - TONE)
    assert measured == pytest.approx(snr, abs=0.1)


def test_reverb_adds_a_decaying_tail() -> None:
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[1000] = 0.5
    wet = reverberate(click, 0.5, np.random.default_rng(2))
    assert len(wet) == len(click) and np.argmax(np.abs(wet)) == 1000
    early = np.abs(wet[1100:2600]).mean()
    late = np.abs(wet[6000:7500]).mean()
    assert early > 5 * late > 0


def test_band_limit_removes_high_frequencies() -> None:
    high = np.sin(2 * np.pi * 6000 * T).astype(np.float32)
    assert rms_db(band_limit(high, 3000.0)) < rms_db(high) - 40
    assert rms_db(band_limit(TONE, 3000.0)) == pytest.approx(rms_db(TONE), abs=0.5)


def test_wave_augment_is_repeatable_and_bounded() -> None:
    speech = (0.5 * RNG.standard_normal(SAMPLE_RATE)).astype(np.float32)
    a = WaveAugment(seed=5)(speech)
    b = WaveAugment(seed=5)(speech)
    assert np.array_equal(a, b) and a.dtype == np.float32 and np.abs(a).max() <= 1.0
    assert not np.array_equal(a, WaveAugment(seed=6)(speech))
    off = AugmentConfig(p_speed=0, p_gain=0, p_noise=0, p_reverb=0, p_bandlimit=0)
    assert np.array_equal(WaveAugment(off, seed=1)(TONE), TONE)


def test_spec_augment_masks_with_the_mean() -> None:
    torch.manual_seed(0)
    feats = torch.randn(3, 400, 80) + 5.0
    masked = spec_augment(feats, AugmentConfig(freq_masks=2, freq_mask_bins=15, time_masks=0))
    zero_bins = (masked == 0).all(dim=1)  # (batch, n_mels): whole bins set to 0
    assert masked.shape == feats.shape
    assert 0 < int(zero_bins.sum()) <= 3 * 2 * 15
    kept = masked != 0
    assert torch.equal(masked[kept], feats[kept])
