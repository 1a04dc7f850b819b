"""The benchmark tools run end to end on tiny inputs (their figures go in the model card)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_tool(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python tools/SCRIPT ARGS`` as a user runs it, its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / script), *args], capture_output=True, text=True, timeout=120
    )


def test_bench_peers_scores_both_systems(corpus: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("pocketsphinx")
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench_peers.py"),
            str(corpus),
            "--model",
            str(tiny_model_file),
            "--markdown",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "| subset | utts | asr WER | pocketsphinx WER |" in done.stdout
    report = json.loads(out.read_text())
    assert report["results"]["asr"]["all"]["utterances"] == 8
    # PocketSphinx's bundled model gets some of espeak-ng's words right; an untrained
    # tiny model gets (almost) none.
    assert report["results"]["pocketsphinx"]["all"]["wer"] < report["results"]["asr"]["all"]["wer"]
    assert report["rtf"]["pocketsphinx"] > 0 and report["rtf"]["asr"] > 0


def tiny_arpa(path: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tools"))
    import build_lm

    sentences = [line.split() for line in ["the cat sat", "turn on the lights", "a dog sat on the mat"] * 3]
    build_lm.write_arpa(build_lm.estimate(sentences, order=2), str(path))
    return path


def test_bench_decoders_compares_on_the_same_logprobs(
    corpus: Path, tiny_model_file: Path, tmp_path: Path
) -> None:
    arpa = tiny_arpa(tmp_path / "lm.arpa.gz")
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "tools" / "bench_decoders.py"), "--manifest", str(corpus),
            "--model", str(tiny_model_file), "--lm", str(arpa), "--limit", "3", "--beam-sizes", "2", "4",
            "--json", str(out),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    seen = {(r["beam"], r["lm"], r["decoder"]) for r in rows}
    for beam in (2, 4):
        assert {(beam, "none", "asr"), (beam, "lm", "asr"), (beam, "lm+lexicon", "asr")} <= seen
        # torchaudio's flashlight decoder is a dev dependency; pyctcdecode is optional.
        assert {(beam, "none", "torchaudio"), (beam, "lm+lexicon", "torchaudio")} <= seen
    for r in rows:
        assert r["fps"] > 0 and r["wer"] >= 0
        mine = next(m for m in rows if (m["beam"], m["lm"], m["decoder"]) == (r["beam"], r["lm"], "asr"))
        assert r["ours_over_peer"] == pytest.approx(mine["fps"] / r["fps"])
    assert "asr speed / peer" in done.stdout


def test_tune_lm_reports_a_grid(corpus: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    arpa = tiny_arpa(tmp_path / "lm.arpa")
    out = tmp_path / "grid.json"
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "tools" / "tune_lm.py"), "--manifest", str(corpus),
            "--model", str(tiny_model_file), "--lm", str(arpa), "--alphas", "0.2", "1",
            "--betas", "0", "2", "--beam-size", "4", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert [(g["alpha"], g["beta"]) for g in report["grid"]] == [(0.2, 0), (0.2, 2), (1, 0), (1, 2)]
    assert report["best"]["wer"] == min(g["wer"] for g in report["grid"])
    assert report["greedy"] >= 0 and report["beam"] >= 0


def test_confidence_calibration_pieces() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    import calibrate_confidence as cc
    import torch

    # "the cat sat" against "the bat sat down": the, sat right; bat substituted; down inserted.
    assert cc.labels("the cat sat", "the bat sat down") == [1, 0, 1, 0]
    assert cc.labels("", "noise") == [0] and cc.labels("words", "") == []
    # Two bins: confidence .9 with 1 of 2 right (gap .4), .2 with 0 of 2 right (gap .2).
    p = torch.tensor([0.9, 0.9, 0.2, 0.2], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert cc.ece(p, y) == pytest.approx((2 * 0.4 + 2 * 0.2) / 4)
    # The fit recovers the weights that generated the labels.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 3, generator=gen, dtype=torch.float64)
    truth = torch.sigmoid(2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5)
    labels = torch.bernoulli(truth, generator=gen)
    a, b, c = cc.fit(x, labels)
    assert (a, b, c) == pytest.approx((2.0, -1.0, 0.5), abs=0.25)


def test_calibrate_confidence_writes_the_model(corpus: Path, tmp_path: Path) -> None:
    from asr.checkpoint import atomic_save, default_model_path, load_model, safe_load
    from asr.streaming import make_decoder

    # A model that gets some of the corpus's words right and some wrong (an untrained
    # one gets all wrong, which says nothing about confidence: the tool refuses that).
    model_file = tmp_path / "model.pt"
    model_file.write_bytes(default_model_path().read_bytes())

    done = subprocess.run(
        [
            sys.executable, str(ROOT / "tools" / "calibrate_confidence.py"), "--manifest", str(corpus),
            "--model", str(model_file), "--write", "--json", str(tmp_path / "c.json"),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "c.json").read_text())
    weights = report["calibration"]
    assert len(weights) == 3 and report["words"] > 0
    bundle = load_model(model_file)
    assert bundle.metadata["confidence"] == weights
    assert list(make_decoder(bundle, "greedy").confidence) == weights
    # The beam search gets its own calibration, fitted on its own output; the greedy one
    # stays. Written into a training checkpoint (last.pt), it leaves the run resumable.
    last = tmp_path / "last.pt"
    atomic_save({"model": safe_load(model_file), "optimizer": {"state": {}}, "config": {}, "step": 7}, last)
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "tools" / "calibrate_confidence.py"), "--manifest", str(corpus),
            "--model", str(last), "--decoder", "beam", "--write", "--json", str(tmp_path / "b.json"),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    beam_weights = json.loads((tmp_path / "b.json").read_text())["calibration"]
    stored = safe_load(last)
    assert stored["step"] == 7 and stored["optimizer"] == {"state": {}}  # still a checkpoint
    bundle = load_model(last)
    assert bundle.metadata["confidence"] == weights and bundle.metadata["confidence_beam"] == beam_weights
    assert list(make_decoder(bundle, "beam").confidence) == beam_weights
    assert list(make_decoder(bundle, "greedy").confidence) == weights


def test_load_test_streams_real_time_clients_and_survives_hostile_ones(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "tools" / "load_test.py"), "--manifest", str(corpus),
            "--streams", "1", "3", "--seconds", "1.5", "--max-latency", "5", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "largest N with every stream real-time and correct: 3" in done.stdout
    rounds = json.loads(out.read_text())["rounds"]
    assert [r["streams"] for r in rounds] == [1, 3]
    for r in rounds:
        assert r["server_up"] and r["correct"] == r["streams"] and not r["wrong"]
        hostile = r["hostile"]
        assert hostile["oversized frame"] == "closed 1009"
        assert hostile["invalid JSON"] == hostile["audio before config"] == "closed 1008"
        assert hostile["NaN samples"] == hostile["odd byte count"] == "closed 1008"


def test_latency_table_reports_each_variant(corpus: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    from asr.checkpoint import Bundle, save_model
    from asr.features import FeatureConfig
    from asr.model import AcousticModel
    from asr.text import Vocabulary
    from tests.conftest import tiny_config

    lc = tmp_path / "lc.pt"
    model = AcousticModel(tiny_config(bidirectional=True, chunk_frames=8, lookahead_frames=2))
    save_model(Bundle(model.eval(), Vocabulary(), FeatureConfig()), lc)
    out = tmp_path / "table.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "latency_table.py"), str(tiny_model_file), str(lc),
         "--manifests", str(corpus), "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("| model | params | algorithmic latency |")
    assert "| tiny | " in lines[2] and "| 0 ms |" in lines[2]
    assert "| lc | " in lines[3] and "| 120-400 ms |" in lines[3]
    rows = json.loads(out.read_text())
    assert all(r[str(corpus)]["cer"] >= 0 and "stream" in r for r in rows)


def test_bench_int8_times_the_live_path_with_either_decoder(
    corpus: Path, tiny_model_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "int8.json"
    done = run_tool(
        "bench_int8.py", str(corpus), "--model", str(tiny_model_file), "--decoder", "beam", "--limit", "3",
        "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())["figures"]
    assert {key.rsplit(" ", 1)[1] for key in figures} == {"fp32", "int8"}
    for row in figures.values():
        assert row["decoder"] == "beam" and row["utterances"] == 3
        assert row["rtf_offline"] > 0 and row["rtf_stream"] > 0 and row["cer"] >= 0


def test_bench_live_replays_the_model_outputs_to_time_the_rest(
    corpus: Path, tiny_model_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "live.json"
    done = run_tool(
        "bench_live.py", str(corpus), "--model", str(tiny_model_file), "--limit", "2", "--repeats", "1",
        "--json", str(out),
    )  # fmt: skip
    # The replayed pass must decode exactly what the model gave, or the tool exits non-zero.
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["model"] == "int8" and report["audio_seconds"] > 0
    for decoder in ("greedy", "beam"):
        assert (
            report["figures"][decoder]["rtf_live"] > 0 and report["figures"][decoder]["rtf_without_model"] > 0
        )
