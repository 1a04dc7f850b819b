"""asr.align (CTC forced alignment into words) and tools/cut_segments.py (word pieces)."""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speak

from asr.align import AlignedWord, AlignmentError, align_words, alignment_score
from asr.audio import SAMPLE_RATE, load_audio
from asr.checkpoint import load_model
from asr.streaming import compute_logprobs
from asr.text import Vocabulary

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import cut_segments  # noqa: E402

VOCAB = Vocabulary()


def spiky(frames: int, spikes: dict[int, str], peak: float = 1.0) -> torch.Tensor:
    """Log-probs ``(frames, vocab)``: blank everywhere except the given frame -> character."""
    probs = torch.full((frames, len(VOCAB)), 0.01)
    probs[:, 0] = 1.0
    for frame, char in spikes.items():
        probs[frame, 0] = 0.01
        probs[frame, VOCAB.encode(char)[0]] = peak
    return torch.log(probs / probs.sum(dim=1, keepdim=True))


def test_words_get_the_frames_of_their_characters() -> None:
    logprobs = spiky(20, {2: "a", 3: "a", 5: "b", 7: " ", 9: "c", 12: "d", 13: "d"}, peak=3.0)
    words = align_words(logprobs, "ab cd", VOCAB)
    assert [(w.word, w.start, w.end) for w in words] == [("ab", 2, 6), ("cd", 9, 14)]
    # The score averages the characters' own frames, not the blanks between them.
    char_posterior = 3.0 / (3.0 + 0.01 * 28)
    assert all(w.score == pytest.approx(char_posterior, rel=1e-5) for w in words)


def test_apostrophes_and_repeated_letters() -> None:
    logprobs = spiky(12, {1: "d", 2: "o", 3: "n", 4: "'", 5: "t", 7: " ", 9: "l", 11: "l"})
    words = align_words(logprobs, "don't ll", VOCAB)
    assert [(w.word, w.start, w.end) for w in words] == [("don't", 1, 6), ("ll", 9, 12)]
    with pytest.raises(AlignmentError, match="needs at least 3 frames"):  # l, blank, l
        align_words(spiky(2, {}), "ll", VOCAB)


@pytest.mark.parametrize("text", ["", "   ", "caf\u00e9"])
def test_unalignable_texts_raise(text: str) -> None:
    with pytest.raises(AlignmentError):
        align_words(spiky(10, {}), text, VOCAB)
    assert alignment_score(spiky(10, {}), text, VOCAB) == -float("inf")


def test_log_probs_of_another_vocabulary_are_refused() -> None:
    for function in (align_words, alignment_score):
        with pytest.raises(AlignmentError, match="expected log-probs"):
            function(torch.zeros(10, 5), "go", VOCAB)


def test_the_right_transcript_scores_higher() -> None:
    logprobs = spiky(12, {1: "g", 3: "o", 6: " ", 8: "u", 10: "p"})
    assert alignment_score(logprobs, "go up", VOCAB) > alignment_score(logprobs, "no on", VOCAB) + 2


def burst_energy(bursts: list[tuple[int, int]], frames: int = 200) -> np.ndarray:
    energy = np.full(frames, 1e-6)
    for a, b in bursts:
        energy[a:b] = 1.0
    return energy


def spike_words(bursts: list[tuple[int, int]], frame_ms: int = 40, lag_ms: int = 120) -> list[AlignedWord]:
    """Words whose spikes trail each burst (10 ms frames) by ``lag_ms``."""
    return [
        AlignedWord("w", (a * 10 + lag_ms) // frame_ms, (b * 10 + lag_ms) // frame_ms, 1.0) for a, b in bursts
    ]


BURSTS = [(20, 50), (80, 110), (125, 155)]  # three 300 ms words with pauses


def test_cuts_fall_in_the_pauses_after_taking_off_the_lag() -> None:
    begin, stop = cut_segments.cut_points(spike_words(BURSTS), burst_energy(BURSTS), 40, 120)
    assert begin == [0, 50, 110] and stop == [80, 125, 182]
    for (a, b), start, end in zip(BURSTS, begin, stop, strict=True):
        assert start <= a and end >= b


def test_a_soft_onset_stays_with_its_word() -> None:
    energy = burst_energy(BURSTS)
    energy[120:125] = 1e-3  # a fricative before the third word, 30 dB down
    begin, stop = cut_segments.cut_points(spike_words(BURSTS), energy, 40, 120)
    assert begin[2] <= 120 and stop[1] == 120


def test_a_noise_inside_a_pause_is_not_inside_the_quiet_stretch() -> None:
    energy = burst_energy(BURSTS)
    energy[60:65] = 1.0  # a click in the first pause
    assert cut_segments.quiet_span(energy, 48, 81) == (50, 60)
    _, stop = cut_segments.cut_points(spike_words(BURSTS), energy, 40, 120)
    assert stop[0] == 60  # the first word's piece ends before the click


def test_quiet_span_of_an_empty_or_outside_window() -> None:
    energy = burst_energy(BURSTS)
    assert cut_segments.quiet_span(energy, 190, 250) == (190, 200)
    assert cut_segments.quiet_span(energy, 250, 260) == (200, 200)
    assert cut_segments.quiet_span(np.zeros(10), 0, 10) == (0, 10)  # digital silence is all quiet


def test_one_word() -> None:
    bursts = [(40, 70)]
    begin, stop = cut_segments.cut_points(spike_words(bursts), burst_energy(bursts, 120), 40, 120)
    assert begin[0] <= 40 and stop[0] >= 70 and stop[0] - begin[0] <= 90


def test_speech_onset_and_lag() -> None:
    assert cut_segments.speech_onset(np.zeros(50)) is None
    samples = np.zeros(SAMPLE_RATE, np.float32)
    samples[3200:8000] = 0.1  # speech from 200 ms
    assert cut_segments.speech_onset(cut_segments.frame_energy(samples)) == 20
    words = [AlignedWord("w", 8, 12, 1.0)]  # first spike at 8 x 40 ms = 320 ms
    assert cut_segments.measure_lag([(samples, words)] * 3, 40) == 120


def test_choose_takes_distinct_well_aligned_ranges() -> None:
    rng = random.Random(0)
    one = [AlignedWord("go", 0, 2, 0.9)]
    assert cut_segments.choose(one, rng, 3, 1, 0.3) == [(0, 1)]
    three = [AlignedWord(w, i, i + 1, 0.9) for i, w in enumerate(["a", "b", "c"])]
    for _ in range(20):  # a 3-word sentence always yields a phrase (of 2 or 3 words)
        ranges = cut_segments.choose(three, rng, 2, 1, 0.3)
        assert len(ranges) == len(set(ranges)) == 3 and any(j - i >= 2 for i, j in ranges)
    weak = [AlignedWord("a", 0, 1, 0.9), AlignedWord("b", 1, 2, 0.1), AlignedWord("c", 2, 3, 0.9)]
    ranges = cut_segments.choose(weak, rng, 3, 1, 0.3)
    assert sorted(ranges) == [(0, 1), (2, 3)]  # no range holds the badly aligned word


def test_piece_is_padded_to_the_minimum_length() -> None:
    samples = np.ones(SAMPLE_RATE, np.float32)
    audio = cut_segments.piece(samples, 10, 40, 1.0, random.Random(0))
    assert len(audio) == SAMPLE_RATE
    assert np.count_nonzero(audio) == 30 * cut_segments.WINDOW - 2  # faded ends touch zero


def test_cut_segments_writes_pieces_that_hold_their_words(tmp_path: Path) -> None:
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
    bundle = load_model()
    wins = 0
    singles = [r for r in pieces if len(r["text"].split()) == 1]
    for row in pieces:
        assert row["audio"].startswith("cut_")  # cut_SUBSET/ folders
        audio, rate = sf.read(out / row["audio"])
        assert rate == SAMPLE_RATE and len(audio) >= SAMPLE_RATE
        assert row["duration"] == pytest.approx(len(audio) / rate, abs=1e-3)
    for row in singles:
        # A piece holds its own word: the model finds it likelier than its sentence's others.
        logprobs = compute_logprobs(load_audio(out / row["audio"]), bundle)
        sentence = next(t for t in texts if row["text"] in t.split())
        others = {w for w in sentence.split() if w != row["text"]}
        own = alignment_score(logprobs, row["text"], bundle.vocabulary)
        wins += all(own > alignment_score(logprobs, w, bundle.vocabulary) for w in others)
    assert wins >= len(singles) - 1, f"{wins} of {len(singles)} pieces hold their word"
    # An impossible score threshold skips every utterance.
    done = subprocess.run([*command, "--min-score", "0.5"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "0 pieces" in done.stdout and "2 skipped" in done.stdout
