"""asr: a small streaming speech recogniser (log-mel -> GRU -> CTC).

import asr
result = asr.transcribe("speech.wav")   # the bundled default model
print(result.text, result.words)
"""

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

__version__ = "0.1.0"

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
