from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
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
    warp_mel,
)
from asr.data import SpeechDataset, Utterance
from asr.features import log_mel
from asr.text import Vocabulary

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


@pytest.mark.parametrize("colour", [0, 1, 2])
@pytest.mark.parametrize("snr", [0.0, 10.0, 30.0])
def test_noise_at_the_requested_snr(snr: float, colour: int) -> None:
    noisy = add_noise(TONE, snr, np.random.default_rng(1), colour)
    noise = noisy - TONE
    assert rms_db(TONE) - rms_db(noise) == pytest.approx(snr, abs=0.1)
    # The power is where the features look: pink and brown noise shaped down to DC would
    # put most of it below 20 Hz, and a nominal 5 dB SNR would be 25 dB in the features.
    power = np.abs(np.fft.rfft(noise)) ** 2
    below_20_hz = power[: 20 * len(noise) // SAMPLE_RATE + 1].sum() / power.sum()
    assert below_20_hz < 0.05


def test_reverb_adds_a_decaying_tail() -> None:
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[1000] = 0.5
    wet = reverberate(click, 0.5, np.random.default_rng(2))
    assert len(wet) == len(click) and np.argmax(np.abs(wet)) == 1000
    early = np.abs(wet[1100:2600]).mean()
    late = np.abs(wet[6000:7500]).mean()
    assert early > 5 * late > 0


@pytest.mark.parametrize("drr", [-5.0, 0.0, 10.0])
def test_reverb_direct_to_reverberant_ratio(drr: float) -> None:
    click = np.zeros(2 * SAMPLE_RATE, np.float32)
    click[1000] = 0.5
    wet = reverberate(click, 0.4, np.random.default_rng(3), drr)
    direct = wet[1000] ** 2
    tail = np.sum(np.square(wet[1001:], dtype=np.float64))
    assert 10 * np.log10(direct / tail) == pytest.approx(drr, abs=0.01)


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
    off = AugmentConfig(p_speed=0, p_gain=0, p_noise=0, p_noise_floor=0, p_reverb=0, p_bandlimit=0)
    assert np.array_equal(WaveAugment(off, seed=1)(TONE), TONE)


def test_loud_levels_are_lowered_instead_of_clipped() -> None:
    spiky = np.zeros(SAMPLE_RATE, np.float32)
    spiky[::400] = 1.0  # crest factor 26 dB: at -14 dBFS RMS the peaks would be at +12 dBFS
    loud = AugmentConfig(
        p_speed=0, p_noise=0, p_noise_floor=0, p_reverb=0, p_bandlimit=0, level_dbfs=(-14, -14)
    )
    out = WaveAugment(loud, seed=0)(spiky)
    assert np.abs(out).max() == pytest.approx(0.98, abs=1e-6)
    assert np.count_nonzero(out) == np.count_nonzero(spiky)  # scaled, not flattened


def test_noise_floor_replaces_digital_silence() -> None:
    silence = np.zeros(SAMPLE_RATE, np.float32)
    only_floor = AugmentConfig(p_speed=0, p_gain=0, p_noise=0, p_reverb=0, p_bandlimit=0, p_noise_floor=1)
    out = WaveAugment(only_floor, seed=0)(silence)
    assert np.count_nonzero(out) == len(out)
    assert -91 < rms_db(out) < -59


def test_spec_augment_masks_with_the_mean() -> None:
    torch.manual_seed(0)
    feats = torch.randn(3, 400, 80) + 5.0
    masked = spec_augment(feats, config=AugmentConfig(freq_masks=2, freq_mask_bins=15, time_mask_ratio=0))
    zero_bins = (masked == 0).all(dim=1)  # (batch, n_mels): whole bins set to 0
    assert masked.shape == feats.shape
    assert 0 < int(zero_bins.sum()) <= 3 * 2 * 15
    kept = masked != 0
    assert torch.equal(masked[kept], feats[kept])


def test_time_masks_scale_with_the_real_length() -> None:
    """A 1 s clip padded to 10 s loses at most 10% of its own frames (one narrow mask);
    a 10 s utterance gets several masks; padding frames are not what gets masked."""
    torch.manual_seed(1)
    config = AugmentConfig(freq_masks=0)
    feats = torch.randn(200, 1000, 80) + 5.0
    lengths = torch.tensor([100] * 100 + [1000] * 100)
    masked = spec_augment(feats, lengths, config)
    dropped = (masked == 0).all(dim=2)  # (batch, frames)
    short, long_ = dropped[:100, :100].float().mean(1), dropped[100:].float().mean(1)
    assert short.max() <= 0.1 and 0.01 < short.mean() < 0.08
    assert not dropped[:100, 100:].any()
    assert 0.04 < long_.mean() < 0.2
    runs = [int(((row[1:] & ~row[:-1]).sum() + row[0]).item()) for row in dropped[100:]]
    assert max(runs) >= 3


def tone_peak_bin(hz: float) -> int:
    tone = (0.3 * np.sin(2 * np.pi * hz * T)).astype(np.float32)
    return int(log_mel(tone).mean(0).argmax())


@pytest.mark.parametrize("factor", [0.9, 1.12])
def test_warp_moves_the_spectral_envelope(factor: float) -> None:
    # A 1 kHz tone warped by `factor` looks like a tone at factor x 1 kHz; the frame count
    # (tempo) is unchanged.
    feats = log_mel((0.3 * np.sin(2 * np.pi * 1000 * T)).astype(np.float32))
    warped = warp_mel(feats, factor)
    assert warped.shape == feats.shape and warped.dtype == feats.dtype
    assert abs(int(warped.mean(0).argmax()) - tone_peak_bin(1000 * factor)) <= 1
    assert tone_peak_bin(1000 * factor) != tone_peak_bin(1000)
    assert torch.equal(warp_mel(feats, 1.0), feats)


@pytest.mark.parametrize("factor", [0.7, 0.9, 1.1, 1.3])
def test_warp_keeps_the_band_in_order(factor: float) -> None:
    from asr.augment import _warp_positions
    from asr.features import FeatureConfig

    positions = _warp_positions(factor, FeatureConfig())
    inside = positions[(positions > 0) & (positions < 79)]
    assert bool((inside[1:] > inside[:-1]).all())  # no bin folds back or repeats
    assert bool((positions[1:] >= positions[:-1]).all()) and len(inside) >= 70
    assert float(positions[-1]) >= 78  # the top of the band stays (about) put


def test_dataset_warps_features_when_augmenting(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    sf.write(path, TONE, SAMPLE_RATE)
    utt = Utterance(audio=str(path), text="a", duration=1.0)
    only_warp = AugmentConfig(
        p_speed=0, p_gain=0, p_noise=0, p_noise_floor=0, p_reverb=0, p_bandlimit=0, p_warp=1.0
    )
    plain = SpeechDataset([utt], Vocabulary())[0][0]
    warped = SpeechDataset([utt], Vocabulary(), augment=WaveAugment(only_warp, seed=0))[0][0]
    assert warped.shape == plain.shape and not torch.allclose(warped, plain)
    off = WaveAugment(AugmentConfig(p_warp=0.0), seed=0)
    assert torch.equal(off.warp_features(plain), plain)
    again = SpeechDataset([utt], Vocabulary(), augment=WaveAugment(only_warp, seed=0))[0][0]
    assert torch.equal(again, warped)
