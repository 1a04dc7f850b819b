#!/usr/bin/env python3
"""Peak memory of ``asr transcribe --stream`` on long files: it must stay flat.

Builds FLAC files of N minutes (the bundled example repeated with pauses, so endpoints
fire as in real speech), transcribes each in a child process and reports the child's
peak resident memory and real-time factor, next to plain ``asr transcribe`` (which
holds the whole signal in memory).

    python tools/bench_memory.py --minutes 1 10 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def make_file(path: Path, minutes: float) -> None:
    speech, rate = sf.read(ROOT / "asr" / "examples" / "hello.wav", dtype="float32")
    unit = np.concatenate([speech, np.zeros(rate, np.float32)])
    total = int(minutes * 60 * rate)
    with sf.SoundFile(path, "w", rate, 1, format="FLAC") as f:
        written = 0
        while written < total:
            piece = unit[: total - written]
            f.write(piece)
            written += len(piece)


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Run ``python -m asr ARGS`` in a fresh process; its peak RSS (MB) and wall time."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "-m", "asr", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--model", help="model file (default: the bundled model)")
    parser.add_argument(
        "--decoder",
        choices=["greedy", "beam"],
        default="greedy",
        help="beam adds the LM's memory (default greedy)",
    )
    args = parser.parse_args()
    model = ["--model", args.model] if args.model else []
    model += ["--decoder", args.decoder]
    print("| audio | --stream peak RSS | --stream RTF | whole-file peak RSS | whole-file RTF |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            path = Path(tmp) / f"{minutes}min.flac"
            make_file(path, minutes)
            stream_mb, stream_s = peak_rss_mb(["transcribe", "--stream", *model, str(path)])
            whole_mb, whole_s = peak_rss_mb(["transcribe", *model, str(path)])
            seconds = minutes * 60
            print(
                f"| {minutes:g} min | {stream_mb:.0f} MB | {stream_s / seconds:.4f} | "
                f"{whole_mb:.0f} MB | {whole_s / seconds:.4f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
