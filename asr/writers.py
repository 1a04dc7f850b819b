"""Transcript writers: txt, json, srt and vtt, picked by format name."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from asr.decoding import Word

#: A subtitle cue ends at a pause this long, or when it reaches these limits.
CUE_PAUSE = 0.8
CUE_MAX_SECONDS = 6.0
CUE_MAX_CHARS = 42


@dataclass(frozen=True)
class Transcript:
    """What the writers need: the input's name, its text, its words and its duration."""

    audio: str
    text: str
    words: Sequence[Word]
    duration: float
    nbest: Sequence[tuple[str, float]] = ()


def cues(words: Sequence[Word]) -> list[tuple[float, float, str]]:
    """Group words into subtitle cues ``(start, end, text)``."""
    out: list[tuple[float, float, str]] = []
    current: list[Word] = []
    for word in words:
        if current:
            text = " ".join(w.word for w in [*current, word])
            if (
                word.start - current[-1].end >= CUE_PAUSE
                or word.end - current[0].start > CUE_MAX_SECONDS
                or len(text) > CUE_MAX_CHARS
            ):
                out.append((current[0].start, current[-1].end, " ".join(w.word for w in current)))
                current = []
        current.append(word)
    if current:
        out.append((current[0].start, current[-1].end, " ".join(w.word for w in current)))
    return out


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
        for i, (start, end, text) in enumerate(cues(t.words), 1)
    ]
    return "\n".join(blocks)


def write_vtt(t: Transcript) -> str:
    blocks = [f"{timestamp(start)} --> {timestamp(end)}\n{text}\n" for start, end, text in cues(t.words)]
    return "WEBVTT\n\n" + "\n".join(blocks)


WRITERS: dict[str, Callable[[Transcript], str]] = {
    "txt": write_txt,
    "json": write_json,
    "srt": write_srt,
    "vtt": write_vtt,
}
