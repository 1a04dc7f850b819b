"""Live recognition: a microphone (or a file played in real time) through a Stream.

The audio callback only copies blocks into a bounded queue; decoding happens on the
main thread, so a slow decode can never stall PortAudio. A decoder slower than real
time falls behind visibly instead of silently: it is warned about, the queue holds at
most MAX_QUEUE_SECONDS of audio (older blocks are dropped and counted), and what was
lost is reported at exit.
"""

from __future__ import annotations

import math
import queue
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from asr.audio import SAMPLE_RATE, MicrophoneError, import_sounddevice, load_audio
from asr.streaming import Event, Recognizer, Result

#: Seconds of audio per block handed from the audio thread to the decoder.
BLOCK_SECONDS = 0.1
#: Most audio waiting for the decoder (s); beyond it the oldest blocks are dropped, so
#: a slow machine shows words at most this late instead of drifting ever further behind.
MAX_QUEUE_SECONDS = 3.0
#: Warn (once) when the decoder is this far behind the microphone (s).
LAG_WARN_SECONDS = 1.0
#: Least time (s) between two "audio dropped" warnings while it keeps happening.
DROP_WARN_INTERVAL = 10.0


@dataclass(frozen=True)
class ListenStats:
    """What a live run lost or lagged; `run` reports it on stderr at exit."""

    overflows: int  # input overflows flagged by PortAudio (audio it could not deliver)
    dropped: float  # seconds of audio dropped from the full queue: the decoder fell behind
    max_lag: float  # seconds: the furthest the decoder was behind the audio source


class _Queue:
    """The bounded block queue shared by every source: filled by its audio thread."""

    realtime = True  # audio arrives at its own pace, whether or not the decoder keeps up

    def _init_queue(self, max_queue_seconds: float) -> None:
        blocks = max(1, round(max_queue_seconds / BLOCK_SECONDS))
        self.max_queue_seconds = blocks * BLOCK_SECONDS
        self.queue: queue.Queue[np.ndarray | None] = queue.Queue(blocks)
        self.overflows = 0
        self.dropped_samples = 0
        self._ended = False

    def _deliver(self, block: np.ndarray) -> None:
        """Queue ``block`` from the audio thread without ever waiting: a full queue loses its oldest."""
        try:
            self.queue.put_nowait(block)
        except queue.Full:
            # Dropping the oldest keeps the delay bounded and the words shown close to now.
            try:
                old = self.queue.get_nowait()
                self.dropped_samples += 0 if old is None else len(old)
            except queue.Empty:  # the decoder took it meanwhile
                pass
            self.queue.put_nowait(block)  # the only producer: there is room now

    def read(self, timeout: float = 0.5) -> np.ndarray | None:
        """Every block waiting, joined; an empty block when none came in ``timeout`` s; None at the end.

        Joining catches up faster: one decode call over 1 s of audio costs a fraction of
        ten calls over 0.1 s each.
        """
        if self._ended:
            return None
        try:
            first = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return np.zeros(0, np.float32)
        blocks, item = [], first
        while item is not None:
            blocks.append(item)
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
        else:
            self._ended = True  # the end marker came: the blocks before it are the last
        if not blocks:
            return None
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


class MicrophoneSource(_Queue):
    """Blocks of float32 mono audio from a sounddevice InputStream."""

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int | None = None,
        max_queue_seconds: float = MAX_QUEUE_SECONDS,
    ) -> None:
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
        self._init_queue(max_queue_seconds)
        self._stream = None

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self._deliver(indata[:, 0].copy())

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


def _no_device(device: int | str | None, error: Exception) -> str:
    text = str(error)
    if "Multiple input devices found" in text:  # a name that matches several: one line
        names = "; ".join(line.strip() for line in text.splitlines()[1:] if line.strip())
        return f"input device {device!r} matches several ({names}); give its index or more of its name"
    if device is None:
        return f"no input device found ({error}); list them with: asr listen --list-devices"
    return f"no input device {device!r} ({error}); list them with: asr listen --list-devices"


class FileSource(MicrophoneSource):
    """Plays a file through the microphone path at ``speed`` times real time.

    At a speed above 0 it behaves like a microphone: a decoder that cannot keep up
    loses the oldest audio. At speed 0 nothing is lost: the file waits for the decoder.
    """

    def __init__(self, path: str, speed: float = 1.0, max_queue_seconds: float = MAX_QUEUE_SECONDS) -> None:
        if not 0 <= speed < math.inf:
            raise ValueError(f"speed must be a number >= 0 (0: no waiting), got {speed}")
        self.audio = load_audio(path)
        self.name = path
        self.sample_rate = SAMPLE_RATE
        self.speed = speed
        self.realtime = speed > 0
        self._init_queue(max_queue_seconds)
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
                self._deliver(self.audio[start : start + block])
            elif not self._wait_put(self.audio[start : start + block]):
                return
        self._wait_put(None)

    def _wait_put(self, item: np.ndarray | None) -> bool:
        """Queue ``item`` once there is room; False when stopped first."""
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def __enter__(self) -> FileSource:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


class LiveView:
    """Terminal output: a live partial line on a terminal; committed lines at endpoints."""

    def __init__(self, out: TextIO | None = None, live: bool | None = None, timestamps: bool = False) -> None:
        self.out = sys.stdout if out is None else out  # looked up now: redirect_stdout applies
        self.live = self.out.isatty() if live is None else live
        self.timestamps = timestamps
        self.prefix = ""  # put before every line (the file's name, for several files)
        self._shown = False

    def _line(self, result: Result) -> str:
        if self.timestamps:  # when the first word began (the utterance's start is often silence)
            start = result.words[0].start if result.words else result.start
            return f"{self.prefix}[{start:7.2f}s] {result.text}"
        return self.prefix + result.text

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

    def warn(self, message: str) -> None:
        """One warning line on stderr; the live line is cleared first and redrawn by the next event."""
        if self._shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._shown = False
        print(f"asr: warning: {message}", file=sys.stderr, flush=True)


def run(
    recognizer: Recognizer, source: MicrophoneSource, view: LiveView, stop: threading.Event | None = None
) -> ListenStats:
    """Decode ``source`` until it ends, Ctrl-C or ``stop`` is set; warnings and losses go to stderr.

    On Ctrl-C or SIGTERM (or ``stop``) the audio already captured is still decoded and
    the stream flushed, so the last words are printed; a second signal skips what is left.
    """
    stream = recognizer.stream()
    stop = stop or threading.Event()
    presses = 0

    def interrupt(signum: int, frame: object) -> None:
        nonlocal presses
        presses += 1
        stop.set()

    # Ctrl-C only sets a flag that the loop checks between blocks: an interrupt landing
    # in the middle of accept_waveform would leave the stream's buffers half updated.
    # SIGTERM (kill, systemd, docker stop, timeout) ends it the same way.
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, interrupt)
    max_lag, lag_warned, dropped_warned, dropped_at = 0.0, False, 0, float("-inf")

    def decode(block: np.ndarray) -> None:
        nonlocal max_lag, lag_warned, dropped_warned, dropped_at
        if source.realtime:
            # Everything but the newest block waited for the decoder.
            lag = len(block) / source.sample_rate - BLOCK_SECONDS
            max_lag = max(max_lag, lag)
            if lag >= LAG_WARN_SECONDS and not lag_warned:
                view.warn(f"decoding is {lag:.1f} s behind real time (the CPU is too slow or busy)")
                lag_warned = True
            if (
                source.dropped_samples > dropped_warned
                and time.monotonic() - dropped_at >= DROP_WARN_INTERVAL
            ):
                dropped = source.dropped_samples / source.sample_rate
                view.warn(f"{dropped:.1f} s of audio dropped so far: decoding cannot keep up")
                dropped_warned, dropped_at = source.dropped_samples, time.monotonic()
        for event in stream.accept_waveform(block, source.sample_rate):
            view.event(event)

    try:
        with source:
            while not stop.is_set():
                block = source.read(timeout=0.1)
                if block is None:
                    break
                decode(block)
        # Stopped: the source is closed, but what it captured before is still decoded.
        while presses < 2:
            block = source.read(timeout=0)
            if block is None or not len(block):
                break
            decode(block)
    except KeyboardInterrupt:  # only when the handler could not be installed
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
    view.final(stream.finish())
    stats = ListenStats(source.overflows, source.dropped_samples / source.sample_rate, max_lag)
    if stats.overflows:
        view.warn(f"{stats.overflows} input overflows (audio was lost; the CPU fell behind)")
    if stats.dropped:
        view.warn(
            f"{stats.dropped:.1f} s of audio dropped: decoding fell more than "
            f"{source.max_queue_seconds:g} s behind real time (the CPU is too slow or busy)"
        )
    elif stats.max_lag >= LAG_WARN_SECONDS:
        view.warn(f"decoding fell up to {stats.max_lag:.1f} s behind real time")
    return stats
