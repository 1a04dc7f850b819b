"""The benchmark tools run end to end on tiny inputs (their figures go in the model card)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_pocketsphinx_scores_both_systems(corpus: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("pocketsphinx")
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench_pocketsphinx.py"),
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
