"""tools/synth_corpus.py: reproducible from its seed, dev voices and texts held out of train."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import require

from asr.text import normalize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import synth_corpus  # noqa: E402


@pytest.fixture(autouse=True)
def tools_installed() -> None:
    for tool in ("espeak-ng", "flite", "bible"):
        require(tool)


def test_plan_is_reproducible_and_keeps_dev_apart() -> None:
    train = synth_corpus.plan(300, "train", seed=3, max_words=24, limit=3000)
    assert train == synth_corpus.plan(300, "train", seed=3, max_words=24, limit=3000)
    assert train != synth_corpus.plan(300, "train", seed=4, max_words=24, limit=3000)
    dev = synth_corpus.plan(100, "dev", seed=3, max_words=24, limit=3000)
    train_voices = {i.voice.split("+")[-1] for i in train if i.voice.startswith("espeak")}
    dev_voices = {i.voice.split("+")[-1] for i in dev}
    assert dev_voices <= synth_corpus.HELDOUT_VARIANTS and not train_voices & dev_voices
    assert any(i.voice.startswith("flite") for i in train)
    assert all(i.text == normalize(i.text) and i.text for i in train + dev)
    assert any(w in ("one", "two", "three", "seven") for i in train for w in i.text.split())
    # Long sentences are held out by hash, so no dev sentence of 2+ words is in train.
    train_texts = {i.text for i in train}
    assert not {i.text for i in dev if len(i.text.split()) >= 5} & train_texts


def run(out: Path, jobs: int) -> list[dict]:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "synth_corpus.py"),
            "--out",
            str(out),
            "--hours",
            "0.005",
            "--seed",
            "7",
            "--jobs",
            str(jobs),
            "--text-limit",
            "2000",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_the_corpus_is_the_same_whatever_the_jobs(tmp_path: Path) -> None:
    one = run(tmp_path / "a", 1)
    two = run(tmp_path / "b", 2)
    assert one == two and len(one) >= 5
    for row in one:
        a, rate = sf.read(tmp_path / "a" / row["audio"])
        b, _ = sf.read(tmp_path / "b" / row["audio"])
        assert rate == 16000 and a.ndim == 1 and (a == b).all()
        assert row["duration"] == pytest.approx(len(a) / 16000, abs=1e-3)
        assert {"audio", "text", "duration", "speaker", "source", "license"} <= set(row)
