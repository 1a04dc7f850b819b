"""The GPU recipe's tools (tools/pack_for_gpu.py, tools/train_gpu.sh) run end to end on the CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from asr.checkpoint import load_model, safe_load

ROOT = Path(__file__).resolve().parents[1]


def pack(corpus: Path, out: Path, *sets: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pack_for_gpu.py"), "--out", str(out), "--jobs", "2", *sets],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_pack_reencodes_a_manifest_as_small_opus_with_the_same_text_and_timing(
    corpus: Path, tmp_path: Path
) -> None:
    done = pack(corpus, tmp_path, f"all={corpus}:12", f"some={corpus}:12:3")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    packed = [json.loads(line) for line in (tmp_path / "all" / "manifest.jsonl").read_text().splitlines()]
    assert [r["text"] for r in packed] == [r["text"] for r in rows]
    wav_bytes = opus_bytes = 0
    for row, new in zip(rows, packed, strict=True):
        info = soundfile.info(str(tmp_path / "all" / new["audio"]))
        assert (info.format, info.subtype, info.channels) == ("OGG", "OPUS", 1)
        assert abs(info.duration - row["duration"]) < 0.03
        wav_bytes += (corpus.parent / row["audio"]).stat().st_size
        opus_bytes += (tmp_path / "all" / new["audio"]).stat().st_size
    assert opus_bytes * 8 < wav_bytes  # 16-bit WAV is 256 kbps; about 12 kbps here
    subset = (tmp_path / "some" / "manifest.jsonl").read_text().splitlines()
    assert len(subset) == 3 and {json.loads(s)["text"] for s in subset} <= {r["text"] for r in rows}


def test_pack_keeps_every_file_inside_its_folder(corpus: Path, tmp_path: Path) -> None:
    """Absolute paths and "..", and one file listed twice, all land once inside OUT/NAME."""
    first = json.loads(corpus.read_text().splitlines()[0])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rows = [
        {**first, "audio": str(corpus.parent / first["audio"])},
        {**first, "audio": str(corpus.parent / first["audio"])},
        {**first, "audio": os.path.relpath(corpus.parent / first["audio"], elsewhere)},  # "../../..."
    ]
    manifest = elsewhere / "odd.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = pack(manifest, tmp_path / "out", f"odd={manifest}:12")
    assert done.returncode == 0, done.stderr
    packed = [
        json.loads(line) for line in (tmp_path / "out" / "odd" / "manifest.jsonl").read_text().splitlines()
    ]
    assert packed[0]["audio"] == packed[1]["audio"] != packed[2]["audio"]
    for row in packed:
        path = (tmp_path / "out" / "odd" / row["audio"]).resolve()
        assert path.is_relative_to((tmp_path / "out" / "odd").resolve()) and path.exists()
    assert list(corpus.parent.glob("*.opus")) == []  # nothing written beside the sources


@pytest.mark.parametrize("start", ["model file", "new model"])
def test_train_gpu_sizes_the_schedule_from_the_loader_and_trains(
    start: str, corpus: Path, tiny_model_file: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert (
        pack(
            corpus, data, f"real_train={corpus}:12", f"synth={corpus}:10:4", f"real_dev={corpus}:12:4"
        ).returncode
        == 0
    )
    env = {
        **os.environ,
        "DATA": str(data),
        "INIT": str(tiny_model_file) if start == "model file" else "none",
        "HIDDEN": "24",  # used by INIT=none only
        "LAYERS": "1",
        "CONV_CHANNELS": "4",
        "OUT": str(tmp_path / "run"),
        "DEVICE": "cpu",
        "WORKERS": "1",
        "PROBE_SECONDS": "1",
        "MINUTES": "0.505",  # 30.3 s: 0.3 s of it for training once start-up is set aside
        "BATCH_SECONDS": "4",
        "PYTHON": sys.executable,
        **({"EMA": "0.9"} if start == "model file" else {}),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "train_gpu.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stderr.splitlines() if line.startswith("loader: "))
    steps = int(line.split("; ")[1].split()[0])
    rate = float(line.split()[1])
    assert rate > 0 and abs(steps - max(1, 0.85 * rate * 0.3 / 4)) <= 1 + 0.01 * steps  # rate is rounded
    logged = (tmp_path / "run" / "steps.csv").read_text().splitlines()[1:]
    assert 1 <= len(logged) <= steps  # the schedule ends by --max-steps, or --max-minutes first
    average = safe_load(tmp_path / "run" / "last.pt")["ema"]  # EMA= passes --ema through
    assert (average is not None) == (start == "model file")
    best = load_model(tmp_path / "run" / "best.pt")
    assert (best.model.config.hidden, best.model.config.layers) == (
        (load_model(tiny_model_file).model.config.hidden, load_model(tiny_model_file).model.config.layers)
        if start == "model file"
        else (24, 1)
    )
