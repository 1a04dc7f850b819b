"""Corpus importers: LibriSpeech folders, Common Voice TSV files and generic CSV files
become JSONL manifests (audio path relative to the manifest, text, duration, speaker).

Durations come from each file's header. Audio that is missing or unreadable is skipped
with one line each on the ``on_error`` callback; the rest of the corpus is still written.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from asr.audio import AudioError, AudioReader


@dataclass(frozen=True)
class Entry:
    """One utterance found in a corpus: an audio path, its transcript and its speaker."""

    audio: str
    text: str
    speaker: str = ""
    source: str = ""


@dataclass(frozen=True)
class Written:
    """What an import wrote: utterances, their hours, and the audio files skipped."""

    path: str
    utterances: int
    hours: float
    skipped: int


def librispeech(folder: str | os.PathLike[str]) -> Iterator[Entry]:
    """Entries of a LibriSpeech-layout folder (``SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt``
    beside ``SPEAKER-CHAPTER-UTT.flac``); ``folder`` may hold one subset or several."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{folder}: " + ("not a folder" if root.exists() else "no such folder"))
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise ValueError(f"{folder}: no LibriSpeech transcripts (*.trans.txt) below this folder")
    return _librispeech(transcripts)


def _librispeech(transcripts: list[Path]) -> Iterator[Entry]:
    for trans in transcripts:
        try:
            lines = trans.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise ValueError(f"{trans}: not UTF-8 text") from None
        for line in lines:
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            audio = trans.parent / f"{utt_id}.flac"
            if not audio.exists() and audio.with_suffix(".wav").exists():
                audio = audio.with_suffix(".wav")
            yield Entry(str(audio), text, utt_id.split("-")[0], "librispeech")


def commonvoice(tsv: str | os.PathLike[str], clips: str | os.PathLike[str] | None = None) -> Iterator[Entry]:
    """Entries of a Common Voice TSV (``path``, ``sentence``, ``client_id`` columns); the
    audio is in ``clips`` (default: the ``clips`` folder beside the TSV)."""
    clips_dir = Path(clips) if clips else Path(tsv).parent / "clips"
    for row in _rows(tsv, "\t"):
        if "path" not in row or "sentence" not in row:
            raise ValueError(f"{tsv}: not a Common Voice TSV (it needs 'path' and 'sentence' columns)")
        yield Entry(str(clips_dir / row["path"]), row["sentence"], row.get("client_id", ""), "commonvoice")


def csv_corpus(
    path: str | os.PathLike[str],
    audio_column: str = "audio",
    text_column: str = "text",
    speaker_column: str = "speaker",
    root: str | os.PathLike[str] | None = None,
) -> Iterator[Entry]:
    """Entries of a CSV or TSV file with a header (the delimiter is detected); relative
    audio paths are taken from ``root`` (default: the file's folder)."""
    base = Path(root) if root else Path(path).parent
    try:
        with open(path, encoding="utf-8", newline="") as f:
            sample = f.read(4096)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        delimiter = ","
    for row in _rows(path, delimiter):
        if audio_column not in row or text_column not in row:
            raise ValueError(
                f"{path}: needs the columns {audio_column!r} and {text_column!r} "
                f"(it has {', '.join(row)}); name them with --audio-column and --text-column"
            )
        audio = Path(row[audio_column])
        yield Entry(
            str(audio if audio.is_absolute() else base / audio), row[text_column], row.get(speaker_column, "")
        )


def _rows(path: str | os.PathLike[str], delimiter: str) -> Iterator[dict[str, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(
                f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else 0
            ):
                yield {k: (v or "") for k, v in row.items() if k is not None}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None


def write_manifest(
    entries: Iterable[Entry], out: str | os.PathLike[str], on_error: Callable[[str], None] = lambda m: None
) -> Written:
    """Write a JSONL manifest (atomically) with each readable entry's duration."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.parent.resolve()
    tmp = out.with_name(out.name + ".tmp")
    try:
        count, seconds, skipped = _write(entries, tmp, base, on_error)
        if count == 0:
            # An empty manifest would only fail later, in training, far from the cause.
            raise ValueError(
                f"no usable utterances ({skipped} unreadable); {out} was not written"
                if skipped
                else f"the source lists no utterances; {out} was not written"
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return Written(str(out), count, seconds / 3600, skipped)


def _write(
    entries: Iterable[Entry], tmp: Path, base: Path, on_error: Callable[[str], None]
) -> tuple[int, float, int]:
    count, seconds, skipped = 0, 0.0, 0
    with open(tmp, "w", encoding="utf-8") as f:
        for entry in entries:
            try:
                reader = AudioReader(entry.audio)
            except AudioError as e:
                on_error(str(e))
                skipped += 1
                continue
            duration = reader.declared_frames / reader.sample_rate
            audio = Path(entry.audio).resolve()
            try:
                relative = os.path.relpath(audio, base)
            except ValueError:  # another drive on Windows
                relative = str(audio)
            row = {"audio": relative, "text": entry.text, "duration": round(duration, 3)}
            if entry.speaker:
                row["speaker"] = entry.speaker
            if entry.source:
                row["source"] = entry.source
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
            seconds += duration
    return count, seconds, skipped
