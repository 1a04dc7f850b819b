"""Audio in: files of any common format, rate and channel count -> float32 mono 16 kHz."""

from __future__ import annotations

import numbers
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

#: The rate every model in this package is trained and run at.
SAMPLE_RATE = 16000
#: Feature frames: 25 ms windows every 10 ms.
N_FFT = 400
WIN_LENGTH = N_FFT
HOP_LENGTH = 160
N_MELS = 80
FRAME_SECONDS = HOP_LENGTH / SAMPLE_RATE
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH

#: Sample rates a file or an app may use (Hz). A header that claims less is corrupt (and
#: would "resample" a few kilobytes into hours of audio); more is no real recording.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 768000

_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}


class AudioError(Exception):
    """A file or buffer that cannot be used as audio; the message names it and the problem."""


def load_audio(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file and return it as float32 mono at ``sample_rate``.

    Reads wav (8/16/24/32-bit integer and float), flac, ogg (vorbis and opus) and mp3,
    at any rate and channel count. Channels are averaged and the rate is converted with
    soxr. Returns an array of shape ``(samples,)``.

    Raises AudioError naming the file for a missing, empty, corrupt, truncated or
    non-audio file, and for one that holds NaN or infinite samples.
    """
    reader = AudioReader(path)
    audio = np.concatenate(list(reader.blocks(1 << 20)))
    return resample(audio, reader.sample_rate, sample_rate)


class AudioReader:
    """An audio file read block by block (flat memory for long files), with the checks of
    ``load_audio``; blocks are float32 mono ``(samples,)`` at the file's own rate."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = str(path)
        self.path = Path(path)
        if not self.path.exists():
            raise AudioError(f"{self.name}: no such file")
        if self.path.is_dir():
            raise AudioError(f"{self.name}: is a directory, not an audio file")
        if not os.access(self.path, os.R_OK):
            raise AudioError(f"{self.name}: permission denied")
        if self.path.stat().st_size == 0:
            raise AudioError(f"{self.name}: empty file")
        # Decided before libsndfile opens anything: with file descriptor 2 closed, its open
        # would take number 2, and redirecting "stderr" would overwrite the audio file's.
        self._mp3 = _looks_like_mp3(self.path) and _stderr_is_open()
        with self._open() as f:
            self.sample_rate = int(f.samplerate)
            self.declared_frames = int(f.frames)
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise AudioError(
                f"{self.name}: corrupt header (sample rate {self.sample_rate} Hz; "
                f"audio files have {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)"
            )

    def _quiet(self):
        """libmpg123 prints its own warnings on the process's stderr (for a cut-off file,
        "Warning: Xing stream size off ..."); the checks here report those files in one line."""
        return _without_mpg123_chatter() if self._mp3 else nullcontext()

    def _open(self) -> sf.SoundFile:
        try:
            with self._quiet():
                return sf.SoundFile(self.name)
        except sf.LibsndfileError as e:
            raise AudioError(f"{self.name}: not a readable audio file ({_reason(e)})") from None
        except (RuntimeError, ValueError, OSError) as e:
            raise AudioError(f"{self.name}: not a readable audio file ({e})") from None

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        """Yield blocks of ``size`` samples (the last may be shorter); checks as it goes."""
        total = 0
        with self._open() as f:
            while True:
                try:
                    with self._quiet():
                        data = f.read(size, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as e:
                    # The header was read, so the audio data after it is cut off or damaged
                    # (a cut-off FLAC makes the decoder "lose sync").
                    where = (
                        f"after {total} of {self.declared_frames} frames: "
                        if self.declared_frames > 0
                        else ""
                    )
                    raise AudioError(
                        f"{self.name}: truncated or corrupt (decoding failed {where}{_reason(e)})"
                    ) from None
                if data.shape[0] == 0:
                    break
                total += data.shape[0]
                yield to_mono(data, self.name)
        if total == 0:
            raise AudioError(f"{self.name}: holds no audio samples")
        # libsndfile reports the length from the header; a shorter read means a cut-off file.
        if total < self.declared_frames:
            raise AudioError(f"{self.name}: truncated ({total} of {self.declared_frames} frames)")
        missing = _wav_missing_bytes(self.path)
        if missing:
            raise AudioError(f"{self.name}: truncated (the WAV data chunk lacks {missing} bytes)")
        if _ogg_unterminated(self.path):
            raise AudioError(f"{self.name}: truncated (the file ends inside an Ogg page)")


def _looks_like_mp3(path: Path) -> bool:
    """An ID3 tag or an MPEG audio frame sync at the start of the file (False when the
    file cannot be read: opening it for decoding then says why, as for any file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(3)
    except OSError:
        return False
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _stderr_is_open() -> bool:
    try:
        os.fstat(2)
    except OSError:
        return False
    return True


_MPG123_LINE = re.compile(r"^(Warning|Note|Error): |^\[[^\]]*mpg123")
#: File descriptor 2 is one per process: one redirection at a time, or a second thread
#: would save the first one's temporary file as "stderr" and restore it at the end.
_STDERR_LOCK = threading.Lock()


@contextmanager
def _without_mpg123_chatter() -> Iterator[None]:
    """Hold back what C code writes to file descriptor 2 while the block runs, then pass on
    every line except libmpg123's own warnings. Blocks in other threads wait their turn."""
    with _STDERR_LOCK:
        if sys.stderr is not None:
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to redirect
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                kept = [
                    line
                    for line in held.read().decode(errors="replace").splitlines(keepends=True)
                    if not _MPG123_LINE.match(line)
                ]
                if kept and sys.stderr is not None:
                    sys.stderr.write("".join(kept))


def _wav_missing_bytes(path: Path) -> int:
    """Bytes a RIFF/WAVE file's data chunk declares but the file lacks (0 when complete).

    libsndfile quietly shortens a cut-off WAV to what is there, so check the header.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return 0
            length = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                # 0 and 0xFFFFFFFF mark a stream whose writer never knew the length.
                if length in (0, 0xFFFFFFFF):
                    return 0
                return max(0, f.tell() + length - size)
            f.seek(length + (length & 1), 1)


def _ogg_unterminated(path: Path) -> bool:
    """True for an Ogg file that ends inside a page: a cut-off file.

    libsndfile decodes a cut-off Ogg file up to the cut without complaint. A file that
    ends on a whole page without the end-of-stream flag (a recorder that was killed, a
    stream dump) is kept: all its audio is there.
    """
    with open(path, "rb") as f:
        if f.read(4) != b"OggS":
            return False
        size = path.stat().st_size
        f.seek(max(0, size - 65536))  # a page is at most 65,307 bytes long
        tail = f.read()
    end = len(tail)
    while True:
        start = tail.rfind(b"OggS", 0, end)
        if start < 0:
            return False  # no page header found near the end: leave it to the decoder
        header = tail[start : start + 27]
        if len(header) < 27:
            return True  # the file ends inside a page header
        if header[4] == 0:  # stream structure version 0
            segments = header[26]
            table = tail[start + 27 : start + 27 + segments]
            # Whole when its segment table and the body it describes are all there.
            return len(table) < segments or start + 27 + segments + sum(table) > len(tail)
        end = start  # "OggS" inside packet data: look further back


def _reason(error: Exception) -> str:
    text = str(error)
    # libsndfile's messages start with the file name, which the caller already gives.
    return text.split(": ", 1)[-1].strip() or type(error).__name__


def to_mono(data: np.ndarray, name: str = "audio") -> np.ndarray:
    """Average ``(samples, channels)`` float audio to ``(samples,)``; reject NaN and inf."""
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    audio = data.mean(axis=1) if data.ndim == 2 else data
    return np.ascontiguousarray(audio, dtype=np.float32)


def resample(audio: np.ndarray, orig_rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Convert ``(samples,)`` float32 audio between rates with soxr (high quality)."""
    if orig_rate == new_rate:
        return audio.astype(np.float32, copy=False)
    if orig_rate <= 0:
        raise AudioError(f"invalid sample rate {orig_rate}")
    return soxr.resample(audio, orig_rate, new_rate, quality="HQ").astype(np.float32, copy=False)


def check_sample_rate(sample_rate: object) -> int:
    """An app-supplied rate as an int (8000 and 8000.0 alike); anything but a whole number
    of Hz from MIN_SAMPLE_RATE to MAX_SAMPLE_RATE raises ValueError."""
    whole = isinstance(sample_rate, numbers.Integral) or (
        isinstance(sample_rate, numbers.Real) and float(sample_rate).is_integer()
    )
    if isinstance(sample_rate, bool) or not whole:
        raise ValueError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    rate = int(sample_rate)  # type: ignore[call-overload]
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz, got {rate}")
    return rate


def from_tensor(audio: object) -> object:
    """A torch tensor as a numpy array (detached, on the CPU); anything else as it is.

    Lets the audio entry points take tensors without importing torch here."""
    if type(audio).__module__.startswith("torch") and hasattr(audio, "detach"):
        tensor = audio.detach().cpu()  # type: ignore[attr-defined]
        if str(tensor.dtype) in ("torch.bfloat16", "torch.float16"):  # numpy has no bfloat16
            tensor = tensor.float()
        return tensor.numpy()
    return audio


#: Float samples beyond this (6 dB over full scale) are almost surely scaled wrongly: warned.
FLOAT_PEAK_WARNING = 2.0


def as_float32(chunk: np.ndarray) -> np.ndarray:
    """Check an app-supplied chunk and convert it to float32 ``(samples,)``.

    Accepts float32/float64 in [-1, 1] or int16/int32 PCM, shaped ``(samples,)`` or
    ``(samples, 1)``, as a numpy array or a torch tensor. Anything else raises a
    TypeError (not an array) or ValueError (dtype, shape, NaN) that names the problem.
    Float samples beyond ``FLOAT_PEAK_WARNING`` (int16 values passed as floats, say) are
    used as given, with a UserWarning.
    """
    chunk = from_tensor(chunk)
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        raise TypeError(
            "audio must be a numpy array or a torch tensor, got bytes: "
            "for 16-bit PCM bytes pass np.frombuffer(data, np.int16)"
        )
    if not isinstance(chunk, np.ndarray):
        raise TypeError(f"audio must be a numpy array or a torch tensor, got {type(chunk).__name__}")
    if chunk.ndim == 2 and chunk.shape[1] == 1:
        chunk = chunk[:, 0]
    if chunk.ndim != 1:
        hint = ""
        if chunk.ndim == 2:  # average over the shorter axis: the channels, whichever layout
            axis = 1 if chunk.shape[0] >= chunk.shape[1] else 0
            hint = f"; average the channels first, e.g. chunk.mean(axis={axis})"
        raise ValueError(f"audio must be mono with shape (samples,), got shape {chunk.shape}{hint}")
    if chunk.dtype in _INT_SCALE:
        return chunk.astype(np.float32) / _INT_SCALE[chunk.dtype]
    if chunk.dtype not in (np.float32, np.float64):
        raise ValueError(f"audio must be float32, float64, int16 or int32, got {chunk.dtype}")
    if not np.isfinite(chunk).all():
        raise ValueError("audio contains NaN or infinite samples")
    peak = float(np.abs(chunk).max()) if chunk.size else 0.0
    if peak > FLOAT_PEAK_WARNING:
        # One fixed message, so that Python shows it once, not for every chunk of a stream.
        warnings.warn(
            "float audio should be in [-1, 1], but these samples go far beyond it "
            "(int16 values as floats? divide them by 32768)",
            stacklevel=3,
        )
    return chunk.astype(np.float32, copy=False)


def as_mono_float32(audio: np.ndarray) -> np.ndarray:
    """Check a whole app-supplied signal and convert it to float32 mono ``(samples,)``.

    Takes what ``as_float32`` takes, and also ``(samples, channels)`` arrays (the layout
    ``soundfile.read`` returns), whose channels are averaged as a file's are. An array
    with more columns than rows looks like ``(channels, samples)`` and raises ValueError.
    """
    audio = from_tensor(audio)
    if isinstance(audio, np.ndarray) and audio.ndim == 2 and audio.shape[1] > 1:
        check_samples_channels(audio)
        return to_mono(as_float32(audio.reshape(-1)).reshape(audio.shape))
    return as_float32(audio)


def check_samples_channels(audio: np.ndarray) -> None:
    """Raise ValueError when a 2-D array looks like ``(channels, samples)`` (more columns
    than rows) rather than the ``(samples, channels)`` layout that ``soundfile.read`` returns."""
    if audio.shape[1] > audio.shape[0] > 0:
        raise ValueError(
            f"audio must be shaped (samples, channels), got shape {audio.shape}, which looks like "
            "(channels, samples); pass audio.T"
        )


class MicrophoneError(Exception):
    """The microphone cannot be used: PortAudio missing, no input device, bad settings."""


def import_sounddevice():
    """Import sounddevice lazily, turning a missing PortAudio into a clear message."""
    try:
        import sounddevice
    except ImportError:
        raise MicrophoneError("the sounddevice package is not installed: pip install sounddevice") from None
    except OSError:
        raise MicrophoneError(
            "the PortAudio library is not installed: apt-get install libportaudio2 "
            "(macOS: brew install portaudio)"
        ) from None
    return sounddevice


def input_devices() -> list[dict]:
    """Input devices as PortAudio lists them: index, name, channels, default rate, and
    whether it is the default input."""
    sd = import_sounddevice()
    try:
        default = int(sd.default.device[0])
    except (TypeError, ValueError, IndexError):
        default = -1
    return [
        {
            "index": i,
            "name": d["name"],
            "channels": d["max_input_channels"],
            "sample_rate": d["default_samplerate"],
            "default": i == default,
        }
        for i, d in enumerate(sd.query_devices())
        if d["max_input_channels"] > 0
    ]
