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


def test_flite_share_and_mild_prosody() -> None:
    default = synth_corpus.plan(300, "train", seed=3, max_words=24, limit=3000)
    flite = [i for i in default if i.voice.startswith("flite")]
    # The default train split keeps its 15% of flite voices with a drawn pitch.
    assert 20 <= len(flite) <= 70 and all(dict(i.settings).keys() == {"stretch", "f0"} for i in flite)
    assert default == synth_corpus.plan(300, "train", 3, 24, 3000, flite_share=0.15, flite_prosody="wide")
    mild = synth_corpus.plan(
        200, "train", seed=3, max_words=24, limit=3000, flite_share=1, flite_prosody="mild"
    )
    assert all(i.voice.startswith("flite:") for i in mild)
    assert {i.voice for i in mild} == {"flite:" + v for v in synth_corpus.FLITE_VOICES}
    stretches = [dict(i.settings)["stretch"] for i in mild]
    assert all(dict(i.settings).keys() == {"stretch"} for i in mild)
    assert min(stretches) >= 0.85 and max(stretches) <= 1.2
    # Dev stays espeak-only unless asked; asked, its flite items read held-out sentences.
    assert not any(i.voice.startswith("flite") for i in synth_corpus.plan(100, "dev", 3, 24, 3000))
    dev = synth_corpus.plan(100, "dev", 3, 24, 3000, flite_share=1, flite_prosody="mild")
    assert all(i.voice.startswith("flite:") for i in dev)
    train_texts = {i.text for i in default + mild}
    assert not {i.text for i in dev if len(i.text.split()) >= 5} & train_texts


def test_mild_flite_item_renders_at_the_voice_pitch(tmp_path: Path) -> None:
    item = synth_corpus.Item(0, "hello there", "flite:slt", (("stretch", 1.0),))
    audio = synth_corpus.synthesise(item)
    assert audio.dtype.name == "float32" and 0.3 * 16000 < len(audio) < 3 * 16000
    slower = synth_corpus.synthesise(synth_corpus.Item(0, "hello there", "flite:slt", (("stretch", 1.2),)))
    assert len(slower) > 1.1 * len(audio)


def test_bad_flite_share_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "synth_corpus.py"),
            "--out",
            str(tmp_path),
            "--flite-share",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "flite-share" in proc.stderr


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
