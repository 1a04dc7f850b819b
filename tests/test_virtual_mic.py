"""`asr listen` through a real audio device: PortAudio recording a PulseAudio null sink.

../shared/tools/virtual-mic.sh (or VIRTUAL_MIC) runs a private PulseAudio daemon whose
null sink's monitor is the default source; what we play into the sink is what the
microphone hears. CI installs PulseAudio, so this runs there.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import pytest
from conftest import require

from asr.checkpoint import default_model_path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_TEXT = "hello world please turn on the lights in the kitchen"
SCRIPT = Path(os.environ.get("VIRTUAL_MIC", ROOT.parent / "shared" / "tools" / "virtual-mic.sh"))


@pytest.fixture
def virtual_mic(tmp_path: Path):
    require("pulseaudio")
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} not found")
    env = {**os.environ, "VMIC_DIR": str(tmp_path / "vmic")}
    subprocess.run(["bash", str(SCRIPT), "start"], env=env, check=True, capture_output=True, timeout=30)
    line = subprocess.run(["bash", str(SCRIPT), "env"], env=env, capture_output=True, text=True).stdout
    env["PULSE_SERVER"] = line.strip().split("=", 1)[1]
    yield env
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=30)


def test_listen_hears_the_virtual_microphone(virtual_mic: dict, tmp_path: Path) -> None:
    assert default_model_path().exists(), "the default model must ship with the package"
    require("sox")
    example = ROOT / "asr" / "examples" / "hello.wav"
    twice = tmp_path / "twice.wav"
    subprocess.run(["sox", str(example), str(twice), "pad", "0", "1.5", "repeat", "1"], check=True)
    listen = subprocess.Popen(
        [sys.executable, "-m", "asr", "listen"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=virtual_mic,
    )
    # We speak once the model and its LM are loaded and the input stream is open.
    ready = listen.stderr.readline()
    assert "listening on" in ready, ready + listen.stderr.read()
    time.sleep(0.5)
    subprocess.run(["bash", str(SCRIPT), "play", str(twice)], env=virtual_mic, check=True, timeout=60)
    time.sleep(2)
    listen.send_signal(signal.SIGINT)
    out, err = listen.communicate(timeout=60)
    assert listen.returncode == 0, err
    assert "Traceback" not in err
    lines = [line for line in out.splitlines() if line.strip()]
    # Two utterances, split at the 1.5 s pause, each close to the example's words (the
    # shipped model's character error rate on the file itself is 0.33).
    assert len(lines) == 2, out
    for line in lines:
        assert jiwer.cer(EXAMPLE_TEXT, line) <= 0.5, out
