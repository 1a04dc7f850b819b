#!/usr/bin/env python3
"""Synthesise a varied speech corpus with Debian's offline text-to-speech.

Voices: espeak-ng (8 English accents x its voice variants, random speed, pitch and word
gap) and flite's built-in voices (random duration stretch and pitch; 15% of the train
split by default, ``--flite-share`` sets it for either split, ``--flite-prosody mild``
keeps each flite voice's own pitch and a narrower stretch).
Text: fortunes, the King James Bible, WordNet glosses and lemmas, plus generated
numbers, digit strings and short command phrases, all passed through ``asr``'s
normaliser. The festival voices and the Harvard sentences are reserved for evaluation
and are never used here.

The output is a folder of 16 kHz mono FLAC files and a ``manifest.jsonl`` in the shared
format. Everything is derived from ``--seed``: item ``i`` always gets the same text,
voice and settings, whatever ``--jobs`` is. ``--split dev`` draws from voices and
sentences held out of ``--split train``.

    python tools/synth_corpus.py --hours 20 --out data/synth/train
    python tools/synth_corpus.py --hours 0.5 --split dev --out data/synth/dev
    python tools/synth_corpus.py --hours 3.5 --seed 3 --flite-share 1 --flite-prosody mild \
        --out data/synth/flite
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asr.text import normalize, number_to_words

SAMPLE_RATE = 16000
ESPEAK_ACCENTS = (
    "en-us",
    "en",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
#: Share of flite items in the train split when ``--flite-share`` is not given.
FLITE_SHARE = 0.15
#: Duration stretch (flite's duration_stretch; > 1 is slower) and mean pitch (Hz) draws.
FLITE_PROSODY: dict[str, tuple[tuple[float, float], tuple[float, float] | None]] = {
    "wide": ((0.8, 1.35), (70.0, 220.0)),
    "mild": ((0.85, 1.2), None),
}
#: espeak-ng variants kept out of training, for a synthetic dev set of unseen voices.
HELDOUT_VARIANTS = frozenset(
    [
        "Annie",
        "Gene2",
        "f5",
        "klatt4",
        "m7",
        "steph3",
        "travis",
        "Andrea",
        "Mike",
        "antonio",
        "norbert",
        "linda",
    ]
)
#: Variants that do not sound like speech a person makes (whispers and robots), rarely used.
ODD_VARIANTS = frozenset(
    [
        "whisper",
        "whisperf",
        "Demonic",
        "croak",
        "UniRobot",
        "anikaRobot",
        "robosoft",
        "robosoft2",
        "robosoft3",
        "robosoft4",
        "robosoft5",
        "robosoft6",
        "robosoft7",
        "robosoft8",
        "Tweaky",
    ]
)
#: A typical keyword-spotting and voice-command vocabulary, for short utterances.
COMMAND_WORDS = [
    "yes",
    "no",
    "up",
    "down",
    "left",
    "right",
    "on",
    "off",
    "stop",
    "go",
    "start",
    "next",
    "back",
    "forward",
    "backward",
    "follow",
    "learn",
    "visual",
    "bed",
    "bird",
    "cat",
    "dog",
    "happy",
    "house",
    "marvin",
    "sheila",
    "tree",
    "wow",
    "play",
    "pause",
    "open",
    "close",
    "call",
    "cancel",
    "okay",
    "hello",
    "hi",
    "help",
    "repeat",
    "skip",
    "louder",
    "quieter",
    "volume",
    "mute",
    "unmute",
    "home",
    "menu",
]
FORTUNE_DIR = "/usr/share/games/fortunes"
WORDNET_DIR = "/usr/share/wordnet"


@dataclass(frozen=True)
class Item:
    index: int
    text: str
    voice: str
    settings: tuple[tuple[str, float], ...]


def _sentences(text: str) -> Iterator[str]:
    yield from re.split(r"(?<=[.!?;:])\s+", " ".join(text.split()))


def _fortunes() -> Iterator[str]:
    for path in sorted(glob.glob(os.path.join(FORTUNE_DIR, "*"))):
        if "." in os.path.basename(path) or os.path.isdir(path):
            continue
        raw = Path(path).read_text(encoding="utf-8", errors="ignore")
        for entry in raw.split("\n%\n"):
            yield from _sentences(entry)


def _bible() -> Iterator[str]:
    out = subprocess.run(["bible", "gen1:1-rev22:21"], capture_output=True, text=True, check=True).stdout
    verse: list[str] = []
    for line in out.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        head, _, rest = stripped.partition(" ")
        if line.startswith("  ") and head.isdigit():
            if verse:
                yield from _sentences(" ".join(verse))
            verse = [rest]
        elif line.startswith(" ") or not verse:
            continue
        else:
            verse.append(stripped)
    if verse:
        yield from _sentences(" ".join(verse))


def _wordnet() -> Iterator[str]:
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(WORDNET_DIR, f"data.{pos}")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8", errors="ignore") as f:
            for line in f:
                if line.startswith(" ") or "|" not in line:
                    continue
                gloss = line.split("|", 1)[1]
                for piece in gloss.split(";"):
                    yield piece.strip().strip('"')


def _lemmas() -> list[str]:
    words: set[str] = set()
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(WORDNET_DIR, f"index.{pos}")
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="ignore") as f:
                for line in f:
                    if not line.startswith(" "):
                        lemma = line.split(" ", 1)[0]
                        if lemma.isalpha() and len(lemma) <= 12:
                            words.add(lemma.lower())
    return sorted(words)


def _generated(rng: random.Random, lemmas: list[str]) -> str:
    kind = rng.random()
    if kind < 0.25:
        return " ".join(rng.choice(COMMAND_WORDS) for _ in range(rng.randint(1, 3)))
    if kind < 0.45:
        return " ".join(number_to_words(rng.randint(0, 9)) for _ in range(rng.randint(1, 7)))
    if kind < 0.6:
        return number_to_words(rng.choice([rng.randint(0, 100), rng.randint(0, 100000)]))
    return " ".join(rng.choice(lemmas) for _ in range(rng.randint(1, 4)))


def load_text(split: str, max_words: int, limit: int = 0) -> tuple[list[str], list[str]]:
    """Normalised sentences of this split (1 of every 50 goes to dev) and the lemma list.

    ``limit`` > 0 reads only that many raw sentences from each source (quick trials).
    """
    seen: set[str] = set()
    sentences = []
    for source in (_fortunes(), _bible(), _wordnet()):
        for raw in itertools.islice(source, limit or None):
            text = normalize(raw)
            n = len(text.split())
            if not 2 <= n <= max_words or text in seen:
                continue
            seen.add(text)
            bucket = int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % 50
            if (bucket == 0) == (split == "dev"):
                sentences.append(text)
    return sentences, _lemmas()


def espeak_variants() -> list[str]:
    base = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    data = base.split("Data at:")[-1].strip() if "Data at:" in base else ""
    folder = os.path.join(data, "voices", "!v")
    if not os.path.isdir(folder):
        found = glob.glob("/usr/lib/*/espeak-ng-data/voices/!v") + glob.glob(
            "/usr/share/espeak-ng-data/voices/!v"
        )
        folder = found[0]
    return sorted(os.listdir(folder))


def plan(
    n_items: int,
    split: str,
    seed: int,
    max_words: int,
    limit: int = 0,
    flite_share: float | None = None,
    flite_prosody: Literal["wide", "mild"] = "wide",
) -> list[Item]:
    """The text, voice and settings of every item; a pure function of its arguments.

    ``flite_share`` is the probability of a flite voice (default: ``FLITE_SHARE`` for the
    train split, 0 for dev, whose unseen voices are espeak-ng's); ``flite_prosody`` picks
    the stretch and pitch ranges of ``FLITE_PROSODY`` ("mild" keeps the voice's pitch).
    Any share above 0 takes one extra random draw per item, so a share other than the
    split's default changes every item's draws, espeak-ng ones included.
    """
    if flite_share is None:
        flite_share = FLITE_SHARE if split == "train" else 0.0
    stretch_range, f0_range = FLITE_PROSODY[flite_prosody]
    sentences, lemmas = load_text(split, max_words, limit)
    variants = [v for v in espeak_variants() if (v in HELDOUT_VARIANTS) == (split == "dev")]
    common = [v for v in variants if v not in ODD_VARIANTS]
    items = []
    for i in range(n_items):
        # Dev draws from its own stream, so the generated numbers never repeat train's.
        rng = random.Random(seed * 1_000_003 + i if split == "train" else f"dev/{seed}/{i}")
        text = rng.choice(sentences) if rng.random() < 0.75 else _generated(rng, lemmas)
        if flite_share > 0 and rng.random() < flite_share:
            voice = "flite:" + rng.choice(FLITE_VOICES)
            settings: tuple[tuple[str, float], ...] = (("stretch", rng.uniform(*stretch_range)),)
            if f0_range is not None:
                settings += (("f0", rng.uniform(*f0_range)),)
        else:
            pool = variants if rng.random() < 0.05 else common
            voice = f"espeak:{rng.choice(ESPEAK_ACCENTS)}+{rng.choice(pool)}"
            settings = (
                ("speed", rng.uniform(115, 215)),
                ("pitch", rng.uniform(15, 85)),
                ("gap", rng.choice([0, 0, 0, 1, 2, 4])),
            )
        items.append(Item(i, text, voice, settings))
    return items


def synthesise(item: Item) -> np.ndarray:
    """Run the TTS engine for one item; returns float32 mono audio at 16 kHz."""
    settings = dict(item.settings)
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        engine, voice = item.voice.split(":", 1)
        if engine == "espeak":
            cmd = [
                "espeak-ng",
                "-v",
                voice,
                "-s",
                str(int(settings["speed"])),
                "-p",
                str(int(settings["pitch"])),
                "-g",
                str(int(settings["gap"])),
                "-w",
                wav,
                item.text,
            ]
            subprocess.run(cmd, check=True, capture_output=True)
        else:
            cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={settings['stretch']:.3f}"]
            if "f0" in settings:
                cmd += ["--setf", f"int_f0_target_mean={settings['f0']:.1f}"]
            cmd += ["-t", item.text, "-o", wav]
            subprocess.run(cmd, check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    return audio


def render(args: tuple[Item, str, int]) -> dict | None:
    item, out_dir, seed = args
    rng = np.random.default_rng(seed * 7919 + item.index)
    try:
        audio = synthesise(item)
    except (subprocess.CalledProcessError, RuntimeError, ValueError):
        return None
    voiced = np.flatnonzero(np.abs(audio) > 1e-3)
    if voiced.size == 0:
        return None
    # Trim the engine's silence, then leave a random natural margin on both sides.
    audio = audio[voiced[0] : voiced[-1] + 1]
    lead, tail = (int(rng.uniform(0.05, 0.4) * SAMPLE_RATE) for _ in range(2))
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(tail, np.float32)])
    peak = float(np.abs(audio).max())
    audio *= rng.uniform(0.3, 0.95) / max(peak, 1e-6)
    rel = f"{item.index // 1000:03d}/{item.index:07d}.flac"
    path = os.path.join(out_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return {
        "audio": rel,
        "text": item.text,
        "duration": round(len(audio) / SAMPLE_RATE, 3),
        "speaker": item.voice,
        "source": "synthetic/" + item.voice.split(":")[0],
        "license": "generated",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (gets manifest.jsonl)")
    parser.add_argument("--hours", type=float, default=1.0, help="approximate hours of audio")
    parser.add_argument("--split", choices=("train", "dev"), default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-words", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--text-limit", type=int, default=0, help="read N sentences a source (trials)")
    parser.add_argument(
        "--flite-share",
        type=float,
        default=None,
        help=f"share of flite voices, 0-1 (default: {FLITE_SHARE} for train, 0 for dev)",
    )
    parser.add_argument(
        "--flite-prosody",
        choices=sorted(FLITE_PROSODY),
        default="wide",
        help="flite duration stretch and pitch: "
        + ", ".join(
            f"{name} (stretch {s[0]}-{s[1]}, "
            + (f"pitch {f0[0]:g}-{f0[1]:g} Hz)" if f0 else "the voice's own pitch)")
            for name, (s, f0) in FLITE_PROSODY.items()
        )
        + " (default: wide)",
    )
    args = parser.parse_args()
    if args.flite_share is not None and not 0 <= args.flite_share <= 1:
        print("error: --flite-share must be between 0 and 1", file=sys.stderr)
        return 2
    if args.split == "dev" and args.flite_prosody != "wide" and not args.flite_share:
        print("error: --split dev has no flite voices unless --flite-share is given", file=sys.stderr)
        return 2
    for tool in ("espeak-ng", "flite", "bible"):
        if shutil.which(tool) is None:
            print(
                f"error: {tool} is not installed (apt-get install espeak-ng flite bible-kjv "
                "fortunes wordnet-base)",
                file=sys.stderr,
            )
            return 2
    # About 2.6 s per item on average; the manifest reports the true total.
    n_items = max(1, int(args.hours * 3600 / 2.6))
    items = plan(
        n_items,
        args.split,
        args.seed,
        args.max_words,
        args.text_limit,
        flite_share=args.flite_share,
        flite_prosody=args.flite_prosody,
    )
    os.makedirs(args.out, exist_ok=True)
    total = 0.0
    manifest = os.path.join(args.out, "manifest.jsonl")
    with open(manifest + ".tmp", "w") as f, ProcessPoolExecutor(args.jobs) as pool:
        jobs = ((item, args.out, args.seed) for item in items)
        for done, row in enumerate(pool.map(render, jobs, chunksize=16), 1):
            if row is not None:
                f.write(json.dumps(row) + "\n")
                total += row["duration"]
            if done % 2000 == 0:
                print(f"{done}/{len(items)} items, {total / 3600:.2f} h", flush=True)
    os.replace(manifest + ".tmp", manifest)
    print(f"wrote {manifest}: {total / 3600:.2f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
