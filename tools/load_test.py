#!/usr/bin/env python3
"""Load test of ``asr serve`` on loopback: how many real-time streams one machine holds.

Starts ``asr serve`` in its own process, then runs rounds of N concurrent clients, each
streaming its own audio (utterances of a manifest joined to ``--seconds``) in 100 ms
chunks at the speed of speech. Alongside every round, hostile clients send oversized
frames, invalid JSON, audio before the config, NaN samples, and disconnect abruptly.

A round passes when every well-behaved client gets exactly the text that a local
Stream gives for its own audio (nothing lost, nothing mixed between streams),
no stream errors, the server is still up, and the p95 final-result latency (from the
client's end message to the server's "done") is at most ``--max-latency``. A server
that falls behind real time builds a backlog, which shows up in that latency.

    python tools/load_test.py --streams 1 2 4 8 12 16 24 32 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from asr.audio import load_audio
from asr.checkpoint import load_model
from asr.client import Reply, stream_audio
from asr.data import read_manifest
from asr.streaming import Recognizer, transcribe_stream

ROOT = Path(__file__).resolve().parents[1]


def make_clips(manifest: str, count: int, seconds: float) -> list[np.ndarray]:
    """``count`` distinct int16 signals of about ``seconds`` each, from consecutive utterances."""
    utterances = read_manifest(manifest)
    clips, pieces, length, i = [], [], 0, 0
    gap = np.zeros(4000, np.float32)
    while len(clips) < count:
        if i >= len(utterances):
            raise SystemExit(f"{manifest} has too little audio for {count} clips of {seconds} s")
        audio = load_audio(utterances[i].audio)
        i += 1
        pieces += [audio, gap]
        length += len(audio) + len(gap)
        if length >= seconds * 16000:
            # int16, as the clients send it: the reference hears the same samples.
            clips.append((np.clip(np.concatenate(pieces), -1, 1) * 32767).astype(np.int16))
            pieces, length = [], 0
    return clips


async def hostile(url: str) -> dict[str, str]:
    """Misbehaving clients; returns how the server answered each."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    config = json.dumps({"type": "config", "sample_rate": 16000})
    cases = {
        "oversized frame": [config, b"\x00" * (2 * 1024 * 1024)],
        "invalid JSON": ["{this is not json"],
        "audio before config": [b"\x01\x02" * 800],
        "NaN samples": [json.dumps({"type": "config", "sample_rate": 16000, "format": "f32le"}),
                        np.full(800, np.nan, "<f4").tobytes()],
        "odd byte count": [config, b"\x01\x02\x03"],
    }  # fmt: skip
    outcome = {}
    for name, messages in cases.items():
        try:
            async with connect(url, max_size=None) as ws:
                for m in messages:
                    await ws.send(m)
                try:
                    async for _ in ws:
                        pass
                except ConnectionClosed:
                    pass
                outcome[name] = f"closed {ws.close_code}"
        except (ConnectionClosed, OSError) as e:
            outcome[name] = f"closed ({type(e).__name__})"
    # Abrupt disconnects mid-stream, without a close handshake.
    for _ in range(3):
        ws = await connect(url)
        await ws.send(config)
        await ws.send(np.zeros(3200, "<i2").tobytes())
        ws.transport.abort()
    outcome["abrupt disconnects"] = "3 sent"
    return outcome


async def round_(url: str, clips: list[np.ndarray], expected: list[str]) -> dict:
    """N = len(clips) real-time clients plus the hostile ones, all at once."""
    began = time.perf_counter()
    # A stalled server must fail the round, not hang the load test.
    limit = 3 * max(len(c) for c in clips) / 16000 + 30

    async def client(clip: np.ndarray) -> Reply:
        try:
            return await asyncio.wait_for(stream_audio(url, clip, 16000, 0.1, realtime=True), limit)
        except (asyncio.TimeoutError, OSError) as e:
            return Reply(error=f"no reply ({type(e).__name__})")

    results = await asyncio.gather(hostile(url), *(client(c) for c in clips))
    bad, replies = results[0], results[1:]
    latencies = sorted(r.final_latency for r in replies)
    wrong = [i for i, r in enumerate(replies) if r.error or r.text != expected[i]]
    return {
        "streams": len(clips),
        "p50_latency": round(statistics.median(latencies), 3),
        "p95_latency": round(latencies[max(0, int(np.ceil(0.95 * len(latencies))) - 1)], 3),
        "max_latency": round(latencies[-1], 3),
        "correct": len(replies) - len(wrong),
        "wrong": [{"client": i, "error": replies[i].error, "text": replies[i].text[:80]} for i in wrong],
        "hostile": bad,
        "wall_seconds": round(time.perf_counter() - began, 1),
    }


def _page_loads(url: str) -> bool:
    """The server still answers HTTP (alive, and its event loop not stuck)."""
    import urllib.request

    try:
        page = url.replace("ws://", "http://").removesuffix("/ws") + "/"
        return urllib.request.urlopen(page, timeout=10).status == 200
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", default=str(ROOT.parent / "shared/data/real/dev/manifest.jsonl"))
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8, 12, 16, 24, 32])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per client")
    parser.add_argument("--max-latency", type=float, default=1.0, help="p95 final latency a round may have")
    parser.add_argument("--model", help="model file (default: the bundled model)")
    parser.add_argument(
        "--decoder",
        choices=["greedy", "beam"],
        default="greedy",
        help="what the server and clients decode with",
    )
    parser.add_argument("--budget", type=float, default=600, help="stop starting rounds after this many s")
    parser.add_argument("--json", help="write the rounds here")
    args = parser.parse_args()
    began = time.monotonic()
    bundle = load_model(args.model)
    clips = make_clips(args.manifest, max(args.streams), args.seconds)
    # What each client must get: its own audio through a local Stream with the same
    # endpoint rules (a float model's finals do not depend on chunks or batches; they can
    # differ from offline transcription only where an endpoint splits the audio).
    expected = [transcribe_stream(c, Recognizer(bundle, decoder=args.decoder)).text for c in clips]
    command = [sys.executable, "-m", "asr", "serve", "--port", "0", "--max-streams", "256",
               "--max-message-bytes", str(256 * 1024), "--decoder", args.decoder]  # fmt: skip
    if args.model:
        command += ["--model", args.model]
    server = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    rounds = []
    try:
        line = server.stderr.readline()
        if not line.startswith("serving on"):
            raise SystemExit(f"the server did not start: {line}")
        url = line.split()[4].rstrip(");")
        for n in args.streams:
            if time.monotonic() - began > args.budget:
                print(f"time budget spent; stopping before {n} streams", file=sys.stderr)
                break
            result = round_(url, clips[:n], expected[:n])
            result = asyncio.run(result)
            result["server_up"] = server.poll() is None and _page_loads(url)
            result["real_time"] = (
                result["p95_latency"] <= args.max_latency and result["correct"] == n and result["server_up"]
            )
            rounds.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
            if not result["server_up"]:
                break
    finally:
        server.terminate()
        server.wait(20)
    passed = [r["streams"] for r in rounds if r["real_time"]]
    print(
        f"{'streams':>7} {'p50 s':>6} {'p95 s':>6} {'max s':>6} {'correct':>8} {'server':>7} {'real time':>9}"
    )
    for r in rounds:
        print(
            f"{r['streams']:>7} {r['p50_latency']:>6.2f} {r['p95_latency']:>6.2f} {r['max_latency']:>6.2f} "
            f"{r['correct']:>4}/{r['streams']:<3} {'up' if r['server_up'] else 'DOWN':>7} "
            f"{'yes' if r['real_time'] else 'no':>9}"
        )
    if rounds:
        print(
            "hostile clients each round: " + "; ".join(f"{k}: {v}" for k, v in rounds[-1]["hostile"].items())
        )
    print(f"largest N with every stream real-time and correct: {max(passed) if passed else 0}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=2))
    return 0 if passed and all(r["server_up"] for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
