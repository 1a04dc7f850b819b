"""`asr listen` end to end, driven at the sounddevice boundary (and a virtual mic if present)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.checkpoint import Bundle
from asr.features import FeatureConfig
from asr.listen import FileSource, LiveView, run
from asr.model import AcousticModel
from asr.streaming import EndpointConfig, Recognizer
from asr.text import Vocabulary

FAKES = Path(__file__).parent / "fakes"


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "speech.wav"
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
    return path


def listen(
    args: list[str], env: dict[str, str], interrupt_after: float | None = None
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": f"{FAKES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "asr", "listen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    if interrupt_after is not None:
        # Wait for the model to load and audio to flow, then press Ctrl-C.
        time.sleep(interrupt_after)
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_flushes_and_exits_cleanly(wav: Path, tiny_model_file: Path) -> None:
    done = listen(["--model", str(tiny_model_file)], {"FAKE_SD_WAV": str(wav), "FAKE_SD_SPEED": "4"}, 8.0)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "listening on 'Fake Mic' at 16000 Hz" in done.stderr
    # The random model never stops "talking", so its only line is the flushed one.
    assert len(done.stdout.splitlines()) >= 1 and done.stdout.strip()


def test_overflows_are_counted(wav: Path, tiny_model_file: Path) -> None:
    env = {"FAKE_SD_WAV": str(wav), "FAKE_SD_SPEED": "4", "FAKE_SD_OVERFLOW_EVERY": "5"}
    done = listen(["--model", str(tiny_model_file)], env, 8.0)
    assert done.returncode == 0
    assert "input overflows" in done.stderr


def test_device_rate_fallback_and_errors(wav: Path, tiny_model_file: Path) -> None:
    env = {"FAKE_SD_WAV": str(wav), "FAKE_SD_RATES": "48000", "FAKE_SD_SPEED": "4"}
    done = listen(["--model", str(tiny_model_file), "--device", "fake"], env, 8.0)
    assert done.returncode == 0 and "at 48000 Hz" in done.stderr
    done = listen(["--model", str(tiny_model_file), "--samplerate", "22050"], env)
    assert done.returncode == 1 and "cannot record at 22050 Hz" in done.stderr
    done = listen(["--model", str(tiny_model_file), "--device", "7"], env)
    assert done.returncode == 1 and "no input device 7" in done.stderr
    assert "Traceback" not in done.stderr
    done = listen(["--list-devices"], env)
    assert done.returncode == 0 and done.stdout.strip() == "0  Fake Mic  (1 ch, 48000 Hz)"


def test_missing_portaudio_is_a_clear_message(tmp_path: Path, tiny_model_file: Path) -> None:
    broken = tmp_path / "sounddevice.py"
    broken.write_text("raise OSError('PortAudio library not found')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "asr", "listen", "--model", str(tiny_model_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "asr: error: the PortAudio library is not installed: apt-get install libportaudio2 (macOS: brew install portaudio)"
    )


def test_file_source_through_the_live_path(wav: Path, tiny_model: AcousticModel) -> None:
    """--file plays through the same loop; its output equals the stream's own finals."""
    bundle = Bundle(tiny_model, Vocabulary(), FeatureConfig())
    rec = Recognizer(bundle, EndpointConfig(max_utterance=0.5))

    class Capture:
        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    out = Capture()
    assert run(rec, FileSource(str(wav), speed=0), LiveView(out)) == 0  # type: ignore[arg-type]
    stream = rec.stream()
    expected = [
        e.result.text for e in stream.accept_waveform(sf.read(wav, dtype="float32")[0]) if e.kind == "final"
    ]
    expected.append(stream.finish().text)
    assert out.text.splitlines() == [t for t in expected if t]
