"""The acoustic model: causal conv subsampling, a residual GRU stack and a CTC output layer.

``forward(feats, lengths, state=None) -> (logprobs, lengths, state)``: the caller owns the
state. For a unidirectional model, running a signal chunk by chunk while carrying the
state gives the same log-probs as running it whole, because the convolutions are causal
in time and keep the input frames their next output needs in the state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.audio import N_MELS
from asr.text import CHARACTERS

KERNEL = 3
STRIDE = 2


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the acoustic model; saved in the model file."""

    n_mels: int = N_MELS
    vocab_size: int = len(CHARACTERS)
    conv_channels: int = 32
    hidden: int = 320
    layers: int = 4
    bidirectional: bool = False
    dropout: float = 0.1
    #: Bidirectional streaming (latency-controlled): the backward direction sees each chunk
    #: of ``chunk_frames`` output frames plus ``lookahead_frames`` future frames, the forward
    #: direction carries its state across chunks. 0 = whole-utterance bidirectional.
    chunk_frames: int = 0
    lookahead_frames: int = 0

    def __post_init__(self) -> None:
        if self.chunk_frames < 0 or self.lookahead_frames < 0:
            raise ValueError("chunk_frames and lookahead_frames must not be negative")
        if (self.chunk_frames or self.lookahead_frames) and not self.bidirectional:
            raise ValueError("chunk_frames and lookahead_frames apply to bidirectional models")
        if self.lookahead_frames and not self.chunk_frames:
            raise ValueError("lookahead_frames needs chunk_frames > 0")
        if self.bidirectional and self.hidden % 2:
            raise ValueError(f"a bidirectional model needs an even hidden size, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if min(self.hidden, self.layers, self.conv_channels) < 1:
            raise ValueError("hidden, layers and conv_channels must be at least 1")

    @property
    def streaming(self) -> bool:
        """Whether the model can run chunk by chunk with a carried state."""
        return not self.bidirectional or self.chunk_frames > 0

    @property
    def latency_frames(self) -> int:
        """Output frames of audio the model must wait for beyond a frame: chunk + lookahead."""
        return self.chunk_frames + self.lookahead_frames if self.bidirectional else 0

    @property
    def subsampling(self) -> int:
        """Feature frames per output frame (two stride-2 convolutions)."""
        return STRIDE * STRIDE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        return cls(**values)


class ModelState(NamedTuple):
    """Streaming state of a batch.

    ``conv1``: ``(batch, 1, frames, n_mels)`` input frames not yet consumed by the first
    convolution; ``conv2``: ``(batch, channels, frames, n_mels // 2)`` the same for the
    second; ``gru``: ``(layers, batch, hidden / directions)`` the (forward) GRU states;
    ``pending``: ``(batch, frames, hidden)`` subsampled frames a latency-controlled
    bidirectional model holds until their chunk and lookahead are complete (0 frames
    otherwise).
    """

    conv1: Tensor
    conv2: Tensor
    gru: Tensor
    pending: Tensor


class CausalConv(nn.Module):
    """A 3x3, stride-2 convolution that is causal in time and streams through a frame cache."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, KERNEL, STRIDE, padding=(0, 1))

    def forward(self, x: Tensor, lengths: Tensor, cache: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x``: ``(batch, channels, frames, freq)``; ``cache`` holds the previous frames.

        Returns the outputs, their lengths and the new cache.
        """
        x = torch.cat([cache, x], dim=2)
        total = x.shape[2]
        n_out = (total - KERNEL) // STRIDE + 1 if total >= KERNEL else 0
        new_cache = x[:, :, n_out * STRIDE :]
        lengths = torch.clamp((lengths + cache.shape[2] - KERNEL) // STRIDE + 1, min=0)
        if n_out == 0:
            empty = x.new_zeros(x.shape[0], self.conv.out_channels, 0, (x.shape[3] + 1) // 2)
            return empty, lengths, new_cache
        y = self.conv(x[:, :, : (n_out - 1) * STRIDE + KERNEL])
        return torch.relu(y), lengths, new_cache


class ResidualGRU(nn.Module):
    """``x + dropout(GRU(LayerNorm(x)))``: pre-norm residual layers train stably."""

    def __init__(self, hidden: int, bidirectional: bool, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        directions = 2 if bidirectional else 1
        self.gru = nn.GRU(hidden, hidden // directions, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        y = self.norm(x)
        if self.gru.bidirectional:
            packed = pack_padded_sequence(y, lengths.cpu().clamp(min=1), True, enforce_sorted=False)
            out, h_n = self.gru(packed)
            y = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
        else:
            y, h_n = self.gru(y, h)
        return x + self.dropout(y), h_n

    def window(self, x: Tensor, lengths: Tensor, h: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
        """One latency-controlled window ``(batch, chunk + lookahead, hidden)``.

        The forward direction starts from ``h`` ``(batch, hidden / 2)``, the backward one
        from zero at the window's end. Returns the outputs and the forward state after
        ``chunk`` frames, where the next window starts.
        """
        y = self.norm(x)
        h0 = torch.stack([h, torch.zeros_like(h)])
        packed = pack_padded_sequence(y, lengths.cpu().clamp(min=1), True, enforce_sorted=False)
        out, _ = self.gru(packed, h0)
        y = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
        h_next = y[:, min(chunk, x.shape[1]) - 1, : h.shape[1]]
        return x + self.dropout(y), h_next


class AcousticModel(nn.Module):
    """Log-mel frames -> CTC log-probabilities over the vocabulary."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("feat_mean", torch.zeros(c.n_mels))
        self.register_buffer("feat_std", torch.ones(c.n_mels))
        self.conv1 = CausalConv(1, c.conv_channels)
        self.conv2 = CausalConv(c.conv_channels, c.conv_channels)
        freq = (c.n_mels + 1) // 2
        freq = (freq + 1) // 2
        self.proj = nn.Linear(c.conv_channels * freq, c.hidden)
        self.layers = nn.ModuleList(
            ResidualGRU(c.hidden, c.bidirectional, c.dropout) for _ in range(c.layers)
        )
        self.norm = nn.LayerNorm(c.hidden)
        self.dropout = nn.Dropout(c.dropout)
        self.output = nn.Linear(c.hidden, c.vocab_size)

    def set_normalization(self, mean: Tensor, std: Tensor) -> None:
        """Store per-bin feature statistics ``(n_mels,)`` measured on the training data."""
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(torch.clamp(std, min=1e-3))

    def normalize(self, feats: Tensor) -> Tensor:
        """``(batch, frames, n_mels)`` log-mels -> the same, standardised per bin."""
        return (feats - self.feat_mean) / self.feat_std

    def initial_state(self, batch: int = 1) -> ModelState:
        """The state before any audio: zero (mean) frames of left context, zero GRU state."""
        c = self.config
        device = self.feat_mean.device
        directions = 2 if c.bidirectional else 1
        return ModelState(
            torch.zeros(batch, 1, KERNEL - 1, c.n_mels, device=device),
            torch.zeros(batch, c.conv_channels, KERNEL - 1, (c.n_mels + 1) // 2, device=device),
            torch.zeros(c.layers, batch, c.hidden // directions, device=device),
            torch.zeros(batch, 0, c.hidden, device=device),
        )

    def forward(
        self, feats: Tensor, lengths: Tensor, state: ModelState | None = None, final: bool | None = None
    ) -> tuple[Tensor, Tensor, ModelState]:
        """Run the model on raw log-mels.

        ``feats``: ``(batch, frames, n_mels)``; ``lengths``: ``(batch,)`` valid frames.
        Returns ``logprobs`` ``(batch, out_frames, vocab)`` (about ``frames / 4``), their
        ``lengths`` and the new ``state``. Pass the returned state with the next chunk to
        stream; with a state, every item of the batch must fill the whole chunk. ``final``
        (default: True without a state) marks the end of the signal, where a
        latency-controlled bidirectional model flushes the frames it holds back for their
        lookahead.
        """
        return self.forward_normalized(self.normalize(feats), lengths, state, final)

    def forward_normalized(
        self, x: Tensor, lengths: Tensor, state: ModelState | None = None, final: bool | None = None
    ) -> tuple[Tensor, Tensor, ModelState]:
        """``forward`` for features already standardised (training augments them first)."""
        c = self.config
        if state is not None and not c.streaming:
            raise ValueError(
                "a whole-utterance bidirectional model cannot stream; give it chunk_frames to stream"
            )
        final = state is None if final is None else final
        if state is None:
            state = self.initial_state(x.shape[0])
        y, lengths, cache1 = self.conv1(x.unsqueeze(1), lengths, state.conv1)
        y, lengths, cache2 = self.conv2(y, lengths, state.conv2)
        batch, channels, frames, freq = y.shape
        y = self.proj(y.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq))
        pending = state.pending
        if c.bidirectional and c.chunk_frames:
            y, lengths, gru, pending = self._chunked(y, lengths, state, final)
        elif frames > 0:
            hidden = []
            for i, layer in enumerate(self.layers):
                y, h = layer(y, lengths, state.gru[i : i + 1].contiguous())
                hidden.append(h)
            gru = torch.cat(hidden, dim=0) if not c.bidirectional else state.gru
        else:
            gru = state.gru
        logits = self.output(self.dropout(self.norm(y)))
        return torch.log_softmax(logits, dim=-1), lengths, ModelState(cache1, cache2, gru, pending)

    def _chunked(
        self, y: Tensor, lengths: Tensor, state: ModelState, final: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Latency-controlled bidirectional GRU stack over ``(batch, frames, hidden)``.

        Frames wait in ``pending`` until their chunk and its lookahead have arrived (or
        the signal ends); each window then runs through all layers at once. Training and
        streaming take the same windows, so they compute the same outputs.
        """
        chunk, look = self.config.chunk_frames, self.config.lookahead_frames
        held = state.pending.shape[1]
        y = torch.cat([state.pending, y], dim=1)
        lengths = lengths + held
        h = state.gru
        outputs, start, total = [], 0, y.shape[1]
        while total - start >= chunk + look or (final and start < total):
            x = y[:, start : start + chunk + look]
            valid = torch.clamp(lengths - start, min=0, max=x.shape[1])
            states = []
            for i, layer in enumerate(self.layers):
                x, h_i = layer.window(x, valid, h[i], chunk)
                states.append(h_i)
            h = torch.stack(states)
            outputs.append(x[:, :chunk])
            start += chunk
        emitted = torch.cat(outputs, dim=1) if outputs else y[:, :0]
        out_lengths = torch.clamp(lengths, max=start)
        return emitted, out_lengths, h, y[:, start:]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
