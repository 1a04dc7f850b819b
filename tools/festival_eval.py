#!/usr/bin/env python3
"""An evaluation set the model never trains on: Festival's voices reading Harvard sentences.

The festival voices and the Harvard sentences are reserved for evaluation: no training
tool in this project reads either. This tool renders each sentence of
``tools/harvard_sentences.txt`` (IEEE Harvard lists 1-3, 30 sentences) with each
installed Festival English voice (Debian ``festival`` plus ``festvox-kallpc16k``,
``festvox-kdlpc16k``, ``festvox-us-slt-hts``) and writes 16 kHz FLAC files and a
manifest, one subset (folder) per voice, for ``tools/bench_peers.py``:

    python tools/festival_eval.py --out data/festival
    python tools/bench_peers.py data/festival/manifest.jsonl --markdown
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asr.audio import SAMPLE_RATE, load_audio
from asr.text import normalize

SENTENCES = Path(__file__).with_name("harvard_sentences.txt")
#: Festival voice names and the Debian packages that install them.
VOICES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}


def installed_voices() -> list[str]:
    """The Festival voices of ``VOICES`` that are installed (checked by a test render)."""
    return [v for v in VOICES if _render("test", v) is not None]


def _render(text: str, voice: str) -> bytes | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        done = subprocess.run(
            ["text2wave", "-eval", f"({'voice_' + voice})", "-o", str(out)],
            input=text.encode(),
            capture_output=True,
            timeout=60,
        )
        if done.returncode != 0 or not out.exists() or out.stat().st_size < 100:
            return None
        return out.read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (VOICE/ folders and manifest.jsonl)")
    parser.add_argument("--sentences", default=str(SENTENCES), help="one sentence a line")
    args = parser.parse_args(argv)
    if shutil.which("text2wave") is None:
        sys.exit("error: Festival is not installed (apt-get install festival festvox-kallpc16k)")
    voices = installed_voices()
    if not voices:
        sys.exit(f"error: no Festival English voice installed (apt-get install {' '.join(VOICES.values())})")
    sentences = [
        s.strip() for s in Path(args.sentences).read_text(encoding="utf-8").splitlines() if s.strip()
    ]
    out = Path(args.out)
    rows = []
    for voice in voices:
        (out / voice).mkdir(parents=True, exist_ok=True)
        for i, sentence in enumerate(sentences):
            wav = _render(sentence, voice)
            if wav is None:
                print(f"error: {voice} could not read sentence {i + 1}", file=sys.stderr)
                return 1
            with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
                tmp.write(wav)
                tmp.flush()
                audio = load_audio(tmp.name, SAMPLE_RATE)
            name = f"{voice}/{i:03d}.flac"
            sf.write(out / name, audio, SAMPLE_RATE, subtype="PCM_16")
            rows.append(
                {
                    "audio": name,
                    "text": normalize(sentence),
                    "duration": round(len(audio) / SAMPLE_RATE, 3),
                    "speaker": voice,
                    "source": "festival + Harvard sentences (evaluation only)",
                }
            )
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    minutes = sum(r["duration"] for r in rows) / 60
    print(
        f"{len(rows)} utterances ({minutes:.1f} min), voices: {', '.join(voices)}; wrote {out / 'manifest.jsonl'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
