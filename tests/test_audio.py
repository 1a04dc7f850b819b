import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    SAMPLE_RATE,
    AudioError,
    as_float32,
    check_sample_rate,
    load_audio,
)


def tone(rate: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.4 * np.sin(2 * np.pi * 440 * t)
    return np.stack([mono] * channels, axis=1).astype(np.float32)


@pytest.mark.parametrize(
    ("suffix", "rate", "channels", "options"),
    [
        ("wav", 8000, 1, {"subtype": "PCM_U8"}),
        ("wav", 16000, 1, {"subtype": "PCM_16"}),
        ("wav", 44100, 2, {"subtype": "PCM_24"}),
        ("wav", 22050, 1, {"subtype": "PCM_32"}),
        ("wav", 48000, 6, {"subtype": "FLOAT"}),
        ("wav", 11025, 1, {"subtype": "DOUBLE"}),
        ("flac", 32000, 2, {}),
        ("ogg", 44100, 2, {"format": "OGG", "subtype": "VORBIS"}),
        ("opus", 48000, 1, {"format": "OGG", "subtype": "OPUS"}),
        ("mp3", 44100, 2, {"format": "MP3"}),
    ],
)
def test_formats_become_mono_16k(tmp_path: Path, suffix: str, rate: int, channels: int, options) -> None:
    path = tmp_path / f"tone.{suffix}"
    sf.write(path, tone(rate, 1.0, channels), rate, **options)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Lossy codecs may pad a few ms; the length must still be one second.
    assert abs(audio.shape[0] - SAMPLE_RATE) < 0.06 * SAMPLE_RATE
    middle = audio[2000:-2000]
    rms = float(np.sqrt(np.mean(middle**2)))
    assert rms == pytest.approx(0.4 / np.sqrt(2), rel=0.1)
    # The 440 Hz tone survives resampling as the dominant frequency.
    spectrum = np.abs(np.fft.rfft(middle))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(middle)
    assert abs(peak_hz - 440) < 5


def test_channels_are_averaged(tmp_path: Path) -> None:
    left = tone(16000)[:, 0]
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav"), left / 2, atol=1e-6)


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def truncated_copy(tmp_path: Path, suffix: str, **options) -> Path:
    full = tmp_path / f"full.{suffix}"
    sf.write(full, tone(16000, 2.0), 16000, **options)
    data = full.read_bytes()
    return write_bytes(tmp_path / f"cut.{suffix}", data[: len(data) // 2])


def truncated_ogg(tmp_path: Path, subtype: str) -> Path:
    """An Ogg file cut at 60%: libsndfile alone decodes its first pages without complaint."""
    full = tmp_path / "full.ogg"
    noise = 0.3 * np.random.default_rng(0).standard_normal(4 * 16000)
    sf.write(full, noise, 16000, format="OGG", subtype=subtype)
    assert len(load_audio(full)) == 4 * 16000  # the whole file ends with its end page
    data = full.read_bytes()
    # A file that ends on a whole page, without the end-of-stream flag, is kept whole.
    last = data.rfind(b"OggS")
    assert data[last + 5] & 0x04  # the real end page
    kept = write_bytes(tmp_path / "unterminated.ogg", data[:last])
    assert 0 < len(load_audio(kept)) < 4 * 16000
    return write_bytes(tmp_path / "cut.ogg", data[: len(data) * 6 // 10])


def wav_claiming_rate(tmp_path: Path, rate: int) -> Path:
    """A good WAV whose header's sample rate field was overwritten: at 1 Hz its 2 s would
    "resample" into 9 hours of audio (and all of the machine's memory)."""
    path = tmp_path / f"rate{rate}.wav"
    sf.write(path, tone(16000, 2.0), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[24:28] == (16000).to_bytes(4, "little")  # the fmt chunk's rate, as written
    data[24:28] = rate.to_bytes(4, "little")
    return write_bytes(path, bytes(data))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: write_bytes(d / "empty.wav", b""), "empty file"),
        (lambda d: write_bytes(d / "notes.txt", b"hello, this is text\n" * 20), "not a readable audio file"),
        (
            lambda d: write_bytes(d / "bad.wav", b"RIFF\x00\x00\x00\x00WAVEjunkjunk" * 8),
            "not a readable audio file",
        ),
        (lambda d: write_bytes(d / "random.flac", bytes(range(256)) * 40), "not a readable audio file"),
        (lambda d: truncated_copy(d, "wav", subtype="PCM_16"), "truncated"),
        (
            lambda d: truncated_copy(d, "flac"),
            "truncated or corrupt (decoding failed after 0 of 32000 frames",
        ),
        (lambda d: truncated_ogg(d, "VORBIS"), "truncated (the file ends inside an Ogg page)"),
        (lambda d: truncated_ogg(d, "OPUS"), "truncated (the file ends inside an Ogg page)"),
        (lambda d: wav_claiming_rate(d, 1), "corrupt header (sample rate 1 Hz"),
        (lambda d: wav_claiming_rate(d, 3_000_000), "corrupt header (sample rate 3000000 Hz"),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_cut_off_mp3_is_one_line_without_decoder_chatter(tmp_path: Path, capfd) -> None:
    """libmpg123 writes "Warning: Xing stream size off ..." straight to file descriptor 2
    for a cut-off mp3; the user should see only the one error line."""
    path = truncated_copy(tmp_path, "mp3")
    with pytest.raises(AudioError, match=r"cut\.mp3: truncated \(\d+ of 32000 frames\)"):
        load_audio(path)
    assert capfd.readouterr().err == ""


def test_only_mpg123_lines_are_held_back(capfd) -> None:
    from asr.audio import _without_mpg123_chatter

    with _without_mpg123_chatter():
        os.write(2, b"Warning: Xing stream size off by more than 1%\n[src/libmpg123/parse.c:1]\n")
        os.write(2, b"another library's message\n")
    assert capfd.readouterr().err == "another library's message\n"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected(tmp_path: Path, bad: float) -> None:
    audio = tone(16000)
    audio[100, 0] = bad
    sf.write(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(tmp_path / "nan.wav")


def test_no_samples(tmp_path: Path) -> None:
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(tmp_path / "zero.wav")


def test_as_float32_checks_chunks() -> None:
    np.testing.assert_allclose(as_float32(np.array([16384, -32768], np.int16)), [0.5, -1.0])
    assert as_float32(np.zeros((5, 1))).shape == (5,)
    with pytest.raises(ValueError, match="shape"):
        as_float32(np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        as_float32(np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        as_float32(np.array([0.0, np.nan], np.float32))
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        as_float32([0.0, 0.1])  # type: ignore[arg-type]
    import torch

    tensor = torch.tensor([0.25, -0.5], dtype=torch.float64, requires_grad=True)
    np.testing.assert_allclose(as_float32(tensor), [0.25, -0.5])  # detached, as float32
    assert as_float32(tensor).dtype == np.float32


def test_app_sample_rates_are_whole_plausible_numbers() -> None:
    assert check_sample_rate(8000) == check_sample_rate(8000.0) == check_sample_rate(np.int64(8000)) == 8000
    for bad in (8000.5, "16000", True, None):
        with pytest.raises(ValueError, match="whole number of Hz"):
            check_sample_rate(bad)
    for bad in (1, 0, -16000, MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1):
        with pytest.raises(ValueError, match=f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"):
            check_sample_rate(bad)


def test_an_unreadable_file_is_one_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "secret.wav"
    sf.write(path, tone(16000), 16000)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == path else real(p, mode))
    with pytest.raises(AudioError, match=r"secret\.wav: permission denied"):
        load_audio(path)
