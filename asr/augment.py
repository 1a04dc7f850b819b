"""Training-time augmentation: waveform perturbations, vocal-tract length warping and
SpecAugment.

Synthetic voices and a few hundred real speakers only carry over to real microphones
when training sees speed, loudness, noise, rooms, bandwidths and voices vary.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal
import soxr
import torch
import torchaudio
from torch import Tensor

from asr.audio import SAMPLE_RATE
from asr.features import FeatureConfig, mel_filters


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each perturbation; ``p_*`` = 0 turns one off."""

    p_speed: float = 0.7
    speed: tuple[float, float] = (0.85, 1.15)
    p_gain: float = 1.0
    level_dbfs: tuple[float, float] = (-50.0, -14.0)  # RMS; lowered where the peak would clip
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (5.0, 40.0)  # measured above 50 Hz, where the features look
    p_noise_floor: float = 0.8  # a microphone's hiss instead of digital silence
    noise_floor_dbfs: tuple[float, float] = (-90.0, -60.0)
    p_reverb: float = 0.3
    rt60: tuple[float, float] = (0.1, 0.7)
    drr_db: tuple[float, float] = (-5.0, 10.0)  # direct-to-reverberant energy ratio
    p_bandlimit: float = 0.2
    cutoff_hz: tuple[float, float] = (3000.0, 7000.0)
    p_warp: float = 0.5  # vocal-tract length perturbation of the log-mel features
    warp: tuple[float, float] = (0.9, 1.1)
    freq_masks: int = 2
    freq_mask_bins: int = 10
    time_mask_every: int = 250  # one time mask per this many frames of real audio (at least 1)
    time_mask_frames: int = 40  # the widest time mask ...
    time_mask_ratio: float = 0.1  # ... and at most this share of the utterance


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
            audio = reverberate(audio, rng.uniform(*c.rt60), rng, rng.uniform(*c.drr_db))
        if rng.random() < c.p_bandlimit:
            audio = band_limit(audio, rng.uniform(*c.cutoff_hz))
        if rng.random() < c.p_noise:
            audio = add_noise(audio, rng.uniform(*c.snr_db), rng)
        if rng.random() < c.p_gain:
            audio = set_level(audio, rng.uniform(*c.level_dbfs))
            peak = float(np.abs(audio).max(initial=0.0))
            if peak > 0.98:
                audio = audio * (0.98 / peak)
        if rng.random() < c.p_noise_floor:
            level = 10 ** (rng.uniform(*c.noise_floor_dbfs) / 20)
            audio = audio + level * rng.standard_normal(audio.shape[0])
        return np.clip(audio, -1.0, 1.0).astype(np.float32)

    def warp_features(self, feats: Tensor, features: FeatureConfig = FeatureConfig()) -> Tensor:
        """With probability ``p_warp``, ``warp_mel`` a ``(frames, n_mels)`` utterance by a
        factor drawn from ``warp`` (after ``__call__``, from the same generator)."""
        c = self.config
        if c.p_warp <= 0 or self.rng.random() >= c.p_warp:
            return feats
        return warp_mel(feats, float(self.rng.uniform(*c.warp)), features)


def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch together), by resampling."""
    return soxr.resample(audio, SAMPLE_RATE, SAMPLE_RATE / factor, quality="LQ").astype(np.float32)


def set_level(audio: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """Scale to an RMS level in dB relative to full scale."""
    rms = float(np.sqrt(np.mean(np.square(audio), dtype=np.float64)))
    if rms < 1e-8:
        return audio
    return audio * (10 ** (rms_dbfs / 20) / rms)


NOISE_LOW_HZ = 50.0


def add_noise(
    audio: np.ndarray, snr_db: float, rng: np.random.Generator, colour: int | None = None
) -> np.ndarray:
    """Add white (``colour`` 0), pink (1) or brown (2; random if None) noise to a
    ``(samples,)`` waveform at a signal-to-noise ratio in dB.

    The coloured spectra start at 50 Hz, so that the noise power, and with it the SNR, is
    where the log-mel features see it (a 1/f^2 spectrum taken down to DC would put nearly
    all of its power in an inaudible drift).
    """
    n = audio.shape[0]
    colour = int(rng.integers(3)) if colour is None else colour
    if colour:
        # Shape the spectrum: 1/f (pink) or 1/f^2 (brown) power. The noise is made at a
        # length the FFT handles fast and cut to size (a prime length costs 10x more).
        size = scipy.fft.next_fast_len(n, real=True)
        spectrum = scipy.fft.rfft(rng.standard_normal(size))
        freqs = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
        spectrum /= np.maximum(freqs, NOISE_LOW_HZ) ** (colour / 2)
        spectrum[freqs < NOISE_LOW_HZ] = 0.0
        white = scipy.fft.irfft(spectrum, size)[:n]
    else:
        white = rng.standard_normal(n)
    signal_power = np.mean(np.square(audio), dtype=np.float64)
    noise_power = np.mean(np.square(white)) + 1e-12
    scale = np.sqrt(signal_power / noise_power / 10 ** (snr_db / 10))
    return (audio + scale * white).astype(np.float32)


def reverberate(audio: np.ndarray, rt60: float, rng: np.random.Generator, drr_db: float = 3.0) -> np.ndarray:
    """Convolve a ``(samples,)`` waveform with a generated room response: a direct path
    plus decaying noise whose energy is ``drr_db`` below the direct path's."""
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0
    energy = float(np.sum(np.square(tail)))
    if energy > 0:
        tail *= np.sqrt(10 ** (-drr_db / 10) / energy)
    impulse = np.concatenate([[1.0], tail])
    wet = scipy.signal.fftconvolve(audio, impulse)[: audio.shape[0]]
    peak = np.abs(wet).max()
    return (wet * (np.abs(audio).max() / peak if peak > 0 else 1.0)).astype(np.float32)


def band_limit(audio: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Low-pass at ``cutoff_hz`` (telephone, cheap microphones, 8 kHz recordings)."""
    sos = scipy.signal.butter(8, cutoff_hz, fs=SAMPLE_RATE, output="sos")
    return scipy.signal.sosfilt(sos, audio).astype(np.float32)


@lru_cache(maxsize=1024)
def _warp_positions(factor: float, features: FeatureConfig) -> Tensor:
    """Fractional source bin, ``(n_mels,)``, that each output mel bin reads under ``factor``."""
    bank = mel_filters(features)
    freqs = torch.linspace(0, features.sample_rate / 2, bank.shape[0], dtype=torch.float64)
    centres = (freqs[:, None] * bank).sum(0) / bank.sum(0).clamp(min=1e-12)
    # Piecewise linear warp (as in VTLP): frequencies below the knee scale by ``factor``;
    # above it the line bends so that the top of the band stays where it is.
    top = features.f_max
    knee = 0.8 * top * min(1.0, factor)  # so the source of the knee stays inside the band
    source = torch.where(
        centres <= knee,
        centres / factor,
        knee / factor + (centres - knee) * (top - knee / factor) / (top - knee),
    )
    positions = np.interp(source.numpy(), centres.numpy(), np.arange(features.n_mels))
    return torch.from_numpy(positions).float()


def warp_mel(feats: Tensor, factor: float, features: FeatureConfig = FeatureConfig()) -> Tensor:
    """Vocal-tract length perturbation on ``(frames, n_mels)`` log-mel features.

    A ``factor`` above 1 moves the spectral envelope (formants) up in frequency, as a
    shorter vocal tract does; below 1 moves it down. Tempo is unchanged, unlike speed
    perturbation, so voice and speaking rate vary independently. Each output bin linearly
    interpolates the input bins around the frequency it maps from.
    """
    if feats.shape[0] == 0 or factor == 1.0:
        return feats
    positions = _warp_positions(round(factor, 3), features)
    low = positions.floor().long().clamp(max=features.n_mels - 1)
    high = (low + 1).clamp(max=features.n_mels - 1)
    frac = positions - low.float()
    return feats[..., low] * (1 - frac) + feats[..., high] * frac


def spec_augment(
    feats: Tensor, lengths: Tensor | None = None, config: AugmentConfig = AugmentConfig()
) -> Tensor:
    """SpecAugment on standardised ``(batch, frames, n_mels)`` features (masks set 0, the mean).

    ``lengths`` ``(batch,)`` gives each utterance's real frames (default: all of them). Time
    masks scale with that length, not the padded one: one per ``time_mask_every`` frames,
    each at most ``time_mask_ratio`` of the utterance, so a one-second command word keeps
    its sounds while a long sentence still loses several stretches.
    """
    x = feats.transpose(1, 2).unsqueeze(1)  # (batch, 1, n_mels, frames)
    for _ in range(config.freq_masks):
        x = torchaudio.functional.mask_along_axis_iid(x, config.freq_mask_bins, 0.0, axis=2)
    x = x.squeeze(1).transpose(1, 2)  # (batch, frames, n_mels)
    batch, frames = x.shape[:2]
    if lengths is None:
        lengths = torch.full((batch,), frames)
    keep = torch.ones(batch, frames, dtype=torch.bool, device=x.device)
    for b, length in enumerate(lengths.tolist()):
        widest = min(config.time_mask_frames, int(config.time_mask_ratio * length))
        if widest < 1:
            continue
        for _ in range(max(1, length // config.time_mask_every)):
            width = int(torch.randint(0, widest + 1, ()))
            start = int(torch.randint(0, length - width + 1, ()))
            keep[b, start : start + width] = False
    return x * keep.unsqueeze(-1)
