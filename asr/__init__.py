"""asr: a small streaming speech recogniser (log-mel -> GRU -> CTC).

import asr
result = asr.transcribe("speech.wav")   # the bundled default model
print(result.text, result.words)
"""

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.checkpoint import Bundle, ModelFileError, load_model
from asr.decoding import BeamSearchDecoder, GreedyDecoder, Hypothesis, Word
from asr.streaming import EndpointConfig, Event, Recognizer, Result, Stream, transcribe

__version__ = "0.1.0"

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "BeamSearchDecoder",
    "Bundle",
    "EndpointConfig",
    "Event",
    "GreedyDecoder",
    "Hypothesis",
    "ModelFileError",
    "Recognizer",
    "Result",
    "Stream",
    "Word",
    "load_audio",
    "load_model",
    "transcribe",
]
