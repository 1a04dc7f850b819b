"""Accuracy on a manifest: WER and CER through jiwer after the shared normaliser."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jiwer

from asr.audio import AudioError
from asr.checkpoint import Bundle
from asr.data import Utterance
from asr.decoding import DEFAULT_BEAM_SIZE
from asr.streaming import transcribe
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
    """Score normalised hypotheses against normalised references (empty refs are skipped)."""
    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps, strict=False)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return Scores(0, 0.0, 0.0, 0, 0, 0, 0)
    r, h = [p[0] for p in pairs], [p[1] for p in pairs]
    words = jiwer.process_words(r, h)
    return Scores(
        utterances=len(pairs),
        wer=words.wer,
        cer=jiwer.cer(r, h),
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        reference_words=sum(len(x.split()) for x in r),
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

    @property
    def rtf(self) -> float:
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def worst(self, n: int = 5) -> list[dict]:
        """The ``n`` utterances with the most word errors, each with its alignment text."""
        scored = []
        for row in self.rows:
            if not row["ref"]:
                continue
            out = jiwer.process_words(row["ref"], row["hyp"] or "")
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
    decoder: str = "greedy",
    beam_size: int = DEFAULT_BEAM_SIZE,
) -> Report:
    """Transcribe every utterance and score it, overall, by subset and by speaker."""
    rows, failed = [], []
    audio_seconds = compute_seconds = 0.0
    for utt in utterances:
        began = time.perf_counter()
        try:
            result = transcribe(utt.audio, bundle, decoder=decoder, beam_size=beam_size)
        except AudioError as e:
            failed.append(utt.audio)
            on_error(str(e))
            continue
        compute_seconds += time.perf_counter() - began
        audio_seconds += result.duration
        rows.append(
            {
                "audio": utt.audio,
                "subset": utt.subset,
                "speaker": utt.speaker,
                "ref": utt.text,
                "hyp": result.text,
            }
        )
    overall = score([r["ref"] for r in rows], [r["hyp"] for r in rows])
    return Report(
        overall,
        group_scores(rows, "subset"),
        group_scores(rows, "speaker"),
        rows,
        failed,
        audio_seconds,
        compute_seconds,
    )


def _alignment(out: jiwer.WordOutput) -> str:
    """jiwer's REF/HYP alignment of one sentence, without its sentence header."""
    text = jiwer.visualize_alignment(out, show_measures=False)
    return "\n".join(line for line in text.splitlines() if line.strip() and not line.startswith("=== "))
