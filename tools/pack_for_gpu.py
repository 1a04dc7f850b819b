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
        out.mkdir(parents=True, exist_ok=True)
        jobs, names, used = [], {}, set()
        for row in rows:
            source = str(base / row["audio"])  # an absolute path stays as it is
            if source not in names:
                # The path below the manifest where it is one (an absolute path or one with
                # "..", numbered), so that every file lands inside OUT/NAME.
                relative = Path(row["audio"])
                safe = not relative.is_absolute() and ".." not in relative.parts
                opus = str(relative.with_suffix(".opus")) if safe else ""
                if not opus or opus in used:  # "a.wav" and "a.flac" would both be "a.opus"
                    opus = f"audio/{len(names):06d}.opus"
                names[source] = opus
                used.add(opus)
                jobs.append((source, str(out / names[source]), float(kbps)))
            row["audio"] = names[source]
        with ProcessPoolExecutor(args.jobs) as pool:
            list(pool.map(encode, jobs, chunksize=16))
        with open(out / "manifest.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        size = sum(p.stat().st_size for p in out.rglob("*")) / 2**20
        print(f"{name}: {len(rows)} utterances, {size:.1f} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
