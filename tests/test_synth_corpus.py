"""tools/synth_corpus.py: reproducible from its seed, dev voices and texts held out of train."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def _fixed_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small fixed text and voice lists, so the plan depends on the code's draws alone."""
    sentences = [f"sentence number {w}" for w in ("one", "two", "three", "four", "five", "six")]
    monkeypatch.setattr(
        synth_corpus, "load_text", lambda split, mw, limit=0: (sentences, ["apple", "pear", "plum", "fig"])
    )
    monkeypatch.setattr(
        synth_corpus, "espeak_variants", lambda: ["Andrea", "Annie", "m1", "f2", "klatt", "croak"]
    )


def test_default_plan_is_the_one_the_shipped_corpus_was_made_with(monkeypatch: pytest.MonkeyPatch) -> None:
    # Computed with the code of commit 5744f19, which made data/synth/train and dev for
    # the default model: new options must not change the default draws or their order.
    _fixed_text(monkeypatch)
    items = synth_corpus.plan(40, "train", 5, 24) + synth_corpus.plan(6, "dev", 5, 24)
    flite = [
        (i.index, i.voice, [(k, round(v, 3)) for k, v in i.settings]) for i in items if "flite" in i.voice
    ]
    assert flite == [
        (13, "flite:rms", [("stretch", 1.197), ("f0", 76.455)]),
        (30, "flite:kal", [("stretch", 1.225), ("f0", 73.164)]),
        (35, "flite:kal", [("stretch", 0.851), ("f0", 98.322)]),
    ]
    text = repr([(i.index, i.text, i.voice, [(k, round(v, 6)) for k, v in i.settings]) for i in items])
    assert (
        hashlib.sha256(text.encode()).hexdigest()
        == "905c3a563acec4e7fdd1fc50eefa6bd2069ac175ace3f382bb34229ce41b01ff"
    )


def test_flite_share_and_mild_prosody(monkeypatch: pytest.MonkeyPatch) -> None:
    _fixed_text(monkeypatch)
    default = synth_corpus.plan(300, "train", seed=3, max_words=24)
    flite = [i for i in default if i.voice.startswith("flite")]
    # The default train split keeps its 15% of flite voices with a drawn pitch.
    assert 20 <= len(flite) <= 70 and all(dict(i.settings).keys() == {"stretch", "f0"} for i in flite)
    mild = synth_corpus.plan(200, "train", seed=3, max_words=24, flite_share=1, flite_prosody="mild")
    assert {i.voice for i in mild} == {"flite:" + v for v in synth_corpus.FLITE_VOICES}
    assert all(dict(i.settings).keys() == {"stretch"} for i in mild)
    stretches = [dict(i.settings)["stretch"] for i in mild]
    assert min(stretches) >= 0.85 and max(stretches) <= 1.2
    half = synth_corpus.plan(400, "train", seed=3, max_words=24, flite_share=0.5)
    assert 150 <= sum(i.voice.startswith("flite") for i in half) <= 250
    # Dev stays espeak-only unless asked.
    assert not any(i.voice.startswith("flite") for i in synth_corpus.plan(100, "dev", 3, 24))
    assert all(i.voice.startswith("flite:") for i in synth_corpus.plan(50, "dev", 3, 24, flite_share=1))


def test_mild_flite_item_keeps_the_voice_pitch(monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []
    real_run = subprocess.run

    def run(cmd: list[str], **kwargs):
        commands.append(cmd)
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(synth_corpus.subprocess, "run", run)
    plain = synth_corpus.synthesise(synth_corpus.Item(0, "hello there", "flite:slt", (("stretch", 1.0),)))
    slower = synth_corpus.synthesise(synth_corpus.Item(0, "hello there", "flite:slt", (("stretch", 1.2),)))
    pitched = synth_corpus.synthesise(
        synth_corpus.Item(0, "hello there", "flite:slt", (("stretch", 1.0), ("f0", 80.0)))
    )
    assert not any("int_f0_target_mean" in " ".join(c) for c in commands[:2])
    assert "int_f0_target_mean=80.0" in commands[2]
    assert plain.dtype.name == "float32" and 0.3 * 16000 < len(plain) < 3 * 16000
    assert len(slower) > 1.1 * len(plain)
    # The voice's own pitch (slt is a female voice near 170 Hz) is not the forced 80 Hz one.
    assert pitch(plain) > 1.4 * pitch(pitched)


def pitch(audio: np.ndarray) -> float:
    """Median autocorrelation pitch (Hz) of the loud 40 ms frames of 16 kHz audio."""
    frames = [audio[i : i + 640] for i in range(0, len(audio) - 640, 320)]
    loud = [f for f in frames if np.sqrt(np.mean(f**2)) > 0.3 * np.sqrt(np.mean(audio**2))]
    found = []
    for f in loud:
        ac = np.correlate(f - f.mean(), f - f.mean(), "full")[639:]
        lag = 40 + int(np.argmax(ac[40:320]))  # 50-400 Hz
        found.append(16000 / lag)
    return float(np.median(found))


@pytest.mark.parametrize("share", ["2", "-0.1", "nan"])
def test_bad_flite_share_is_one_line(tmp_path: Path, share: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "synth_corpus.py"),
            "--out",
            str(tmp_path),
            "--flite-share",
            share,
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
