"""Live recognition: a microphone (or a file played in real time) through a Stream.

The audio callback only copies blocks into a queue; decoding happens on the main
thread, so a slow decode can never stall PortAudio (it shows up as counted overflows).
"""

from __future__ import annotations

import queue
import shutil
import signal
import sys
import threading
import time
from typing import TextIO

import numpy as np

from asr.audio import SAMPLE_RATE, MicrophoneError, import_sounddevice, load_audio
from asr.streaming import Event, Recognizer, Result

#: Seconds of audio per block handed from the audio thread to the decoder.
BLOCK_SECONDS = 0.1


class MicrophoneSource:
    """Blocks of float32 mono audio from a sounddevice InputStream."""

    def __init__(self, device: int | str | None = None, sample_rate: int | None = None) -> None:
        sd = import_sounddevice()
        self._sd = sd
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as e:
            raise MicrophoneError(_no_device(device, e)) from None
        self.device = device
        self.name = str(info["name"])
        self.sample_rate = sample_rate or SAMPLE_RATE
        try:
            sd.check_input_settings(device, channels=1, dtype="float32", samplerate=self.sample_rate)
        except (ValueError, sd.PortAudioError) as e:
            if sample_rate:
                raise MicrophoneError(
                    f"input device {self.name!r} cannot record at {sample_rate} Hz ({e})"
                ) from None
            # The model's rate is not offered: record at the device's own rate and resample.
            self.sample_rate = int(info["default_samplerate"])
        self.queue: queue.Queue[np.ndarray | None] = queue.Queue()
        self.overflows = 0
        self._stream = None

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.queue.put(indata[:, 0].copy())

    def __enter__(self) -> MicrophoneSource:
        try:
            self._stream = self._sd.InputStream(
                device=self.device,
                channels=1,
                dtype="float32",
                samplerate=self.sample_rate,
                blocksize=int(self.sample_rate * BLOCK_SECONDS),
                callback=self._callback,
            )
            self._stream.start()
        except (ValueError, self._sd.PortAudioError) as e:
            raise MicrophoneError(
                f"cannot open input device {self.name!r} at {self.sample_rate} Hz ({e})"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()

    def read(self, timeout: float = 0.5) -> np.ndarray | None:
        """The next block, an empty block when none came in time, None at the end."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return np.zeros(0, np.float32)


def _no_device(device: int | str | None, error: Exception) -> str:
    if device is None:
        return f"no input device found ({error}); list them with: asr listen --list-devices"
    return f"no input device {device!r} ({error}); list them with: asr listen --list-devices"


class FileSource(MicrophoneSource):
    """Plays a file through the microphone path at ``speed`` times real time (0: no waiting)."""

    def __init__(self, path: str, speed: float = 1.0) -> None:
        self.audio = load_audio(path)
        self.name = path
        self.sample_rate = SAMPLE_RATE
        self.speed = speed
        self.queue = queue.Queue()
        self.overflows = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, daemon=True)

    def _play(self) -> None:
        block = int(self.sample_rate * BLOCK_SECONDS)
        began = time.monotonic()
        for i, start in enumerate(range(0, len(self.audio), block)):
            if self._stop.is_set():
                return
            if self.speed > 0:
                # Deliver block i when it would have finished recording.
                delay = began + (i + 1) * BLOCK_SECONDS / self.speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.queue.put(self.audio[start : start + block])
        self.queue.put(None)

    def __enter__(self) -> FileSource:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


class LiveView:
    """Terminal output: a live partial line on a terminal; committed lines at endpoints."""

    def __init__(self, out: TextIO = sys.stdout, live: bool | None = None, timestamps: bool = False) -> None:
        self.out = out
        self.live = out.isatty() if live is None else live
        self.timestamps = timestamps
        self._shown = False

    def _line(self, result: Result) -> str:
        if self.timestamps:
            return f"[{result.start:7.2f}s] {result.text}"
        return result.text

    def event(self, event: Event) -> None:
        if event.kind == "final":
            self.final(event.result)
        elif self.live:
            width = shutil.get_terminal_size((80, 20)).columns - 1
            text = self._line(event.result)
            self.out.write("\r\x1b[K" + text[-width:])
            self.out.flush()
            self._shown = True

    def final(self, result: Result) -> None:
        if self._shown:
            self.out.write("\r\x1b[K")
            self._shown = False
        if result.text:
            self.out.write(self._line(result) + "\n")
        self.out.flush()


def run(recognizer: Recognizer, source: MicrophoneSource, view: LiveView) -> int:
    """Decode ``source`` until it ends or Ctrl-C; returns the number of input overflows.

    Ctrl-C flushes the stream, so the last words are still printed.
    """
    stream = recognizer.stream()
    stop = threading.Event()
    # Ctrl-C only sets a flag that the loop checks between blocks: an interrupt landing
    # in the middle of accept_waveform would leave the stream's buffers half updated.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        with source:
            while not stop.is_set():
                block = source.read(timeout=0.1)
                if block is None:
                    break
                for event in stream.accept_waveform(block, source.sample_rate):
                    view.event(event)
    except KeyboardInterrupt:  # only when the handler could not be installed
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    view.final(stream.finish())
    return source.overflows
