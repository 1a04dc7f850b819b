"""A Python client for ``asr serve``: stream audio over the WebSocket protocol.

import asyncio, asr.client
reply = asyncio.run(asr.client.stream_audio("ws://127.0.0.1:8765/ws", samples, 16000))
print(reply.text)
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asr.audio import as_float32, as_mono_float32, check_sample_rate, check_samples_channels, from_tensor


@dataclass
class Reply:
    """What the server sent for one stream.

    ``finals``: the final messages in order; ``partials``: how many partial messages came;
    ``final_latency``: seconds from sending the end message to receiving "done";
    ``error``: the server's error message, if it closed the stream with one.
    """

    finals: list[dict[str, Any]] = field(default_factory=list)
    partials: int = 0
    final_latency: float = float("nan")
    error: str = ""
    audio_seconds: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(f["text"] for f in self.finals if f["text"])


async def stream_audio(
    url: str,
    samples: np.ndarray,
    sample_rate: int,
    chunk_seconds: float = 0.1,
    realtime: bool = False,
    config: dict[str, Any] | None = None,
) -> Reply:
    """Send ``samples`` ``(samples,)`` or ``(samples, channels)`` (float in [-1, 1] or int16)
    as mono chunks and collect the reply. Channels are averaged, as a file's are.

    The chunks are s16le (float samples rounded to 16 bits), or float32 as they are
    when ``config`` asks for ``"format": "f32le"``. ``realtime`` paces the chunks at the
    speed of speech, as a microphone would.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    samples = from_tensor(samples)  # type: ignore[assignment]
    if not isinstance(samples, np.ndarray):
        raise TypeError(f"samples must be a numpy array or a torch tensor, got {type(samples).__name__}")
    sample_rate = check_sample_rate(sample_rate)  # 16000.0 is 16000, as in the Python API
    if samples.ndim == 2 and samples.dtype == np.int16:
        check_samples_channels(samples)
        samples = np.round(samples.astype(np.int32).mean(axis=1)).astype(np.int16)  # exact for one channel
    elif samples.ndim == 2:
        samples = as_mono_float32(samples)  # raises on a (channels, samples) layout
    if (config or {}).get("format", "s16le") == "f32le":
        pcm = as_float32(samples).astype("<f4")
    elif samples.dtype == np.int16:
        pcm = samples.astype("<i2")  # sent exactly as given
    else:
        # The server reads s16le as value / 32768: the nearest 16-bit value of each sample.
        pcm = np.clip(np.round(as_float32(samples) * 32768), -32768, 32767).astype("<i2")
    step = max(1, int(sample_rate * chunk_seconds))
    reply = Reply()
    async with connect(url, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "config", "sample_rate": sample_rate, **(config or {})}))

        async def receive() -> None:
            ended_at = 0.0
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    kind = message["type"]
                    if kind == "partial":
                        reply.partials += 1
                    elif kind == "final":
                        reply.finals.append(message)
                    elif kind == "error":
                        reply.error = message["message"]
                    elif kind == "done":
                        reply.audio_seconds = message["audio_seconds"]
                        ended_at = time.perf_counter()
            except ConnectionClosed:
                pass
            if ended_at and sent_end:
                reply.final_latency = ended_at - sent_end[0]

        sent_end: list[float] = []
        receiver = asyncio.create_task(receive())
        began = time.perf_counter()
        try:
            for i, start in enumerate(range(0, len(pcm), step)):
                if realtime:
                    await asyncio.sleep(max(0.0, began + i * chunk_seconds - time.perf_counter()))
                await ws.send(pcm[start : start + step].tobytes())
            sent_end.append(time.perf_counter())
            await ws.send(json.dumps({"type": "end"}))
        except ConnectionClosed:
            pass  # the server closed the stream; the receiver has its reason
        await receiver
    return reply
