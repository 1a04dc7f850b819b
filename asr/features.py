"""Log-mel features, whole or streamed, with one definition of a frame.

Frame ``t`` covers the 25 ms of audio that end at sample ``(t + 1) * hop_length``; the
audio is preceded by ``win_length - hop_length`` zeros. A frame is therefore ready as
soon as its last 10 ms have arrived, and ``samples // hop_length`` frames exist for
``samples`` samples. At the end of a stream the last partial hop is zero-padded into
one more frame. ``log_mel`` (whole) and ``StreamingFeatures`` (chunked) compute the
same frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torchaudio

from asr.audio import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, WIN_LENGTH

LOG_FLOOR = 1e-10


@dataclass(frozen=True)
class FeatureConfig:
    """Feature parameters; saved with every model so the model file defines its inputs."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    win_length: int = WIN_LENGTH
    hop_length: int = HOP_LENGTH
    n_mels: int = N_MELS
    f_min: float = 20.0
    f_max: float = 7600.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FeatureConfig:
        return cls(**values)


def mel_filters(config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """The mel filterbank, ``(n_fft // 2 + 1, n_mels)`` float64 (Slaney scale and norm)."""
    return torchaudio.functional.melscale_fbanks(
        n_freqs=config.n_fft // 2 + 1,
        f_min=config.f_min,
        f_max=config.f_max,
        n_mels=config.n_mels,
        sample_rate=config.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    ).to(torch.float64)


class LogMel:
    """Computes log-mel frames of a buffer that already holds its left context."""

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        self.config = config
        self.window = torch.hann_window(config.win_length, periodic=True, dtype=torch.float64)
        self.filters = mel_filters(config)

    @property
    def context(self) -> int:
        """Samples of left context each frame needs beyond its own hop."""
        return self.config.win_length - self.config.hop_length

    def frames(self, padded: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Frames of ``(context + n * hop,)`` samples -> ``(n, n_mels)`` float32 log-mels."""
        c = self.config
        x = torch.as_tensor(padded, dtype=torch.float64)
        n = (x.shape[0] - self.context) // c.hop_length
        if n <= 0:
            return torch.zeros(0, c.n_mels)
        windows = x[: self.context + n * c.hop_length].unfold(0, c.win_length, c.hop_length)
        spectrum = torch.fft.rfft(windows * self.window, n=c.n_fft)
        power = spectrum.real.square() + spectrum.imag.square()
        return torch.log(torch.clamp(power @ self.filters, min=LOG_FLOOR)).to(torch.float32)


def log_mel(audio: np.ndarray | torch.Tensor, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Log-mel frames of a whole ``(samples,)`` float signal -> ``(frames, n_mels)``."""
    stream = StreamingFeatures(config)
    head = stream.accept(audio)
    return torch.cat([head, stream.finish()])


class StreamingFeatures:
    """Log-mel frames of audio that arrives in chunks of any size.

    Keeps only the samples that the next frame still needs, so memory is flat. For any
    chunking, the concatenated output equals ``log_mel`` of the whole signal. Audio must
    be mono at ``config.sample_rate`` (16 kHz by default); it is not resampled.
    """

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        self.logmel = LogMel(config)
        self.reset()

    def reset(self) -> None:
        """Forget all audio: the next sample starts a new signal."""
        self._buffer = np.zeros(self.logmel.context, dtype=np.float64)
        self.samples_seen = 0

    def accept(self, chunk: np.ndarray | torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Add ``(samples,)`` float audio; returns the ``(frames, n_mels)`` frames now complete.

        The audio must already be mono at the config's rate (16 kHz for the bundled
        model): nothing is resampled here (``Stream.accept_waveform`` resamples). Pass
        ``sample_rate`` to have that checked: another rate raises ValueError.
        """
        expected = self.logmel.config.sample_rate
        if sample_rate is not None and sample_rate != expected:
            raise ValueError(
                f"StreamingFeatures takes audio at {expected} Hz, got sample_rate={sample_rate}; "
                "resample it first (asr.audio.resample) or use Stream.accept_waveform"
            )
        chunk = np.asarray(chunk, dtype=np.float64)
        if sum(size > 1 for size in chunk.shape) > 1:
            # Flattening (samples, channels) would interleave the channels into noise.
            raise ValueError(f"StreamingFeatures takes mono (samples,) audio, got shape {chunk.shape}")
        chunk = chunk.reshape(-1)
        self.samples_seen += chunk.shape[0]
        self._buffer = np.concatenate([self._buffer, chunk])
        out = self.logmel.frames(self._buffer)
        consumed = out.shape[0] * self.logmel.config.hop_length
        self._buffer = self._buffer[consumed:]
        return out

    def finish(self) -> torch.Tensor:
        """End the signal: zero-pad a trailing partial hop into a last frame, then reset.

        Returns ``(0 or 1, n_mels)``.
        """
        hop = self.logmel.config.hop_length
        leftover = self._buffer.shape[0] - self.logmel.context
        out = torch.zeros(0, self.logmel.config.n_mels)
        if leftover > 0:
            padded = np.concatenate([self._buffer, np.zeros(hop - leftover)])
            out = self.logmel.frames(padded)
        self.reset()
        return out


def num_frames(samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Number of frames ``log_mel`` returns for ``samples`` samples."""
    return -(-samples // hop_length)
