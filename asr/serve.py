"""``asr serve``: a WebSocket server that streams many clients through one shared model.

Protocol (one WebSocket per audio stream, at ``ws://HOST:PORT/ws``):

1. The client sends a JSON text message ``{"type": "config", "sample_rate": 16000}``,
   optionally with ``"format": "s16le" | "f32le"`` (default s16le: little-endian int16),
   ``"decoder": "greedy" | "beam"``, ``"beam_size"``, ``"lm": "default" | "none"`` and
   ``"hotwords": ["WORD", "WORD:BOOST", ...]``.
   The server answers ``{"type": "ready", "sample_rate": ..., "model_sample_rate": ...}``.
2. The client sends binary messages of mono audio in that format, any length.
   The server sends ``{"type": "partial", "text", "committed", "unstable", "start"}``
   whenever the open utterance's text changes, and ``{"type": "final", "text", "words":
   [{"word", "start", "end", "confidence"}], "start", "end"}`` at each endpoint. Times
   are seconds from the start of the stream.
3. The client sends ``{"type": "end"}``. The server decodes the rest, sends the last
   ``final`` (if any words remain) and ``{"type": "done", "audio_seconds": ...}``, and
   closes the connection.

Errors: ``{"type": "error", "message": ...}``, then the server closes that connection
(code 1008 for a protocol error, 1013 when the server is full, 1001 after the idle
timeout). A message over the size limit is closed with 1009 by the WebSocket layer
itself, without the JSON error. Other connections are never affected.

Stopping (SIGINT/SIGTERM): the server takes no new connections (1001), stops reading
audio, decodes what each open stream already sent and ends it as if the client had sent
``end`` (last ``final``, then ``done``), for up to ``DRAIN_SECONDS`` (a second signal
cuts that short); then it exits.

All streams go through one model: a single worker thread takes the audio that arrived
on every connection and steps all the streams with a full chunk as one batch
(``Recognizer.decode_streams``), so the event loop never waits on the model.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import http
import json
import signal
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from asr.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from asr.checkpoint import Bundle
from asr.decoding import parse_hotword
from asr.streaming import DecoderOptions, EndpointConfig, Recognizer, Result, Stream, recommended_decoder

#: Files of the browser page, served at ``/`` and ``/static/NAME``.
WEB_FILES = {"index.html": "text/html", "app.js": "text/javascript", "worklet.js": "text/javascript"}
FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
MAX_HOTWORDS = 100


#: On SIGINT/SIGTERM, how long open streams get to receive their last results.
DRAIN_SECONDS = 10.0


@dataclass(frozen=True)
class ServerConfig:
    """Limits and defaults of a server.

    ``max_message_bytes``: largest WebSocket message (audio chunk) accepted;
    ``max_streams``: concurrent streams; ``idle_timeout``: seconds without a message
    after which a connection is closed; ``decoder``: what clients get unless their
    config asks otherwise (None: the model's recommendation, as in ``transcribe``).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    max_message_bytes: int = 256 * 1024
    max_streams: int = 32
    idle_timeout: float = 30.0
    #: Audio a client may have waiting for the model before the server stops reading it.
    max_backlog_seconds: float = 5.0
    #: Audio per stream fed to one model step: long uploads cannot hog a step.
    step_seconds: float = 1.0
    decoder: DecoderOptions | None = None
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "max_backlog_seconds", "step_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.max_streams < 1 or self.max_message_bytes < 1024:
            raise ValueError("max-streams must be at least 1 and max-message-bytes at least 1024")


class ProtocolError(Exception):
    """A client broke the protocol; its connection is closed with this message."""


@dataclass(eq=False)
class Session:
    """One connection's stream, the audio waiting for the worker and the messages to send."""

    stream: Stream
    sample_rate: int
    dtype: np.dtype
    inbox: collections.deque = field(default_factory=collections.deque)
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    #: Samples received (written by the event loop) and fed to the stream (by the worker):
    #: each counter has one writer, so their difference is a safe backlog measure.
    received: int = 0
    consumed: int = 0
    ending: bool = False
    finished: bool = False
    failed: bool = False


def result_message(kind: str, result: Result) -> dict[str, Any]:
    """The JSON form of a partial or final result."""
    message: dict[str, Any] = {
        "type": kind,
        "text": result.text,
        "start": round(result.start, 3),
    }
    if kind == "partial":
        message.update(committed=result.committed, unstable=result.unstable)
    else:
        message["end"] = round(result.start + result.duration, 3)
        # The same word objects as `--format json`: times to the millisecond, as decoded.
        message["words"] = [dataclasses.asdict(w) for w in result.words]
    return message


def _json_object(text: str) -> dict[str, Any]:
    """A text message as a JSON object, or ProtocolError."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        detail = f": {e}" if isinstance(e, json.JSONDecodeError) else " (nested too deeply)"
        raise ProtocolError(f"invalid JSON{detail}") from None
    if not isinstance(value, dict):
        raise ProtocolError("text messages must be JSON objects")
    return value


def parse_config(text: str | bytes, defaults: DecoderOptions) -> tuple[int, np.dtype, DecoderOptions]:
    """Check a client's config message; returns its sample rate, sample type and decoder options.

    Options the client leaves out keep the server's (``defaults``); ``"lm": "default"``
    means the server's LM and ``"none"`` no LM; the client's hotwords add to the
    server's. Raises ProtocolError naming what is wrong.
    """
    if isinstance(text, bytes):
        raise ProtocolError("the first message must be a JSON config (text), not audio")
    config = _json_object(text)
    if config.get("type") != "config":
        raise ProtocolError('the first message must be {"type": "config", "sample_rate": ...}')
    known = {"type", "sample_rate", "format", "decoder", "beam_size", "lm", "hotwords"}
    if unknown := sorted(set(config) - known):
        raise ProtocolError(f"unknown config keys: {', '.join(unknown)}")
    rate = config.get("sample_rate")
    if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError(f"sample_rate must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}")
    fmt = config.get("format", "s16le")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ProtocolError(f"format must be one of {', '.join(FORMATS)}")
    changes: dict[str, Any] = {}
    hotwords = config.get("hotwords", [])
    if (
        not isinstance(hotwords, list)
        or len(hotwords) > MAX_HOTWORDS
        or not all(isinstance(h, str) and 0 < len(h) <= 100 for h in hotwords)
    ):
        raise ProtocolError(f"hotwords must be a list of at most {MAX_HOTWORDS} short strings")
    if hotwords:
        changes["hotwords"] = (*defaults.hotwords, *hotwords)
    if "lm" in config:
        if config["lm"] not in ("default", "none"):
            raise ProtocolError('lm must be "default" or "none" (clients cannot name server files)')
        changes["lm"] = None if config["lm"] == "none" else (defaults.lm or "default")
    if "beam_size" in config:
        beam_size = config["beam_size"]
        if not isinstance(beam_size, int) or isinstance(beam_size, bool) or not 1 <= beam_size <= 64:
            raise ProtocolError("beam_size must be an integer from 1 to 64")
        changes["beam_size"] = beam_size
    if "decoder" in config:
        if config["decoder"] not in ("greedy", "beam"):
            raise ProtocolError('decoder must be "greedy" or "beam"')
        changes["decoder"] = config["decoder"]
    elif hotwords:
        changes["decoder"] = "beam"  # hotwords need the beam search
    try:
        for spec in hotwords:
            parse_hotword(spec)
        options = dataclasses.replace(defaults, **changes)
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    return rate, FORMATS[fmt], options


class Server:
    """The shared model, the sessions and the worker that steps them in batches."""

    def __init__(
        self, bundle: Bundle, config: ServerConfig = ServerConfig(), log: Callable[[str], None] = print
    ) -> None:
        self.bundle = bundle
        self.config = config
        self.log = log
        self.options = config.decoder or DecoderOptions(recommended_decoder(bundle))
        self.base = Recognizer(bundle, config.endpoint, decoder=self.options)
        self.sessions: set[Session] = set()
        self.connections = 0  # open WebSocket connections, configured or not
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-model")
        self.wake = asyncio.Event()
        self.progress = asyncio.Condition()  # notified after every model step
        self.batches = 0  # model steps taken, for the logs and the load test
        self.batched_streams = 0
        self.max_backlog_seen = 0.0  # seconds of audio a stream had waiting, at most
        self.draining = False  # stopping: open streams are being finished
        self._stop: asyncio.Future | None = None
        self._stop_asked = False  # stop() before serve() began
        self._hurry = False  # a second stop: skip what is left of the drain

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one cache per server, which lives as long
    def recognizer(self, options: DecoderOptions) -> Recognizer:
        """A recognizer per distinct decoder setting, all over the same model."""
        if options == self.options:
            return self.base
        return Recognizer(self.bundle, self.config.endpoint, decoder=options)

    # -- worker thread ------------------------------------------------------------------

    def _step(
        self, sessions: list[Session], ending: set[Session]
    ) -> list[tuple[Session, list[dict[str, Any]]]]:
        """Feed waiting audio (a bounded slice per stream), step every ready stream as one
        batch, and flush the streams in ``ending`` once all their audio is in."""
        out: dict[Session, list[dict[str, Any]]] = {s: [] for s in sessions}
        live = []
        for s in sessions:
            budget = int(self.config.step_seconds * s.sample_rate)
            try:
                while s.inbox and budget > 0:
                    chunk = s.inbox.popleft()
                    s.consumed += len(chunk)
                    budget -= len(chunk)
                    s.stream.accept_waveform(chunk, s.sample_rate, decode=False)
            except ValueError as e:
                s.failed = True
                out[s].append({"type": "error", "message": str(e)})
                continue
            live.append(s)
        if live:
            events = self.base.decode_streams([s.stream for s in live])
            self.batches += 1
            self.batched_streams += len(live)
            for s, stream_events in zip(live, events, strict=True):
                out[s] += [result_message(e.kind, e.result) for e in stream_events]
        for s in live:
            if s in ending and not s.inbox:
                final = s.stream.finish()
                if final.text:
                    out[s].append(result_message("final", final))
                out[s].append({"type": "done", "audio_seconds": round(s.received / s.sample_rate, 3)})
                s.finished = True
        return list(out.items())

    async def run_worker(self) -> None:
        """Step the sessions whenever audio arrived; one model batch at a time."""
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            busy = [s for s in self.sessions if (s.inbox or s.ending) and not (s.failed or s.finished)]
            if not busy:
                continue
            ending = {s for s in busy if s.ending}  # decided here, not mid-step
            try:
                results = await loop.run_in_executor(self.pool, self._step, busy, ending)
            except Exception as e:  # a bug must not silence every stream: fail this batch only
                self.log("error: model step failed:\n" + "".join(traceback.format_exception(e)).rstrip())
                results = [(s, [{"type": "error", "message": "internal error while decoding"}]) for s in busy]
                for s in busy:
                    s.failed = True
            for session, messages in results:
                if session.finished or session.failed:
                    self.sessions.discard(session)
                for m in messages:
                    session.outbox.put_nowait(m)
            if any(s.inbox for s in self.sessions):
                self.wake.set()  # the slices left over from this step
            async with self.progress:
                self.progress.notify_all()

    # -- connections --------------------------------------------------------------------

    async def handle(self, ws: Any) -> None:
        """One client: config, audio, end; results flow back through its own sender task."""
        self.connections += 1  # counted from the first moment, so idle sockets count too
        try:
            await self._handle(ws)
        finally:
            self.connections -= 1

    async def _handle(self, ws: Any) -> None:
        if ws.request is not None and ws.request.path.split("?")[0] != "/ws":
            await self._close(ws, 1008, "the WebSocket endpoint is /ws")
            return
        if self.draining:
            await self._close(ws, 1001, "the server is shutting down")
            return
        if self.connections > self.config.max_streams:
            await self._close(ws, 1013, f"server busy: {self.config.max_streams} streams at most")
            return
        session: Session | None = None
        sender: asyncio.Task | None = None
        loop = asyncio.get_running_loop()
        try:
            first = await self._receive(ws)
            rate, dtype, options = parse_config(first, self.options)
            try:
                # Building a beam search (an LM to load) must not stall the event loop.
                recognizer = await loop.run_in_executor(None, self.recognizer, options)
            except ValueError as e:
                raise ProtocolError(str(e)) from None
            if self.draining:  # configured while the server was stopping
                raise _ShuttingDown
            session = Session(recognizer.stream(), rate, dtype)
            self.sessions.add(session)
            sender = asyncio.create_task(self._send_all(ws, session))
            session.outbox.put_nowait(
                {"type": "ready", "sample_rate": rate, "model_sample_rate": recognizer.sample_rate}
            )
            backlog = int(self.config.max_backlog_seconds * rate)
            while True:
                if session.received - session.consumed > backlog:
                    # Audio faster than the model: stop reading, so TCP slows the sender.
                    async with self.progress:
                        await self.progress.wait_for(
                            lambda s=session: s.received - s.consumed <= backlog or s.failed
                        )
                message = await self._receive(ws)
                if isinstance(message, bytes):
                    if session.ending:  # the server is stopping: what came before is decoded
                        continue
                    if len(message) % dtype.itemsize:
                        raise ProtocolError(f"audio messages must hold whole {dtype.itemsize}-byte samples")
                    samples = np.frombuffer(message, dtype)
                    session.received += len(samples)
                    session.inbox.append(samples)
                    waiting = (session.received - session.consumed) / rate
                    self.max_backlog_seen = max(self.max_backlog_seen, waiting)
                    self.wake.set()
                    continue
                kind = _json_object(message).get("type")
                if kind != "end":
                    raise ProtocolError(f'unexpected message type {kind!r}: send audio or {{"type": "end"}}')
                session.ending = True
                self.wake.set()
                await sender  # ends after "done" or an error
                return
        except ProtocolError as e:
            await self._fail(ws, session, sender, 1008, str(e))
        except asyncio.TimeoutError:
            await self._fail(ws, session, sender, 1001, f"no message for {self.config.idle_timeout:g} s")
        except _ShuttingDown:
            await self._close(ws, 1001, "the server is shutting down")
        except _Closed:
            pass
        finally:
            if session is not None:
                session.failed = True
                self.sessions.discard(session)
            if sender is not None and not sender.done():
                sender.cancel()

    async def _receive(self, ws: Any) -> str | bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            return await asyncio.wait_for(ws.recv(), self.config.idle_timeout)
        except ConnectionClosed:
            raise _Closed from None

    async def _send_all(self, ws: Any, session: Session) -> None:
        """Send a session's messages in order; stop after "done" or an error."""
        from websockets.exceptions import ConnectionClosed

        while True:
            message = await session.outbox.get()
            try:
                if message["type"] == "error":
                    await self._close(
                        ws,
                        1008 if not message["message"].startswith("internal") else 1011,
                        message["message"],
                    )
                    return
                await ws.send(json.dumps(message))
                if message["type"] == "done":
                    await ws.close(1000, "done")
                    return
            except ConnectionClosed:
                return

    async def _fail(
        self, ws: Any, session: Session | None, sender: asyncio.Task | None, code: int, why: str
    ) -> None:
        if sender is not None:
            sender.cancel()
        if session is not None:
            session.failed = True
        await self._close(ws, code, why)

    async def _close(self, ws: Any, code: int, why: str) -> None:
        from websockets.exceptions import ConnectionClosed

        # The operator sees why a client was turned away; the client gets the same words.
        self.log(f"client {_peer(ws)}: closed {code}: {why}")
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "error", "message": why}))
        # A close reason is at most 123 bytes.
        await ws.close(code, why.encode()[:120].decode(errors="ignore"))

    # -- HTTP ---------------------------------------------------------------------------

    def process_request(self, connection: Any, request: Any) -> Any:
        """Serve the browser page over plain HTTP; let WebSocket upgrades through."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = request.path.split("?")[0]
        if path == "/ws":
            return connection.respond(
                http.HTTPStatus.UPGRADE_REQUIRED, "connect with a WebSocket client (ws://)\n"
            )
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        if name not in WEB_FILES or (path != "/" and not path.startswith("/static/")):
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        body = (resources.files("asr") / "web" / name).read_text(encoding="utf-8")
        if name == "index.html" and self.options.decoder == "beam":
            # The page's checkbox starts as this server's default decoder.
            body = body.replace('id="beam">', 'id="beam" checked>', 1)
        response = connection.respond(http.HTTPStatus.OK, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = f"{WEB_FILES[name]}; charset=utf-8"
        response.headers["Cache-Control"] = "no-store"
        return response

    def stop(self) -> None:
        """Ask ``serve`` to finish the open streams and return, as SIGINT/SIGTERM do; safe
        to call from any thread, before ``serve`` too. A second call (a second Ctrl-C)
        cuts the wait for open streams short."""
        self._stop_asked = True
        stop = self._stop
        if stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has already closed: nothing to stop
            stop.get_loop().call_soon_threadsafe(self._signal)

    def _signal(self) -> None:
        if self._stop is None:
            return
        if self._stop.done():
            self._hurry = True
        else:
            self._stop.set_result(None)

    async def _drain(self) -> None:
        """End every open stream as if its client had sent "end", for up to DRAIN_SECONDS."""
        self.draining = True
        if not self.sessions:
            return
        self.log(f"stopping: finishing {len(self.sessions)} open stream(s)")
        for session in list(self.sessions):
            session.ending = True
        self.wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_SECONDS
        while self.sessions and loop.time() < deadline and not self._hurry:
            await asyncio.sleep(0.05)

    async def serve(self, ready: Callable[[str, int], None] = lambda host, port: None) -> None:
        """Serve until cancelled, or until SIGINT/SIGTERM or ``stop()``, which first finish
        the open streams; ``ready(host, port)`` once listening."""
        from websockets.asyncio.server import serve

        worker = asyncio.create_task(self.run_worker())
        loop = asyncio.get_running_loop()
        stop = self._stop = loop.create_future()
        if self._stop_asked:
            stop.set_result(None)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._signal)
        try:
            async with serve(
                self.handle,
                self.config.host,
                self.config.port,
                process_request=self.process_request,
                max_size=self.config.max_message_bytes,
                max_queue=64,
                compression=None,  # audio does not compress; deflate costs CPU per message
                close_timeout=2,  # shutdown waits this long for a lingering client
            ) as server:
                host, port = next(iter(server.sockets)).getsockname()[:2]
                ready(host, port)
                await stop
                await self._drain()
        finally:
            self._stop = None
            worker.cancel()
            self.pool.shutdown(wait=False, cancel_futures=True)


def _peer(ws: Any) -> str:
    address = getattr(ws, "remote_address", None)
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "?"


class _Closed(Exception):
    """The client went away."""


class _ShuttingDown(Exception):
    """A connection configured after the server began to stop."""


def run_server(bundle: Bundle, config: ServerConfig, log: Callable[[str], None] = print) -> None:
    """Blocking: serve until SIGINT/SIGTERM."""

    def ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        log(f"serving on http://{shown}:{port}/ (WebSocket ws://{shown}:{port}/ws); Ctrl-C to stop")
        if host not in ("127.0.0.1", "::1", "localhost"):
            log("warning: listening beyond this machine; the server has no authentication")

    asyncio.run(Server(bundle, config, log).serve(ready))
