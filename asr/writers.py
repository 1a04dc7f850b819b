"""Transcript writers: txt, json, srt and vtt, picked by format name."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from asr.decoding import Word

#: A subtitle cue ends at a pause this long, or when it reaches these limits: at most
#: two lines of CUE_LINE_CHARS characters (broken where the lines come out most even).
CUE_PAUSE = 0.8
CUE_MAX_SECONDS = 6.0
CUE_LINE_CHARS = 42
#: A cue stays up at least this long (a word said in 0.1 s cannot be read in 0.1 s),
#: unless the next cue starts sooner; it then ends CUE_GAP before that one.
CUE_MIN_SECONDS = 1.0
CUE_GAP = 0.04


@dataclass(frozen=True)
class Transcript:
    """What the writers need: the input's name, its text, its words and its duration."""

    audio: str
    text: str
    words: Sequence[Word]
    duration: float
    nbest: Sequence[tuple[str, float]] = ()


def cues(words: Sequence[Word], duration: float | None = None) -> list[tuple[float, float, str]]:
    """Group words into subtitle cues ``(start, end, text)``; ``text`` has one or two
    lines joined by a newline. Cues last at least CUE_MIN_SECONDS where the next cue (and
    the audio's ``duration``, when given) leave room."""
    groups: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current and (
            word.start - current[-1].end >= CUE_PAUSE
            or word.end - current[0].start > CUE_MAX_SECONDS
            or _lines([w.word for w in [*current, word]]) is None
        ):
            groups.append(current)
            current = []
        current.append(word)
    if current:
        groups.append(current)
    out = []
    for i, group in enumerate(groups):
        start, end = group[0].start, group[-1].end
        limit = groups[i + 1][0].start - CUE_GAP if i + 1 < len(groups) else duration
        shown = start + CUE_MIN_SECONDS if limit is None else min(start + CUE_MIN_SECONDS, limit)
        lines = _lines([w.word for w in group]) or [" ".join(w.word for w in group)]  # one over-long word
        end = max(end, shown)
        if duration is not None:  # a word cut off by the end of the audio ends with it
            end = max(start, min(end, duration))
        out.append((start, end, "\n".join(lines)))
    return out


def _lines(words: list[str]) -> list[str] | None:
    """``words`` as one line, or as two lines as even as possible, each at most
    CUE_LINE_CHARS long; None when they do not fit."""
    text = " ".join(words)
    if len(text) <= CUE_LINE_CHARS:
        return [text]
    best: list[str] | None = None
    for k in range(1, len(words)):
        first, second = " ".join(words[:k]), " ".join(words[k:])
        longest = max(len(first), len(second))
        if longest <= CUE_LINE_CHARS and (best is None or longest < max(map(len, best))):
            best = [first, second]
    return best


def timestamp(seconds: float, decimal: str = ".") -> str:
    """``HH:MM:SS.mmm`` (vtt) or ``HH:MM:SS,mmm`` (srt)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def write_txt(t: Transcript) -> str:
    return t.text + "\n"


def write_json(t: Transcript) -> str:
    return (
        json.dumps(
            {
                "audio": t.audio,
                "text": t.text,
                "words": [asdict(w) for w in t.words],  # word, start, end, confidence
                "duration": round(t.duration, 3),
                **({"nbest": [{"text": text, "posterior": p} for text, p in t.nbest]} if t.nbest else {}),
            }
        )
        + "\n"
    )


def write_srt(t: Transcript) -> str:
    blocks = [
        f"{i}\n{timestamp(start, ',')} --> {timestamp(end, ',')}\n{text}\n"
        for i, (start, end, text) in enumerate(cues(t.words, t.duration), 1)
    ]
    return "\n".join(blocks)


def write_vtt(t: Transcript) -> str:
    blocks = [
        f"{timestamp(start)} --> {timestamp(end)}\n{text}\n" for start, end, text in cues(t.words, t.duration)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


WRITERS: dict[str, Callable[[Transcript], str]] = {
    "txt": write_txt,
    "json": write_json,
    "srt": write_srt,
    "vtt": write_vtt,
}
