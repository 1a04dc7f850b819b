"""tools/festival_eval.py: the reserved evaluation voices, and no training tool touching them."""

import json
import subprocess
import sys
from pathlib import Path

import soundfile as sf
from conftest import require

from asr.text import normalize

ROOT = Path(__file__).resolve().parents[1]


def test_festival_voices_read_the_sentences(tmp_path: Path) -> None:
    require("text2wave")
    sentences = tmp_path / "sentences.txt"
    sentences.write_text(
        "The birch canoe slid on the smooth planks.\n\nIt's easy to tell the depth of a well.\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "festival_eval.py"),
            "--out",
            str(tmp_path / "fest"),
            "--sentences",
            str(sentences),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "fest" / "manifest.jsonl").read_text().splitlines()]
    voices = {r["speaker"] for r in rows}
    assert "kal_diphone" in voices and len(rows) == 2 * len(voices)
    assert rows[1]["text"] == "it's easy to tell the depth of a well" == normalize(rows[1]["text"])
    for row in rows:
        assert row["audio"].startswith(row["speaker"] + "/")  # one subset per voice
        audio, rate = sf.read(tmp_path / "fest" / row["audio"])
        assert rate == 16000 and abs(len(audio) / rate - row["duration"]) < 1e-3
        assert 1.0 < row["duration"] < 6.0 and abs(audio).max() > 0.05  # speech, not silence


def test_no_training_tool_reads_the_reserved_voices_or_sentences() -> None:
    training = [
        ROOT / "tools" / name
        for name in (
            "synth_corpus.py",
            "build_default_lm.sh",
            "build_lm.py",
            "cut_segments.py",
            "train_default.sh",
            "finetune_default.sh",
            "train_gpu.sh",
            "pack_for_gpu.py",
            "prepare_gpu.sh",
        )
    ]
    for path in training:
        text = path.read_text().lower()
        for reserved in ("text2wave", "festival_eval", "harvard_sentences", "voice_kal", "festvox"):
            assert reserved not in text, f"{path.name} mentions {reserved}"
