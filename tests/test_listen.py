"""`asr listen` end to end, driven at the sounddevice boundary (and a virtual mic if present)."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.checkpoint import Bundle
from asr.cli import main
from asr.features import FeatureConfig
from asr.listen import BLOCK_SECONDS, LAG_WARN_SECONDS, FileSource, ListenStats, LiveView, run
from asr.model import AcousticModel
from asr.streaming import EndpointConfig, Recognizer, Stream
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
    done = listen(["--model", str(tiny_model_file), "--device", "ambiguous"], env)
    assert done.returncode == 1 and done.stderr == (
        "asr: error: input device 'ambiguous' matches several ([0] pulse, ALSA; [1] default, ALSA); "
        "give its index or more of its name\n"
    )
    done = listen(["--list-devices"], env)
    assert done.returncode == 0 and done.stdout == "*  0  Fake Mic  (1 ch, 48000 Hz)\n(* the default input)\n"
    done = listen(["--list-devices", "--file", str(wav)], env)
    assert done.returncode == 2 and "does not apply to --file" in done.stderr


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


class Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def lines(rec: Recognizer, audio: np.ndarray) -> list[str]:
    """The committed lines of ``audio`` decoded whole."""
    stream = rec.stream()
    expected = [e.result.text for e in stream.accept_waveform(audio) if e.kind == "final"]
    expected.append(stream.finish().text)
    return [t for t in expected if t]


@pytest.fixture
def rec(tiny_model: AcousticModel) -> Recognizer:
    return Recognizer(Bundle(tiny_model, Vocabulary(), FeatureConfig()), EndpointConfig(max_utterance=0.5))


def test_file_source_through_the_live_path(wav: Path, rec: Recognizer) -> None:
    """--file plays through the same loop; its output equals the stream's own finals."""
    out = Capture()
    stats = run(rec, FileSource(str(wav), speed=0), LiveView(out))  # type: ignore[arg-type]
    assert stats == ListenStats(overflows=0, dropped=0.0, max_lag=0.0)
    assert out.text.splitlines() == lines(rec, sf.read(wav, dtype="float32")[0])


class Backlog(FileSource):
    """The whole file already captured and queued; Ctrl-C pressed ``presses`` times at the first read."""

    def __init__(self, path: str, presses: int, sig: int = signal.SIGINT) -> None:
        super().__init__(path)
        self.presses = presses
        self.sig = sig

    def __enter__(self) -> "Backlog":
        block = int(self.sample_rate * BLOCK_SECONDS)
        for start in range(0, len(self.audio), block):
            self.queue.put_nowait(self.audio[start : start + block])
        return self

    def read(self, timeout: float = 0.5) -> np.ndarray | None:
        if self.presses:
            for _ in range(self.presses):
                signal.raise_signal(self.sig)
            self.presses = 0
            return self.queue.get_nowait()  # one block only: the rest is still waiting
        return super().read(timeout)


def test_ctrl_c_decodes_the_audio_already_captured(wav: Path, rec: Recognizer) -> None:
    audio = sf.read(wav, dtype="float32")[0]
    out = Capture()
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where a shell started us in the background
    run(rec, Backlog(str(wav), presses=1), LiveView(out))  # type: ignore[arg-type]
    assert out.text.splitlines() == lines(rec, audio)
    assert signal.getsignal(signal.SIGINT) is before  # put back as it was
    # A second Ctrl-C skips the backlog: only the block decoded before it counts.
    out = Capture()
    run(rec, Backlog(str(wav), presses=2), LiveView(out))  # type: ignore[arg-type]
    assert out.text.splitlines() == lines(rec, audio[: int(16000 * BLOCK_SECONDS)])


def test_sigterm_ends_like_ctrl_c(wav: Path, rec: Recognizer) -> None:
    """kill, systemd, docker stop and timeout send SIGTERM: the last words still come out."""
    audio = sf.read(wav, dtype="float32")[0]
    out = Capture()
    before = signal.getsignal(signal.SIGTERM)
    run(rec, Backlog(str(wav), presses=1, sig=signal.SIGTERM), LiveView(out))  # type: ignore[arg-type]
    assert out.text.splitlines() == lines(rec, audio)
    assert signal.getsignal(signal.SIGTERM) is before


def test_timestamps_are_when_the_first_word_began() -> None:
    from asr.decoding import Word
    from asr.streaming import Result

    out = Capture()
    view = LiveView(out, timestamps=True)
    view.final(
        Result("hello there", "", (Word("hello", 1.68, 2.0, 0.9), Word("there", 2.1, 2.4, 0.9)), 2.4, 0.0)
    )
    view.final(Result("hm", "", (), 1.0, 5.0))  # no word times: the utterance's start
    assert out.text.splitlines() == ["[   1.68s] hello there", "[   5.00s] hm"]


def test_a_full_queue_drops_its_oldest_blocks(wav: Path) -> None:
    source = FileSource(str(wav), max_queue_seconds=0.3)
    for i in range(10):
        source._deliver(np.full(1600, i, np.float32))
    assert source.dropped_samples == 7 * 1600
    block = source.read(timeout=0)
    assert block is not None and list(block[::1600]) == [7, 8, 9]  # the newest, in order, joined
    assert len(source.read(timeout=0)) == 0  # type: ignore[arg-type]


def test_a_slow_decoder_falls_behind_visibly_and_boundedly(
    tmp_path: Path, rec: Recognizer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file at 20x real time into a decoder that needs 0.2 s a call: audio must be dropped and said."""
    path = tmp_path / "long.wav"
    audio = (0.1 * np.random.default_rng(1).standard_normal(16000 * 10)).astype(np.float32)
    sf.write(path, audio, 16000)
    decoded = []
    accept = Stream.accept_waveform

    def slow(self: Stream, chunk: np.ndarray, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        decoded.append(len(chunk))
        return accept(self, chunk, *args, **kwargs)

    monkeypatch.setattr(Stream, "accept_waveform", slow)
    stats = run(rec, FileSource(str(path), speed=20, max_queue_seconds=2.0), LiveView(Capture()))  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert stats.dropped > 0 and stats.overflows == 0
    # Nothing vanishes uncounted, and no call ever got more than the queue holds.
    assert sum(decoded) + round(stats.dropped * 16000) == len(audio)
    assert max(decoded) <= 2.0 * 16000
    assert LAG_WARN_SECONDS <= stats.max_lag <= 2.0
    assert "behind real time" in err and "s of audio dropped so far" in err
    assert f"{stats.dropped:.1f} s of audio dropped: decoding fell more than 2 s behind" in err


def test_listen_threads(wav: Path, tiny_model_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """listen runs the model on one thread unless told otherwise."""
    before = torch.get_num_threads()
    args = ["listen", "--model", str(tiny_model_file), "--file", str(wav), "--speed", "0"]
    try:
        torch.set_num_threads(2)
        assert main(args) == 0 and torch.get_num_threads() == 1
        assert main([*args, "--threads", "2"]) == 0 and torch.get_num_threads() == 2
        with pytest.raises(SystemExit) as e:
            main([*args, "--threads", "0"])
        assert e.value.code == 2
    finally:
        torch.set_num_threads(before)
    assert "warning" not in capsys.readouterr().err


@pytest.fixture
def int8_used(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each Recognizer the CLI builds gets an int8 model, in order."""
    import asr.streaming
    from asr.export import is_int8

    used: list[bool] = []
    real = asr.streaming.Recognizer

    def spy(bundle, *args, **kwargs):  # type: ignore[no-untyped-def]
        used.append(is_int8(bundle))
        return real(bundle, *args, **kwargs)

    monkeypatch.setattr(asr.streaming, "Recognizer", spy)
    return used


def test_listen_runs_int8_by_default(
    wav: Path, tiny_model_file: Path, int8_used: list[bool], capfd: pytest.CaptureFixture[str]
) -> None:
    """Live audio on the CPU gets the int8 model unless --no-int8 asks for float32, and
    both transcribe the file."""
    args = ["listen", "--model", str(tiny_model_file), "--file", str(wav), "--speed", "0"]
    assert main(args) == 0
    int8_out = capfd.readouterr().out
    assert main([*args, "--no-int8"]) == 0
    float_out = capfd.readouterr().out
    assert main([*args, "--int8"]) == 0
    assert int8_used == [True, False, True]
    assert int8_out.strip() and float_out.strip()


def test_listen_goes_on_in_float32_where_torch_cannot_quantise(
    wav: Path,
    tiny_model_file: Path,
    int8_used: list[bool],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Some torch builds have no quantised engine: listen's default int8 falls back to
    float32 with a warning, while an explicit --int8 is one error line and exit 2."""
    import asr.export

    def no_engine(model):  # type: ignore[no-untyped-def]
        raise RuntimeError("Didn't find engine for operation quantized::linear_prepack NoQEngine")

    monkeypatch.setattr(asr.export, "_quantize_dynamic", no_engine)
    listen = ["listen", "--model", str(tiny_model_file), "--file", str(wav), "--speed", "0"]
    assert main(listen) == 0
    out, err = capfd.readouterr()
    assert int8_used == [False] and out.strip()
    assert "warning: int8 is not available in this torch build (Didn't find engine" in err
    assert "running float32" in err and "Traceback" not in err
    transcribe = ["transcribe", "--model", str(tiny_model_file), str(wav)]
    for command in ([*listen, "--int8"], [*transcribe, "--int8"]):
        with pytest.raises(SystemExit) as exited:  # what `asr` exits with
            main(command)
        assert exited.value.code == 2
        err = capfd.readouterr().err
        assert err.count("\n") == 1 and err.startswith(
            "asr: error: int8 is not available in this torch build (Didn't"
        )
    assert int8_used == [False]


@pytest.mark.parametrize("speed", [-1.0, math.nan, math.inf])
def test_file_source_refuses_a_speed_it_cannot_play(speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be a number >= 0"):
        FileSource("any.wav", speed=speed)
