"""Cut single words and short phrases out of real training sentences, as new utterances.

The real training set is almost all read sentences, while many users say one word or
a short command (the speech_commands subset of real/dev and real/test). This tool
turns sentences into isolated words and 2-4 word phrases spoken by the same real
voices: it force-aligns each transcript with a CTC model (``asr.align``), cuts the audio
in the quiet part of the gap between neighbouring words, pads each piece with silence
to at least ``--min-seconds`` (the training augmentation adds the noise floor) and
writes FLAC files plus a manifest in the shared format.

Alignment quality: utterances whose transcript the model finds unlikely (CTC
log-likelihood per character below ``--min-score``) are skipped, and so are words whose
characters' mean posterior is below ``--min-word-score``. The model's spikes trail the
sound by a lag measured on the first utterances (median of first spike minus speech
onset), which is subtracted before cutting.

Use it on training data only (never dev or test):

    python tools/cut_segments.py --manifest ../shared/data/real/train/manifest.jsonl \
        --out data/cuts --skip-subset fsdd --skip-subset speech_commands
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.align import AlignedWord, AlignmentError, align_words, alignment_score
from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.checkpoint import Bundle, load_model
from asr.data import Utterance, read_manifest
from asr.streaming import compute_logprobs

WINDOW = SAMPLE_RATE // 100  # 10 ms energy frames


def frame_energy(samples: np.ndarray) -> np.ndarray:
    """Mean square of each 10 ms frame of ``samples`` ``(n,)`` -> ``(n // 160,)``."""
    n = len(samples) // WINDOW
    frames = samples[: n * WINDOW].reshape(n, WINDOW).astype(np.float64)
    return (frames**2).mean(axis=1)


def speech_onset(energy: np.ndarray) -> int | None:
    """First 10 ms frame within 30 dB of the loudest one; None for silence."""
    if not len(energy) or energy.max() <= 0:
        return None
    above = np.nonzero(energy > energy.max() * 1e-3)[0]
    return int(above[0]) if len(above) else None


def quiet_span(energy: np.ndarray, begin: int, end: int) -> tuple[int, int]:
    """First and last 10 ms frame in ``[begin, end)`` within 6 dB of the quietest one there."""
    begin, end = max(0, begin), min(len(energy), end)
    if end <= begin:
        point = min(max(begin, 0), len(energy))
        return point, point
    quiet = np.nonzero(energy[begin:end] <= energy[begin:end].min() * 4)[0]
    return begin + int(quiet[0]), begin + int(quiet[-1]) + 1


def cut_points(
    words: list[AlignedWord], energy: np.ndarray, frame_ms: int, lag_ms: int
) -> tuple[list[int], list[int]]:
    """Where each word's piece may start and end (10 ms frame indices), one pair per word.

    Between two words lies a gap: from the end of one word's spikes to the start of the
    next's, both moved back by the lag. Its quiet part (within 6 dB of its quietest
    frame) ends the first word at its last quiet frame and starts the second at its first,
    so a pause stays with both and a soft onset (a fricative) is not cut off. Before the
    first and after the last word the gap is 300 ms wide.
    """
    step, shift = frame_ms // 10, lag_ms // 10
    starts = [w.start * step - shift for w in words]
    ends = [w.end * step - shift for w in words]
    gaps = [(starts[0] - 30, starts[0] + 1)]
    gaps += [
        (end, start + 1) if start > end else ((end + start) // 2, (end + start) // 2 + 1)
        for end, start in zip(ends, starts[1:], strict=False)
    ]
    gaps.append((ends[-1], ends[-1] + 30))
    spans = [quiet_span(energy, a, b) for a, b in gaps]
    begin = [spans[i][0] for i in range(len(words))]
    finish = [max(spans[i + 1][1], begin[i] + 1) for i in range(len(words))]
    return begin, finish


def measure_lag(items: list[tuple[np.ndarray, list[AlignedWord]]], frame_ms: int) -> int:
    """Median milliseconds from speech onset to the first character's spike."""
    lags = []
    for samples, words in items:
        onset = speech_onset(frame_energy(samples))
        if onset is not None:
            lags.append(words[0].start * frame_ms - onset * 10)
    return int(statistics.median(lags)) if lags else 0


def choose(
    words: list[AlignedWord], rng: random.Random, n_words: int, n_phrases: int, min_score: float
) -> list[tuple[int, int]]:
    """Word ranges ``[i, j)`` to cut: single words and phrases of 2-4 well-aligned words."""
    good = [w.score >= min_score for w in words]
    singles = [i for i, ok in enumerate(good) if ok]
    ranges = [(i, i + 1) for i in rng.sample(singles, min(n_words, len(singles)))]
    for _ in range(n_phrases):
        length = rng.randint(2, 4)
        starts = [i for i in range(len(words) - length + 1) if all(good[i : i + length])]
        if starts:
            i = rng.choice(starts)
            ranges.append((i, i + length))
    return ranges


def piece(samples: np.ndarray, begin: int, end: int, min_seconds: float, rng: random.Random) -> np.ndarray:
    """Samples of 10 ms frames ``[begin, end)``, faded at the edges, padded with silence."""
    audio = samples[begin * WINDOW : end * WINDOW].astype(np.float32).copy()
    fade = min(80, len(audio) // 4)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        audio[:fade] *= ramp
        audio[-fade:] *= ramp[::-1]
    missing = max(0, int(min_seconds * SAMPLE_RATE) - len(audio))
    before = rng.randint(0, missing) if missing else 0
    return np.concatenate([np.zeros(before, np.float32), audio, np.zeros(missing - before, np.float32)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, help="training manifest (JSONL)")
    parser.add_argument("--out", required=True, help="output folder (audio/ and manifest.jsonl)")
    parser.add_argument("--model", default=None, help="CTC model that aligns (default: the bundled one)")
    parser.add_argument("--words", type=int, default=3, help="single words cut per utterance (default 3)")
    parser.add_argument("--phrases", type=int, default=1, help="2-4 word phrases per utterance (default 1)")
    parser.add_argument(
        "--min-score",
        type=float,
        default=-1.0,
        help="skip utterances below this CTC log-likelihood per character (default -1.0)",
    )
    parser.add_argument(
        "--min-word-score",
        type=float,
        default=0.3,
        help="skip words whose mean character posterior is below this (default 0.3)",
    )
    parser.add_argument(
        "--min-seconds", type=float, default=1.0, help="pad pieces with silence to this length (default 1.0)"
    )
    parser.add_argument(
        "--skip-subset", action="append", default=[], help="subset (first folder) to leave out; repeatable"
    )
    parser.add_argument("--limit", type=int, default=0, help="read at most this many utterances (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    bundle: Bundle = load_model(args.model)
    frame_ms = round(bundle.frame_seconds * 1000)
    utterances = [u for u in read_manifest(args.manifest) if u.subset not in args.skip_subset]
    if args.limit:
        utterances = utterances[: args.limit]
    out = Path(args.out)
    (out / "audio").mkdir(parents=True, exist_ok=True)

    aligned: list[tuple[Utterance, np.ndarray, list[AlignedWord]]] = []
    skipped = 0
    for u in utterances:
        try:
            samples = load_audio(u.audio)
            logprobs = compute_logprobs(samples, bundle)
            if alignment_score(logprobs, u.text, bundle.vocabulary) < args.min_score:
                skipped += 1
                continue
            aligned.append((u, samples, align_words(logprobs, u.text, bundle.vocabulary)))
        except (AudioError, AlignmentError) as e:
            print(f"skipped {u.audio}: {e}", file=sys.stderr)
            skipped += 1
    lag = measure_lag([(s, w) for _, s, w in aligned[:200]], frame_ms)

    rows, seconds = [], 0.0
    for u, samples, words in aligned:
        energy = frame_energy(samples)
        begin, finish = cut_points(words, energy, frame_ms, lag)
        for i, j in choose(words, rng, args.words, args.phrases, args.min_word_score):
            audio = piece(samples, begin[i], finish[j - 1], args.min_seconds, rng)
            name = f"audio/{len(rows):06d}.flac"
            sf.write(out / name, audio, SAMPLE_RATE, subtype="PCM_16")
            text = " ".join(w.word for w in words[i:j])
            duration = len(audio) / SAMPLE_RATE
            seconds += duration
            rows.append(
                {
                    "audio": name,
                    "text": text,
                    "duration": round(duration, 3),
                    "speaker": u.speaker,
                    "source": f"cut:{u.subset}",
                }
            )
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    print(
        f"{len(rows)} pieces ({seconds / 3600:.2f} h) from {len(aligned)} utterances "
        f"({skipped} skipped); spike lag {lag} ms; wrote {out / 'manifest.jsonl'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
