"""Accuracy on a manifest: WER and CER through jiwer after the shared normaliser."""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jiwer
import numpy as np

from asr.audio import AudioError, load_audio
from asr.checkpoint import Bundle
from asr.data import Utterance
from asr.streaming import DecoderOptions, Recognizer, Result, make_decoder, transcribe
from asr.text import normalize


@dataclass(frozen=True)
class Scores:
    """Word and character error rates with the word-level edit counts behind them."""

    utterances: int
    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int


def score(refs: Sequence[str], hyps: Sequence[str]) -> Scores:
    """Score hypotheses against references (both normalised here).

    An empty reference expects silence: every word said there is an insertion. Where
    there are no reference words at all, WER and CER are ``inf`` if anything was said
    and 0 if not.
    """
    r = [normalize(x) for x in refs]
    h = [normalize(x) for x in hyps[: len(r)]]
    if not r:
        return Scores(0, 0.0, 0.0, 0, 0, 0, 0)
    words = jiwer.process_words(r, h)
    chars = jiwer.process_characters(r, h)
    n_words = words.substitutions + words.deletions + words.hits
    n_chars = chars.substitutions + chars.deletions + chars.hits
    word_errors = words.substitutions + words.deletions + words.insertions
    char_errors = chars.substitutions + chars.deletions + chars.insertions
    return Scores(
        utterances=len(r),
        wer=word_errors / n_words if n_words else (math.inf if word_errors else 0.0),
        cer=char_errors / n_chars if n_chars else (math.inf if char_errors else 0.0),
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        reference_words=n_words,
    )


@dataclass
class Report:
    """Scores overall, by subset (first folder of the audio path) and by speaker."""

    overall: Scores
    subsets: dict[str, Scores]
    speakers: dict[str, Scores] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    compute_seconds: float = 0.0
    streams: dict[str, float] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rtf(self) -> float:
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def worst(self, n: int = 5) -> list[dict]:
        """The ``n`` utterances with the most word errors, each with its alignment text."""
        scored = []
        for row in self.rows:
            if not (row["ref"] or row["hyp"]):
                continue
            out = jiwer.process_words(row["ref"], row["hyp"])
            errors = out.substitutions + out.deletions + out.insertions
            scored.append((errors, row, out))
        scored.sort(key=lambda x: -x[0])
        return [
            {
                **row,
                "errors": errors,
                "alignment": _alignment(out),
            }
            for errors, row, out in scored[:n]
            if errors
        ]


def group_scores(rows: Sequence[dict], key: str) -> dict[str, Scores]:
    """Scores of the rows grouped by ``row[key]``."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return {name: score([r["ref"] for r in g], [r["hyp"] for r in g]) for name, g in sorted(groups.items())}


def evaluate_manifest(
    utterances: Sequence[Utterance],
    bundle: Bundle,
    on_error: Callable[[str], None] = lambda message: None,
    decoder: str | DecoderOptions | None = None,
    stream_chunk: float = 0.0,
) -> Report:
    """Transcribe every utterance and score it, overall, by subset and by speaker.

    ``decoder`` as in ``transcribe`` (None: the model's recommendation).

    ``stream_chunk`` > 0 runs each utterance through a Stream in chunks of that many
    seconds instead; the report then carries ``streams`` figures, and the text scored is
    the stream's finals.
    """
    rows, failed, traces = [], [], []
    audio_seconds = compute_seconds = 0.0
    recognizer = Recognizer(bundle, decoder=decoder) if stream_chunk else None
    if recognizer is None:
        make_decoder(bundle, decoder)  # reads the LM once, before the clock runs
    for utt in utterances:
        began = time.perf_counter()
        try:
            if recognizer is not None:
                trace = trace_stream(load_audio(utt.audio, recognizer.sample_rate), recognizer, stream_chunk)
                traces.append(trace)
                result = Result(" ".join(r.text for r in trace.finals), duration=trace.audio_seconds)
            else:
                result = transcribe(utt.audio, bundle, decoder=decoder)
        except AudioError as e:
            failed.append(utt.audio)
            on_error(str(e))
            continue
        compute_seconds += time.perf_counter() - began
        audio_seconds += result.duration
        row = {"audio": utt.audio, "subset": utt.subset, "speaker": utt.speaker, "ref": utt.text}
        rows.append({**row, "hyp": result.text})
    overall = score([r["ref"] for r in rows], [r["hyp"] for r in rows])
    subsets, speakers = group_scores(rows, "subset"), group_scores(rows, "speaker")
    report = Report(overall, subsets, speakers, rows, failed, audio_seconds, compute_seconds)
    if traces:
        report.streams = summarize_streams(traces)
        figures = [stream_figures(t) for t in traces]
        report.latencies = {
            "word seen": [x for f in figures for x in f.first_seen],
            "word committed": [x for f in figures for x in f.committed],
        }
    return report


def summarize_streams(traces: Sequence[StreamTrace]) -> dict[str, float]:
    """Median and 90th-percentile latencies, stability and RTF over many traced streams."""
    figures = [stream_figures(t) for t in traces]
    first = [x for f in figures for x in f.first_seen]
    done = [x for f in figures for x in f.committed]
    shown = sum(f.shown_words for f in figures)
    return {
        "first_seen_median": percentile(first, 50),
        "first_seen_p90": percentile(first, 90),
        "committed_median": percentile(done, 50),
        "committed_p90": percentile(done, 90),
        "partial_changed": sum(f.changed for f in figures) / shown if shown else 0.0,
        "committed_changed": float(sum(f.committed_changed for f in figures)),
        "rtf": sum(t.compute_seconds for t in traces) / max(1e-9, sum(t.audio_seconds for t in traces)),
    }


def _alignment(out: jiwer.WordOutput) -> str:
    """jiwer's REF/HYP alignment of one sentence, without its sentence header."""
    text = jiwer.visualize_alignment(out, show_measures=False)
    return "\n".join(line for line in text.splitlines() if line.strip() and not line.startswith("=== "))


@dataclass
class StreamTrace:
    """What a stream showed, and when: ``(audio seconds fed, Result)`` per event, the
    finals, and the compute time spent."""

    shown: list[tuple[float, Result]] = field(default_factory=list)
    finals: list[Result] = field(default_factory=list)
    audio_seconds: float = 0.0
    compute_seconds: float = 0.0


def trace_stream(audio: np.ndarray, recognizer: Recognizer, chunk_seconds: float) -> StreamTrace:
    """Feed ``(samples,)`` 16 kHz audio in chunks as fast as possible, recording every event
    with the amount of audio fed when it came out."""
    trace = StreamTrace()
    stream = recognizer.stream()
    rate = recognizer.sample_rate
    step = max(1, int(rate * chunk_seconds))
    began = time.perf_counter()
    for start in range(0, len(audio), step):
        fed = min(len(audio), start + step) / rate
        for event in stream.accept_waveform(audio[start : start + step], rate):
            trace.shown.append((fed, event.result))
            if event.kind == "final":
                trace.finals.append(event.result)
    last = stream.finish()
    trace.compute_seconds = time.perf_counter() - began
    trace.audio_seconds = len(audio) / rate
    if last.text:
        trace.shown.append((trace.audio_seconds, last))
        trace.finals.append(last)
    return trace


@dataclass(frozen=True)
class StreamFigures:
    """Per-word latencies (seconds) and partial stability of one or more streams.

    ``first_seen``: from a word's end in the audio (its final alignment) to the first
    event showing it at its place; ``committed``: to the first event where it is
    committed. ``changed``: displayed words (position, text) that a later event of the
    same utterance showed differently; ``committed_changed``: the same for committed
    words, which must be 0.
    """

    first_seen: list[float]
    committed: list[float]
    shown_words: int
    changed: int
    committed_changed: int


def stream_figures(trace: StreamTrace) -> StreamFigures:
    """Latency and stability figures of a traced stream."""
    first_seen: list[float] = []
    committed: list[float] = []
    shown = changed = committed_changed = 0
    for final in trace.finals:
        events = [(t, r) for t, r in trace.shown if r.start == final.start]
        for i, word in enumerate(final.words):
            seen = [t for t, r in events if len(r.words) > i and r.words[i].word == word.word]
            done = [
                t for t, r in events if len(r.committed.split()) > i and r.committed.split()[i] == word.word
            ]
            if seen:
                first_seen.append(max(0.0, seen[0] - word.end))
            if done:
                committed.append(max(0.0, done[0] - word.end))
        for (_, before), (_, after) in itertools.pairwise(events):
            now = [w.word for w in after.words]
            for j, w in enumerate(before.words):
                shown += 1
                if j >= len(now) or now[j] != w.word:
                    changed += 1
            kept = before.committed.split()
            if after.committed.split()[: len(kept)] != kept:
                committed_changed += 1
    return StreamFigures(first_seen, committed, shown, changed, committed_changed)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    return float(np.percentile(values, q)) if values else float("nan")
