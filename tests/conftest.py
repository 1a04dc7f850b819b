"""Shared fixtures: tiny models and a few seconds of speech synthesised with espeak-ng."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE, load_audio
from asr.checkpoint import Bundle, save_model
from asr.features import FeatureConfig
from asr.model import AcousticModel, ModelConfig
from asr.text import Vocabulary

SENTENCES = ["yes", "no", "stop the car", "go home now", "one two three", "seven", "hello world", "left"]


def require(tool: str) -> None:
    """Skip where a system tool is missing, but fail in CI, which must install it."""
    if shutil.which(tool) is None:
        message = f"{tool} is not installed (apt-get install {tool})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def speak(text: str, path: Path, voice: str = "en-us", speed: int = 170) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng into a 16 kHz wav at ``path``; returns the audio."""
    require("espeak-ng")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    audio = load_audio(raw)
    raw.unlink()
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return audio


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of eight short espeak-ng utterances; returns the manifest path."""
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for i, text in enumerate(SENTENCES):
        audio = speak(text, root / f"u{i}.wav", voice="en-us" if i % 2 else "en")
        rows.append({"audio": f"u{i}.wav", "text": text, "duration": len(audio) / SAMPLE_RATE})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def tiny_config(**overrides) -> ModelConfig:
    values = {"hidden": 32, "layers": 2, "conv_channels": 4, "dropout": 0.0}
    return ModelConfig(**{**values, **overrides})


@pytest.fixture
def tiny_model() -> AcousticModel:
    torch.manual_seed(0)
    return AcousticModel(tiny_config()).eval()


@pytest.fixture
def tiny_model_file(tmp_path: Path, tiny_model: AcousticModel) -> Path:
    """An untrained tiny model saved as a model file."""
    path = tmp_path / "tiny.pt"
    save_model(Bundle(tiny_model, Vocabulary(), FeatureConfig()), path)
    return path


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """``asr serve --port 0 ARGS`` in a child process; returns it and its http:// URL."""
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "asr", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = process.stderr.readline()
    if not line.startswith("serving on http://"):
        process.kill()
        raise AssertionError(f"asr serve did not start: {line!r}")
    return process, line.split()[2]
