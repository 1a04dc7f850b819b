"""A stand-in for the sounddevice module, for driving `asr listen` without a sound card.

It offers one input device. Its InputStream plays the WAV file named by FAKE_SD_WAV into
the callback in real time (FAKE_SD_SPEED times faster), then silence, in blocks the
size asked for, from its own thread as PortAudio does. FAKE_SD_OVERFLOW_EVERY=N flags
every Nth block as an input overflow. FAKE_SD_RATES lists the rates the device accepts.
"""

import os
import threading
import time

import numpy as np
import soundfile


class PortAudioError(Exception):
    pass


class CallbackFlags:
    def __init__(self, overflow: bool) -> None:
        self.input_overflow = overflow


DEVICE = {"name": "Fake Mic", "max_input_channels": 1, "default_samplerate": 48000.0}


class _Default:
    device = (0, 1)  # (input, output), as sounddevice.default.device


default = _Default()


def query_devices(device=None, kind=None):
    if device == "ambiguous":  # what sounddevice says for a name that matches several
        raise ValueError("Multiple input devices found for 'ambiguous':\n[0] pulse, ALSA\n[1] default, ALSA")
    if device is None and kind is None:
        return [DEVICE, {"name": "Fake Speaker", "max_input_channels": 0, "default_samplerate": 48000.0}]
    if device not in (None, 0) and not (isinstance(device, str) and device.lower() in "fake mic"):
        raise ValueError(f"No input device matching {device!r}")
    return DEVICE


def check_input_settings(device=None, channels=None, dtype=None, samplerate=None):
    rates = [int(r) for r in os.environ.get("FAKE_SD_RATES", "16000,48000").split(",")]
    if int(samplerate) not in rates:
        raise PortAudioError(f"Invalid sample rate [PaErrorCode -9997]: {samplerate}")


class InputStream:
    def __init__(
        self, device=None, channels=1, dtype="float32", samplerate=16000, blocksize=1600, callback=None
    ):
        check_input_settings(device, channels, dtype, samplerate)
        audio, rate = soundfile.read(os.environ["FAKE_SD_WAV"], dtype="float32")
        if rate != samplerate:
            import soxr

            audio = soxr.resample(audio, rate, samplerate)
        self.audio = audio.reshape(-1, 1).astype(np.float32)
        self.rate, self.blocksize, self.callback = samplerate, blocksize, callback
        self.speed = float(os.environ.get("FAKE_SD_SPEED", "1"))
        self.every = int(os.environ.get("FAKE_SD_OVERFLOW_EVERY", "0"))
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        began, i = time.monotonic(), 0
        while self._running.is_set():
            start = i * self.blocksize
            block = self.audio[start : start + self.blocksize]
            if len(block) < self.blocksize:
                block = np.concatenate([block, np.zeros((self.blocksize - len(block), 1), np.float32)])
            delay = began + (i + 1) * self.blocksize / self.rate / self.speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            overflow = bool(self.every) and (i + 1) % self.every == 0
            self.callback(block, self.blocksize, None, CallbackFlags(overflow))
            i += 1

    def start(self) -> None:
        self._running.set()
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()

    def close(self) -> None:
        self._thread.join(timeout=2)
