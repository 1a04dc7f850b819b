"""asr: a small streaming speech recogniser (log-mel -> GRU -> CTC).

import asr
result = asr.transcribe("speech.wav")   # the bundled default model
print(result.text, result.words)

The names below load on first use, so ``import asr`` does not wait for PyTorch (and
Ctrl-C while the ``asr`` command starts is its one-line "interrupted").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_HOMES = {
    "SAMPLE_RATE": "asr.audio",
    "AudioError": "asr.audio",
    "load_audio": "asr.audio",
    "Bundle": "asr.checkpoint",
    "ModelFileError": "asr.checkpoint",
    "load_model": "asr.checkpoint",
    "BeamSearchDecoder": "asr.decoding",
    "GreedyDecoder": "asr.decoding",
    "Hypothesis": "asr.decoding",
    "Word": "asr.decoding",
    "LanguageModelError": "asr.lm",
    "NgramLM": "asr.lm",
    "load_lm": "asr.lm",
    "DecoderOptions": "asr.streaming",
    "EndpointConfig": "asr.streaming",
    "Event": "asr.streaming",
    "Recognizer": "asr.streaming",
    "Result": "asr.streaming",
    "Stream": "asr.streaming",
    "compute_logprobs": "asr.streaming",
    "transcribe": "asr.streaming",
    "Vocabulary": "asr.text",
}

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "BeamSearchDecoder",
    "Bundle",
    "DecoderOptions",
    "EndpointConfig",
    "Event",
    "GreedyDecoder",
    "Hypothesis",
    "LanguageModelError",
    "ModelFileError",
    "NgramLM",
    "Recognizer",
    "Result",
    "Stream",
    "Vocabulary",
    "Word",
    "compute_logprobs",
    "load_audio",
    "load_lm",
    "load_model",
    "transcribe",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'asr' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


if TYPE_CHECKING:  # what type checkers and editors see
    from asr.audio import SAMPLE_RATE, AudioError, load_audio
    from asr.checkpoint import Bundle, ModelFileError, load_model
    from asr.decoding import BeamSearchDecoder, GreedyDecoder, Hypothesis, Word
    from asr.lm import LanguageModelError, NgramLM, load_lm
    from asr.streaming import (
        DecoderOptions,
        EndpointConfig,
        Event,
        Recognizer,
        Result,
        Stream,
        compute_logprobs,
        transcribe,
    )
    from asr.text import Vocabulary
