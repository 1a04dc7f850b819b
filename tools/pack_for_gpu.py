"""Re-encode training manifests as low-bitrate Opus, so that a training run fits a
64 MiB transfer to a rented GPU (see tools/train_gpu.sh and models/README.md).

    python tools/pack_for_gpu.py --out .gpu/data \
        real_train=../shared/data/real/train/manifest.jsonl:12 \
        real_dev=../shared/data/real/dev/manifest.jsonl:12 \
        synth=data/synth/train/manifest_small.jsonl:10:1200

Each argument is NAME=MANIFEST:KBPS[:COUNT]; COUNT takes a seeded random subset.
Writes OUT/NAME/manifest.jsonl with the audio beside it, as 16 kHz mono Ogg/Opus through
libsndfile (libsndfile sets Opus's bitrate from a compression level: about 6 + 250 x
(1 - level) kbps). 12 kbps costs about 0.01 of real/dev CER against the originals.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile

from asr.audio import SAMPLE_RATE, load_audio


def encode(job: tuple[str, str, float]) -> None:
    """Re-encode one file as 16 kHz mono Opus at about ``kbps``."""
    src, dst, kbps = job
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    level = min(1.0, max(0.0, 1.0 - (kbps - 6.0) / 250.0))
    soundfile.write(dst, load_audio(src), SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=level)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("sets", nargs="+", help="NAME=MANIFEST:KBPS[:COUNT]")
    args = parser.parse_args()
    for spec in args.sets:
        name, _, rest = spec.partition("=")
        manifest, kbps, *count = rest.split(":")
        with open(manifest) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        if count:
            random.Random(args.seed).shuffle(rows)
            rows = rows[: int(count[0])]
        base, out = Path(manifest).parent, Path(args.out) / name
        jobs = []
        for row in rows:
            dst = str(Path(row["audio"]).with_suffix(".opus"))
            jobs.append((str(base / row["audio"]), str(out / dst), float(kbps)))
            row["audio"] = dst
        with ProcessPoolExecutor(args.jobs) as pool:
            list(pool.map(encode, jobs, chunksize=16))
        with open(out / "manifest.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        size = sum(p.stat().st_size for p in out.rglob("*")) / 2**20
        print(f"{name}: {len(rows)} utterances, {size:.1f} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
