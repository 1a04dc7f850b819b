"""Recognition results and one-shot transcription through the streaming model path."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from asr.audio import SAMPLE_RATE, as_float32, load_audio, resample
from asr.checkpoint import Bundle, load_model
from asr.decoding import GreedyDecoder, Word
from asr.features import log_mel

#: Feature frames the model reads at a time in offline transcription (bounded memory).
OFFLINE_CHUNK_FRAMES = 3000


@dataclass(frozen=True)
class Result:
    """Recognised text: ``committed`` never changes again; ``unstable`` may still change."""

    committed: str
    unstable: str = ""
    words: tuple[Word, ...] = ()
    duration: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.committed, self.unstable) if part)


def transcribe(
    audio: str | os.PathLike[str] | np.ndarray,
    model: Bundle | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> Result:
    """Transcribe a file, or a ``(samples,)`` array at ``sample_rate``, with greedy decoding.

    Loads the bundled default model when ``model`` is None. Raises AudioError for a file
    that cannot be read and ValueError for an unusable array.
    """
    bundle = model if model is not None else load_model()
    rate = bundle.features.sample_rate
    if isinstance(audio, np.ndarray):
        samples = resample(as_float32(audio), sample_rate, rate)
    else:
        samples = load_audio(audio, rate)
    feats = log_mel(samples, bundle.features)
    decoder = GreedyDecoder(bundle.vocabulary, bundle.frame_seconds)
    state, decoded = None, decoder.start()
    device = bundle.model.feat_mean.device
    bidirectional = bundle.model.config.bidirectional
    # A bidirectional model needs the whole utterance at once; a unidirectional one streams.
    step = max(1, feats.shape[0]) if bidirectional else OFFLINE_CHUNK_FRAMES
    with torch.inference_mode():
        for begin in range(0, max(1, feats.shape[0]), step):
            chunk = feats[begin : begin + step].unsqueeze(0).to(device)
            lengths = torch.tensor([chunk.shape[1]], device=device)
            logprobs, _, new_state = bundle.model(chunk, lengths, state)
            state = None if bidirectional else new_state
            decoded = decoder.step(logprobs[0].cpu(), decoded)
    hypothesis = decoder.finish(decoded)
    return Result(hypothesis.text, "", hypothesis.words, samples.shape[0] / rate)
