"""asr.align (CTC forced alignment into words) and tools/cut_segments.py (word pieces)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speak

from asr.align import AlignedWord, AlignmentError, align_words, alignment_score
from asr.audio import SAMPLE_RATE
from asr.text import Vocabulary

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import cut_segments  # noqa: E402

VOCAB = Vocabulary()


def spiky(frames: int, spikes: dict[int, str]) -> torch.Tensor:
    """Log-probs ``(frames, vocab)``: blank everywhere except the given frame -> character."""
    probs = torch.full((frames, len(VOCAB)), 0.01)
    probs[:, 0] = 1.0
    for frame, char in spikes.items():
        probs[frame, 0] = 0.01
        probs[frame, VOCAB.encode(char)[0]] = 1.0
    return torch.log(probs / probs.sum(dim=1, keepdim=True))


def test_words_get_the_frames_of_their_characters() -> None:
    logprobs = spiky(20, {2: "a", 3: "a", 5: "b", 7: " ", 9: "c", 12: "d", 13: "d"})
    words = align_words(logprobs, "ab cd", VOCAB)
    assert [(w.word, w.start, w.end) for w in words] == [("ab", 2, 6), ("cd", 9, 14)]
    assert all(0.75 < w.score <= 1.0 for w in words)  # 1 / (1 + 28 * 0.01)


def test_a_repeated_letter_needs_a_blank_between() -> None:
    logprobs = spiky(6, {1: "l", 3: "l"})
    word = align_words(logprobs, "ll", VOCAB)[0]
    assert (word.start, word.end) == (1, 4)
    with pytest.raises(AlignmentError, match="needs at least 3 frames"):
        align_words(spiky(2, {}), "ll", VOCAB)


@pytest.mark.parametrize("text", ["", "   ", "caf\u00e9"])
def test_unalignable_texts_raise(text: str) -> None:
    with pytest.raises(AlignmentError):
        align_words(spiky(10, {}), text, VOCAB)
    assert alignment_score(spiky(10, {}), text, VOCAB) == -float("inf")


def test_the_right_transcript_scores_higher() -> None:
    logprobs = spiky(12, {1: "g", 3: "o", 6: " ", 8: "u", 10: "p"})
    assert alignment_score(logprobs, "go up", VOCAB) > alignment_score(logprobs, "no on", VOCAB) + 2


def test_cuts_fall_in_the_pauses_and_keep_each_word_whole() -> None:
    # Three 300 ms "words" (10 ms energy frames) with pauses; spikes trail the sound by 120 ms.
    energy = np.full(200, 1e-6)
    bursts = [(20, 50), (80, 110), (125, 155)]
    for a, b in bursts:
        energy[a:b] = 1.0
    energy[140] = 0.1  # a soft frame inside the last word must not split it
    frame_ms, lag_ms = 40, 120
    words = [
        AlignedWord(w, (a * 10 + lag_ms) // frame_ms, (b * 10 + lag_ms) // frame_ms, 1.0)
        for w, (a, b) in zip("xyz", bursts, strict=True)
    ]
    begin, finish = cut_segments.cut_points(words, energy, frame_ms, lag_ms)
    for (a, b), start, end in zip(bursts, begin, finish, strict=True):
        assert start <= a and end >= b, (start, end, a, b)
    assert finish[0] <= bursts[1][0] and begin[1] >= bursts[0][1]
    assert finish[1] <= bursts[2][0] and begin[2] >= bursts[1][1]


def test_piece_is_padded_to_the_minimum_length() -> None:
    samples = np.ones(SAMPLE_RATE, np.float32)
    audio = cut_segments.piece(samples, 10, 40, 1.0, __import__("random").Random(0))
    assert len(audio) == SAMPLE_RATE
    assert np.count_nonzero(audio) == 30 * cut_segments.WINDOW - 2  # faded ends touch zero


def test_cut_segments_writes_pieces_of_the_transcripts(tmp_path: Path) -> None:
    texts = ["seven eight nine", "the cat sat on the mat"]
    rows = []
    for i, text in enumerate(texts):
        audio = speak(text, tmp_path / f"s{i}.wav", speed=120)
        rows.append({"audio": f"s{i}.wav", "text": text, "duration": len(audio) / SAMPLE_RATE})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "cuts"
    command = [
        sys.executable,
        str(ROOT / "tools" / "cut_segments.py"),
        "--manifest",
        str(manifest),
        "--out",
        str(out),
    ]
    done = subprocess.run(
        [*command, "--min-score", "-5", "--min-word-score", "0"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    pieces = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(pieces) == 2 * 4  # 3 words + 1 phrase from each sentence
    for row in pieces:
        audio, rate = sf.read(out / row["audio"])
        assert rate == SAMPLE_RATE and len(audio) >= SAMPLE_RATE
        assert row["duration"] == pytest.approx(len(audio) / rate, abs=1e-3)
        words = row["text"].split()
        assert any(" ".join(words) in text for text in texts)
    # The pieces are shorter than their sentences: word cuts, not copies.
    assert max(sf.info(out / r["audio"]).duration for r in pieces if len(r["text"].split()) == 1) < 1.5
    # An impossible score threshold skips every utterance.
    done = subprocess.run([*command, "--min-score", "0.5"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "0 pieces" in done.stdout and "2 skipped" in done.stdout
