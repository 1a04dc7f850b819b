"""Training-time augmentation: waveform perturbations and SpecAugment.

Synthetic voices and a few hundred real speakers only carry over to real microphones
when training sees speed, loudness, noise, rooms and bandwidths vary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal
import soxr
import torchaudio
from torch import Tensor

from asr.audio import SAMPLE_RATE


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each perturbation; ``p_*`` = 0 turns one off."""

    p_speed: float = 0.7
    speed: tuple[float, float] = (0.85, 1.15)
    p_gain: float = 1.0
    gain_db: tuple[float, float] = (-30.0, 6.0)
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (5.0, 40.0)
    p_reverb: float = 0.3
    rt60: tuple[float, float] = (0.1, 0.7)
    p_bandlimit: float = 0.2
    cutoff_hz: tuple[float, float] = (3000.0, 7000.0)
    freq_masks: int = 2
    freq_mask_bins: int = 15
    time_masks: int = 4
    time_mask_frames: int = 40


class WaveAugment:
    """Randomly perturbs a ``(samples,)`` float32 waveform at 16 kHz."""

    def __init__(self, config: AugmentConfig = AugmentConfig(), seed: int | None = None) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        c, rng = self.config, self.rng
        if rng.random() < c.p_speed:
            audio = speed_perturb(audio, rng.uniform(*c.speed))
        if rng.random() < c.p_reverb:
            audio = reverberate(audio, rng.uniform(*c.rt60), rng)
        if rng.random() < c.p_bandlimit:
            audio = band_limit(audio, rng.uniform(*c.cutoff_hz))
        if rng.random() < c.p_noise:
            audio = add_noise(audio, rng.uniform(*c.snr_db), rng)
        if rng.random() < c.p_gain:
            audio = set_level(audio, rng.uniform(*c.gain_db) - 20.0)
        return np.clip(audio, -1.0, 1.0).astype(np.float32)


def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch together), by resampling."""
    return soxr.resample(audio, SAMPLE_RATE, SAMPLE_RATE / factor, quality="LQ").astype(np.float32)


def set_level(audio: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """Scale to an RMS level in dB relative to full scale."""
    rms = float(np.sqrt(np.mean(np.square(audio), dtype=np.float64)))
    if rms < 1e-8:
        return audio
    return audio * (10 ** (rms_dbfs / 20) / rms)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white, pink or brown noise at a signal-to-noise ratio in dB."""
    n = audio.shape[0]
    white = rng.standard_normal(n)
    colour = rng.integers(3)
    if colour:
        # Shape the spectrum: 1/f (pink) or 1/f^2 (brown) power.
        spectrum = np.fft.rfft(white)
        freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
        spectrum /= freqs ** (colour / 2)
        white = np.fft.irfft(spectrum, n)
    signal_power = np.mean(np.square(audio), dtype=np.float64)
    noise_power = np.mean(np.square(white)) + 1e-12
    scale = np.sqrt(signal_power / noise_power / 10 ** (snr_db / 10))
    return (audio + scale * white).astype(np.float32)


def reverberate(audio: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a generated room response: a direct path plus decaying noise."""
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0
    impulse = np.concatenate([[1.0], tail * rng.uniform(0.05, 0.4)])
    wet = scipy.signal.fftconvolve(audio, impulse)[: audio.shape[0]]
    peak = np.abs(wet).max()
    return (wet * (np.abs(audio).max() / peak if peak > 0 else 1.0)).astype(np.float32)


def band_limit(audio: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Low-pass at ``cutoff_hz`` (telephone, cheap microphones, 8 kHz recordings)."""
    sos = scipy.signal.butter(8, cutoff_hz, fs=SAMPLE_RATE, output="sos")
    return scipy.signal.sosfilt(sos, audio).astype(np.float32)


def spec_augment(feats: Tensor, config: AugmentConfig = AugmentConfig()) -> Tensor:
    """SpecAugment on standardised ``(batch, frames, n_mels)`` features (masks set 0, the mean)."""
    x = feats.transpose(1, 2).unsqueeze(1)  # (batch, 1, n_mels, frames)
    for _ in range(config.freq_masks):
        x = torchaudio.functional.mask_along_axis_iid(x, config.freq_mask_bins, 0.0, axis=2)
    for _ in range(config.time_masks):
        x = torchaudio.functional.mask_along_axis_iid(x, config.time_mask_frames, 0.0, axis=3, p=0.2)
    return x.squeeze(1).transpose(1, 2)
