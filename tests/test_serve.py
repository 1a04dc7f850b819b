"""``asr serve``: many clients through one model, the protocol's limits and hostile input."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from asr.checkpoint import Bundle, load_model
from asr.client import stream_audio
from asr.serve import Server, ServerConfig, parse_config
from asr.streaming import DecoderOptions, transcribe
from tests.conftest import speak, start_server

TEXTS = ["turn on the light", "seven eight nine", "hello world", "stop the car now"]


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_model()  # the bundled model: it says words, so mixed-up streams would show


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    root = tmp_path_factory.mktemp("serve")
    return [speak(text, root / f"c{i}.wav") for i, text in enumerate(TEXTS)]


@contextmanager
def running(bundle: Bundle, **limits) -> Iterator[tuple[Server, str]]:
    """A server on a free port, in its own thread and event loop."""
    server = Server(bundle, ServerConfig(port=0, **limits))
    loop = asyncio.new_event_loop()
    ports: list[int] = []
    started = threading.Event()
    task: list[asyncio.Task] = []

    def ready(host: str, port: int) -> None:
        ports.append(port)
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        task.append(loop.create_task(server.serve(ready)))
        with suppress(asyncio.CancelledError):
            loop.run_until_complete(task[0])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(20), "the server did not start"
    try:
        yield server, f"ws://127.0.0.1:{ports[0]}/ws"
    finally:
        loop.call_soon_threadsafe(task[0].cancel)
        thread.join(10)


def test_concurrent_streams_share_batches_and_never_mix(bundle: Bundle, clips: list[np.ndarray]) -> None:
    expected = [transcribe(c, bundle).text for c in clips]
    assert len(set(expected)) == len(expected)  # distinct, so a mix-up cannot hide

    async def clients(url: str):
        # Two clients per clip, interleaved; 50 ms chunks at 4x real time.
        jobs = [stream_audio(url, clips[i % 4], 16000, chunk_seconds=0.05) for i in range(8)]
        return await asyncio.gather(*jobs)

    with running(bundle) as (server, url):
        replies = asyncio.run(clients(url))
    for i, reply in enumerate(replies):
        assert reply.error == ""
        assert reply.text == expected[i % 4], (i, reply.text)
        assert reply.audio_seconds == pytest.approx(len(clips[i % 4]) / 16000, abs=1e-3)
        assert all(w["start"] <= w["end"] for f in reply.finals for w in f["words"])
    # Streams were stepped together: more streams than model calls.
    assert server.batched_streams > server.batches


def test_config_chooses_rate_format_and_decoder(bundle: Bundle, clips: list[np.ndarray]) -> None:
    import soxr

    audio = clips[0]
    at_8k = soxr.resample(audio, 16000, 8000)

    async def go(url: str):
        resampled = await stream_audio(url, at_8k, 8000)
        beam = await stream_audio(url, audio, 16000, config={"decoder": "beam", "lm": "none"})
        stereo = await stream_audio(url, np.stack([audio, audio], axis=1), 16000)
        mono = await stream_audio(url, audio, 16000)
        pcm = (audio * 32767).astype(np.int16)
        int16 = [await stream_audio(url, x, 16000) for x in (pcm, pcm[:, None], np.stack([pcm, pcm], axis=1))]
        f32 = await stream_audio(url, audio, 16000, config={"format": "f32le"})
        float_rate = await stream_audio(url, audio, 16000.0)  # type: ignore[arg-type]
        return resampled, beam, stereo, mono, int16, f32, float_rate

    with running(bundle) as (_, url):
        resampled, beam, stereo, mono, int16, f32, float_rate = asyncio.run(go(url))
        with pytest.raises(TypeError, match="numpy array or a torch tensor"):
            asyncio.run(stream_audio(url, audio.tolist(), 16000))  # type: ignore[arg-type]
    assert float_rate.error == "" and float_rate.text == mono.text  # 16000.0 Hz is 16000, as in the API
    # float32 goes as float32 when the config says so (the server reads what it was told)
    assert f32.error == "" and f32.audio_seconds == pytest.approx(len(audio) / 16000, abs=1e-3)
    assert f32.text == transcribe(audio, bundle).text  # the server's decoder: the model's choice
    assert resampled.error == "" and resampled.text  # resampled by the server, still words
    assert stereo.error == "" and stereo.text == mono.text  # (samples, channels) is averaged
    assert int16[0].text and int16[0].text == int16[1].text == int16[2].text  # int16 sent exactly
    assert beam.text == transcribe(audio, bundle, decoder=DecoderOptions("beam", lm=None)).text


async def _exchange(url: str, *messages: str | bytes) -> tuple[list[dict], int | None]:
    """Send ``messages``; return the JSON the server sent back and its close code."""
    received = []
    async with connect(url, max_size=2**22) as ws:
        try:
            for m in messages:
                await ws.send(m)
        except ConnectionClosed:
            pass  # the server may close before it reads everything; its reply is still queued
        try:
            async for raw in ws:
                received.append(json.loads(raw))
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        return received, ws.close_code


CONFIG = json.dumps({"type": "config", "sample_rate": 16000})


@pytest.mark.parametrize(
    ("messages", "code", "words"),
    [
        ([b"\x00\x01" * 100], 1008, "config"),
        (["{not json"], 1008, "invalid JSON"),
        ([json.dumps({"type": "config", "sample_rate": "fast"})], 1008, "sample_rate"),
        ([json.dumps({"type": "config", "sample_rate": 16000, "lm": "/etc/passwd"})], 1008, "lm"),
        ([CONFIG, b"\x00\x01\x02"], 1008, "whole 2-byte samples"),
        ([CONFIG, json.dumps({"type": "pause"})], 1008, "unexpected message"),
        ([json.dumps({"type": "config", "sample_rate": 16000, "format": "f32le"}),
          np.full(1600, np.nan, "<f4").tobytes()], 1008, "NaN"),
        ([json.dumps({"type": "config", "sample_rate": 16000, "format": []})], 1008, "format"),
        (["[" * 100_000], 1008, "invalid JSON"),
        ([json.dumps({"type": "config", "sample_rate": 16000, "hotwords": ["a:nan"]})], 1008, "boost"),
        ([json.dumps({"type": "config", "sample_rate": 16000, "decoder": "greedy", "hotwords": ["a"]})],
         1008, "beam decoder"),
    ],
)  # fmt: skip
def test_protocol_errors_close_only_that_stream(
    bundle: Bundle, messages: list, code: int, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with running(bundle) as (_, url):
        received, close_code = asyncio.run(_exchange(url, *messages))
    assert close_code == code
    errors = [m["message"] for m in received if m["type"] == "error"]
    assert len(errors) == 1 and words in errors[0], received
    # The server's log says which client was closed and why (the client's own words).
    logged = [line for line in capsys.readouterr().out.splitlines() if line.startswith("client 127.0.0.1:")]
    assert len(logged) == 1 and logged[0].endswith(f"closed {code}: {errors[0]}"), logged


def test_limits_and_a_good_client_alongside_bad_ones(bundle: Bundle, clips: list[np.ndarray]) -> None:
    async def go(url: str):
        # Oversized message: websockets refuses it with 1009 before we see it.
        big = await _exchange(url, CONFIG, b"\x00" * 70_000)
        # Idle: a client that configures and then says nothing.
        idle = await _exchange(url, CONFIG)
        # Server full: two open streams block a third.
        async with connect(url) as a, connect(url) as b:
            await a.send(CONFIG)
            await b.send(CONFIG)
            await a.recv()
            await b.recv()
            full = await _exchange(url, CONFIG)
        # An abrupt disconnect mid-stream, then a well-behaved client.
        ws = await connect(url)
        await ws.send(CONFIG)
        await ws.send(b"\x00\x01" * 8000)
        ws.transport.abort()
        good = await stream_audio(url, clips[1], 16000)
        return big, idle, full, good

    with running(bundle, max_message_bytes=64_000, idle_timeout=1.0, max_streams=2) as (server, url):
        big, idle, full, good = asyncio.run(go(url))
        assert not server.sessions  # every session was released
    assert big[1] == 1009
    assert idle[1] == 1001 and "no message for 1 s" in idle[0][-1]["message"]
    assert full[1] == 1013 and "busy" in full[0][-1]["message"]
    assert good.error == "" and good.text == transcribe(clips[1], bundle).text


def test_http_serves_the_page_and_nothing_else(bundle: Bundle) -> None:
    with running(bundle) as (_, url):
        base = url.replace("ws://", "http://").removesuffix("/ws")
        page = urllib.request.urlopen(base + "/").read().decode()
        script = urllib.request.urlopen(base + "/static/app.js")
        assert "<title>asr: live transcription</title>" in page and "/static/app.js" in page
        # The bundled model decodes with the beam search by default, and the page says so.
        assert 'id="beam" checked>' in page
        assert script.headers["Content-Type"].startswith("text/javascript")
        assert "getUserMedia" in script.read().decode()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/ws")  # plain HTTP on the WebSocket endpoint
        assert info.value.code == 426
        info.value.close()
        for path in ("/static/../serve.py", "/static/missing.js", "/etc/passwd"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(base + path)
            assert info.value.code == 404
            info.value.close()
    with running(bundle, decoder=DecoderOptions("greedy")) as (_, url):
        page = (
            urllib.request.urlopen(url.replace("ws://", "http://").removesuffix("/ws") + "/").read().decode()
        )
        assert 'id="beam">' in page and "checked" not in page


def test_cli_binds_localhost_and_stops_on_sigint(tmp_path: Path) -> None:
    process, url = start_server()
    try:
        assert url.startswith("http://127.0.0.1:")  # localhost unless --host says otherwise
        assert urllib.request.urlopen(url).status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        process.kill()


def test_config_keeps_the_servers_decoder_settings() -> None:
    server = DecoderOptions(
        "beam", beam_size=8, lm="/srv/lm.arpa", lexicon=("yes", "no"), hotwords=("zebra",)
    )
    plain = parse_config(json.dumps({"type": "config", "sample_rate": 16000}), server)
    assert plain[2] == server  # the server's recognizer, LM, lexicon and hotwords
    custom = parse_config(
        json.dumps(
            {"type": "config", "sample_rate": 8000, "lm": "default", "hotwords": ["yes:3"], "beam_size": 4}
        ),
        server,
    )[2]
    assert custom.lm == "/srv/lm.arpa" and custom.hotwords == ("zebra", "yes:3") and custom.beam_size == 4
    assert (
        parse_config(json.dumps({"type": "config", "sample_rate": 8000, "lm": "none"}), server)[2].lm is None
    )


def test_a_failing_model_step_fails_its_streams_and_the_server_goes_on(
    bundle: Bundle, clips: list[np.ndarray]
) -> None:
    with running(bundle) as (server, url):
        real = server.base.decode_streams
        calls = []

        def broken(streams):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("simulated bug")
            return real(streams)

        server.base.decode_streams = broken
        first = asyncio.run(stream_audio(url, clips[0], 16000))
        second = asyncio.run(stream_audio(url, clips[1], 16000))
    assert first.error == "internal error while decoding"
    assert second.error == "" and second.text == transcribe(clips[1], bundle).text


def test_a_flooding_client_is_held_to_the_backlog_and_others_still_finish(
    bundle: Bundle, clips: list[np.ndarray]
) -> None:
    flood = np.tile(clips[3], 12)  # about 20 s, sent as fast as the socket takes it

    async def go(url: str):
        return await asyncio.gather(
            stream_audio(url, flood, 16000, chunk_seconds=0.5), stream_audio(url, clips[2], 16000)
        )

    with running(bundle, max_backlog_seconds=1.0) as (server, url):
        flooded, other = asyncio.run(go(url))
    # The server stopped reading the flood once a second of it was waiting (plus the
    # message that crossed the line); without that it would have queued all 20 s.
    assert server.max_backlog_seen <= 1.6
    assert flooded.error == "" and flooded.audio_seconds == pytest.approx(len(flood) / 16000, abs=1e-3)
    assert other.error == "" and other.text == transcribe(clips[2], bundle).text


def test_unconfigured_connections_count_toward_the_stream_limit(bundle: Bundle) -> None:
    async def go(url: str):
        async with connect(url), connect(url):  # two sockets that never send a config
            return await _exchange(url, CONFIG)

    with running(bundle, max_streams=2) as (_, url):
        received, code = asyncio.run(go(url))
    assert code == 1013 and "busy" in received[-1]["message"]


def test_stopping_finishes_open_streams(bundle: Bundle, clips: list[np.ndarray]) -> None:
    """SIGINT/SIGTERM (``Server.stop``) on a server with a client mid-stream: the client
    still gets the text of the audio it sent, then "done"."""
    from websockets.asyncio.client import connect

    audio = clips[0]
    expected = transcribe(audio, bundle).text
    pcm = (audio * 32767).astype("<i2").tobytes()

    async def mid_stream(url: str, server: Server) -> tuple[list[dict], int | None]:
        messages = []
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "config", "sample_rate": 16000}))
            messages.append(json.loads(await ws.recv()))  # ready
            await ws.send(pcm)  # all the audio, but no "end"
            while not server.sessions or next(iter(server.sessions)).received < len(audio):
                await asyncio.sleep(0.02)
            server.stop()
            async for raw in ws:
                messages.append(json.loads(raw))
        return messages, ws.close_code

    with running(bundle) as (server, url):
        messages, code = asyncio.run(mid_stream(url, server))
        assert server.draining
    finals = [m["text"] for m in messages if m["type"] == "final"]
    assert " ".join(finals) == expected and expected
    assert messages[-1]["type"] == "done" and code == 1000


def test_stop_before_and_after_serving_and_late_configs(bundle: Bundle) -> None:
    from websockets.asyncio.client import connect

    early = Server(bundle, ServerConfig(port=0))
    early.stop()  # asked before it serves: serve() returns at once
    asyncio.run(asyncio.wait_for(early.serve(), 10))
    early.stop()  # after its loop closed: nothing to do, no error

    async def late(url: str) -> tuple[dict, int | None]:
        async with connect(url) as ws:
            server.draining = True  # as if the stop began after this client connected
            await ws.send(json.dumps({"type": "config", "sample_rate": 16000}))
            reply = json.loads(await ws.recv())
            with suppress(Exception):
                await ws.recv()
        return reply, ws.close_code

    with running(bundle) as (server, url):
        reply, code = asyncio.run(late(url))
    assert reply == {"type": "error", "message": "the server is shutting down"} and code == 1001
