"""asr prepare: LibriSpeech folders, Common Voice TSVs and CSVs become manifests."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.data import read_manifest


def tone(path: Path, seconds: float, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.2 * np.sin(2 * np.pi * 220 * t), rate)


def asr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", *args], capture_output=True, text=True, timeout=60)


def test_librispeech_layout(tmp_path: Path) -> None:
    root = tmp_path / "LibriSpeech" / "dev-tiny"
    chapter = root / "84" / "121123"
    tone(chapter / "84-121123-0000.flac", 1.5)
    tone(chapter / "84-121123-0001.flac", 0.75)
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN 1850\n"
    )
    other = root / "174" / "50561"
    tone(other / "174-50561-0000.flac", 2.0)
    (other / "174-50561.trans.txt").write_text("174-50561-0000 FORGOTTEN TOO\n174-50561-0009 MISSING AUDIO\n")
    done = asr("prepare", "librispeech", str(root))
    assert done.returncode == 1  # one transcript line has no audio
    assert "174-50561-0009.flac: no such file" in done.stderr and "Traceback" not in done.stderr
    assert "wrote 3 utterances" in done.stdout and "skipped 1" in done.stdout
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    assert rows[0]["audio"] == "174/50561/174-50561-0000.flac"  # relative to the manifest
    utts = {Path(u.audio).name: u for u in read_manifest(root / "manifest.jsonl")}
    first = utts["84-121123-0000.flac"]
    assert first.text == "go do you hear" and first.speaker == "84"
    assert first.duration == pytest.approx(1.5, abs=1e-3)
    assert utts["84-121123-0001.flac"].text == "but in eighteen fifty"
    assert Path(first.audio).exists()


def test_commonvoice_tsv(tmp_path: Path) -> None:
    clips = tmp_path / "cv" / "clips"
    tone(clips / "common_voice_en_1.wav", 1.0, 48000)
    tone(clips / "common_voice_en_2.ogg", 2.5, 32000)
    tsv = tmp_path / "cv" / "train.tsv"
    tsv.write_text(
        "client_id\tpath\tsentence\tup_votes\tdown_votes\n"
        'abc\tcommon_voice_en_1.wav\t"Quoted," she said.\t2\t0\n'
        "def\tcommon_voice_en_2.ogg\tIt costs $5.\t3\t1\n"
    )
    out = tmp_path / "manifests" / "cv_train.jsonl"
    done = asr("prepare", "commonvoice", str(tsv), "--out", str(out))
    assert done.returncode == 0, done.stderr
    utts = read_manifest(out)
    assert [u.text for u in utts] == ["quoted she said", "it costs five dollars"]
    assert [u.speaker for u in utts] == ["abc", "def"]
    assert [round(u.duration, 2) for u in utts] == [1.0, 2.5]
    assert all(Path(u.audio).exists() for u in utts)


def test_generic_csv_with_named_columns(tmp_path: Path) -> None:
    tone(tmp_path / "audio" / "a.flac", 0.5)
    tone(tmp_path / "audio" / "b.wav", 1.25)
    table = tmp_path / "list.csv"
    table.write_text(
        'file,transcript,who\naudio/a.flac,"Hello, world",ann\naudio/b.wav,Turn on 2 lights,bob\n'
    )
    done = asr("prepare", "csv", str(table), "--audio-column", "file", "--text-column", "transcript",
               "--speaker-column", "who")  # fmt: skip
    assert done.returncode == 0, done.stderr
    utts = read_manifest(tmp_path / "list.jsonl")
    assert [(u.text, u.speaker) for u in utts] == [("hello world", "ann"), ("turn on two lights", "bob")]
    assert [u.duration for u in utts] == pytest.approx([0.5, 1.25], abs=1e-3)
    # Wrong column names are a usage error, in one line, and leave no manifest behind.
    bad = asr("prepare", "csv", str(table), "--out", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "needs the columns 'audio' and 'text'" in bad.stderr
    assert bad.stderr.count("\n") == 1 and not (tmp_path / "x.jsonl").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_sources_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asr.cli import main

    def prepare(*args: str) -> tuple[int, str]:  # in this process: these fail before any work
        code = main(["prepare", *args])
        return code, capsys.readouterr().err

    code, err = prepare("librispeech", str(tmp_path / "nowhere"))
    assert code == 2 and "no such folder" in err
    (tmp_path / "clip.wav").write_bytes(b"RIFF")
    code, err = prepare("librispeech", str(tmp_path / "clip.wav"))
    assert code == 2 and f"{tmp_path / 'clip.wav'}: not a folder" in err
    (tmp_path / "empty").mkdir()
    code, err = prepare("librispeech", str(tmp_path / "empty"))
    assert code == 2 and "no LibriSpeech transcripts" in err
    code, err = prepare("commonvoice", str(tmp_path / "train.tsv"))
    assert code == 2 and "no such file" in err
    (tmp_path / "header.csv").write_text("audio,text\n")  # a header and no rows
    code, err = prepare("csv", str(tmp_path / "header.csv"))
    assert code == 2 and "lists no utterances" in err
    assert err.count("\n") == 1 and not (tmp_path / "header.jsonl").exists()
    (tmp_path / "latin1.csv").write_bytes("audio,text\na.wav,caf\xe9\n".encode("latin-1"))
    code, err = prepare("csv", str(tmp_path / "latin1.csv"))
    assert code == 2 and f"{tmp_path / 'latin1.csv'}: not UTF-8 text" in err
