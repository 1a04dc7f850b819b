import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from asr.evaluate import Report, group_scores, score


def test_scores_count_edits_by_hand() -> None:
    s = score(["the cat sat on the mat", "hello world"], ["the bat sat the mat now", "hello world"])
    # Sentence 1: cat->bat (S), "on" dropped (D), "now" added (I); sentence 2 correct.
    assert (s.substitutions, s.deletions, s.insertions, s.reference_words) == (1, 1, 1, 8)
    assert s.wer == pytest.approx(3 / 8)
    assert s.cer == pytest.approx(jiwer_cer(), rel=1e-6)
    # The shared normaliser runs first: case, punctuation and numbers do not count.
    assert score(["Turn on 2 lights."], ["turn on two lights"]).wer == 0.0
    # An empty reference expects silence: what is said there counts as insertions.
    with_silence = score(["hello world", ""], ["hello world", "noise here"])
    assert (with_silence.utterances, with_silence.insertions, with_silence.reference_words) == (2, 2, 2)
    assert with_silence.wer == pytest.approx(1.0)
    assert score([""], ["noise"]).wer == math.inf and score([""], [""]).wer == 0.0


def jiwer_cer() -> float:
    import jiwer

    return jiwer.cer(["the cat sat on the mat", "hello world"], ["the bat sat the mat now", "hello world"])


def test_grouping_and_worst_utterances() -> None:
    rows = [
        {"audio": "a", "subset": "x", "speaker": "s1", "ref": "yes", "hyp": "yes"},
        {"audio": "b", "subset": "x", "speaker": "s2", "ref": "go home now", "hyp": "go now"},
        {"audio": "c", "subset": "y", "speaker": "s2", "ref": "stop", "hyp": "top stop"},
    ]
    subsets = group_scores(rows, "subset")
    assert subsets["x"].wer == pytest.approx(1 / 4) and subsets["y"].insertions == 1
    assert group_scores(rows, "speaker")["s2"].utterances == 2
    report = Report(score([r["ref"] for r in rows], [r["hyp"] for r in rows]), subsets, rows=rows)
    worst = report.worst(5)
    assert [w["audio"] for w in worst] == ["b", "c"]
    assert worst[0]["alignment"].splitlines()[:2] == ["REF: go home now", "HYP: go **** now"]


def eval_files(ref: Path, hyp: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "asr", "eval", "--ref", str(ref), "--hyp", str(hyp), *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_text_file_mode(tmp_path: Path) -> None:
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("the cat sat\nhello world\n")
    hyp.write_text("the bat sat\nhello world\n")
    done = eval_files(ref, hyp, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["wer"] == pytest.approx(1 / 5)
    hyp.write_text("one line\n")
    done = eval_files(ref, hyp)
    assert done.returncode == 2 and "has 2 lines but" in done.stderr
    done = eval_files(ref, hyp, str(tmp_path / "m.jsonl"))  # a manifest as well: which one?
    assert done.returncode == 2 and "not both" in done.stderr
    # Words said where no words were expected: no rate to give (inf), null in JSON.
    ref.write_text("\n")
    hyp.write_text("noise here\n")
    done = eval_files(ref, hyp, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["wer"] is None and report["insertions"] == 2 and report["reference_words"] == 0


def test_stream_figures_on_a_constructed_stream() -> None:
    from asr.decoding import Word
    from asr.evaluate import StreamTrace, stream_figures, summarize_streams
    from asr.streaming import Result

    hi, yo, y = Word("hi", 0.1, 0.3, 1.0), Word("yo", 0.5, 0.7, 1.0), Word("y", 0.5, 0.6, 1.0)
    final = Result("hi yo", "", (hi, yo), 1.5, 0.0)
    shown = [
        (0.4, Result("", "hi", (hi,))),
        (0.6, Result("hi", "y", (hi, y))),
        (0.8, Result("hi", "yo", (hi, yo))),
        (1.5, final),
    ]
    trace = StreamTrace(shown, [final], audio_seconds=2.0, compute_seconds=0.1)
    f = stream_figures(trace)
    assert f.first_seen == pytest.approx([0.1, 0.1])  # hi seen at 0.4 (ends 0.3), yo at 0.8 (ends 0.7)
    assert f.committed == pytest.approx([0.3, 0.8])  # hi committed at 0.6, yo at 1.5
    assert (f.shown_words, f.changed, f.committed_changed) == (5, 1, 0)  # "y" became "yo"
    summary = summarize_streams([trace])
    assert summary["partial_changed"] == pytest.approx(0.2) and summary["rtf"] == pytest.approx(0.05)
    # A committed word that changes later is counted: it must never happen.
    broken = StreamTrace(
        [(0.6, Result("hi", "", (hi,))), (1.0, Result("ho", "", (Word("ho", 0.1, 0.3, 1.0),)))], [final]
    )
    assert stream_figures(broken).committed_changed == 1


def test_plots_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from asr.plots import write_plots

    rows = [
        {"audio": "a", "subset": "x", "speaker": "s", "ref": "yes", "hyp": "yes"},
        {"audio": "b", "subset": "y", "speaker": "s", "ref": "go home", "hyp": "go"},
    ]
    report = Report(score(["yes", "go home"], ["yes", "go"]), group_scores(rows, "subset"), rows=rows)
    paths = write_plots(report, str(tmp_path), {"word seen": [0.1, 0.2], "word committed": [0.3]})
    assert [Path(p).name for p in paths] == ["wer_by_subset.png", "cer_distribution.png", "latency.png"]
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
