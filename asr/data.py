"""Manifests, the duration-bucketing batch sampler and batch collation for training.

A manifest is JSON Lines, one utterance a line:
``{"audio": "path relative to the manifest", "text": "...", "duration": seconds, ...}``
with optional ``speaker``, ``source`` and ``license`` fields.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import soundfile
import torch
from torch import Tensor

from asr.audio import AudioError, load_audio
from asr.features import FeatureConfig, log_mel
from asr.text import Vocabulary, normalize


class ManifestError(Exception):
    """A manifest that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Utterance:
    audio: str
    text: str
    duration: float
    speaker: str = ""
    subset: str = ""


def read_manifest(path: str | os.PathLike[str], weight: int = 1) -> list[Utterance]:
    """Read a JSONL manifest; audio paths become absolute, texts are normalised.

    A line without ``duration`` gets it from the audio file's header (0.0 when the file
    cannot be read: the reader of the audio reports it, one file at a time).

    ``subset`` is the first folder of the audio path (``cathy/a.opus`` -> ``cathy``), or
    for an absolute path or one that starts with ``..``, the folder holding the file.
    ``weight`` repeats every utterance that many times (to up-weight a corpus).
    """
    path = os.fspath(path)
    root = os.path.dirname(os.path.abspath(path))
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict) or not isinstance(row.get("audio"), str):
                        raise ValueError('each line needs an "audio" path')
                    audio = row["audio"]
                    full = os.path.normpath(audio if os.path.isabs(audio) else os.path.join(root, audio))
                    duration = row.get("duration")
                    rows.append(
                        Utterance(
                            audio=full,
                            text=normalize(row.get("text", "")),
                            duration=_header_duration(full) if duration is None else float(duration),
                            speaker=str(row.get("speaker", "")),
                            subset=_subset(audio, full),
                        )
                    )
                except (json.JSONDecodeError, TypeError, ValueError) as e:
                    raise ManifestError(f"{path}:{number}: bad manifest line ({e})") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read manifest ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not a text (UTF-8 JSON Lines) manifest") from None
    return rows * weight


def _header_duration(audio: str) -> float:
    """Seconds of audio in a file, from its header (for manifest lines without a duration)."""
    try:
        info = soundfile.info(audio)
    except (OSError, RuntimeError):
        # load_audio opens files with the same libsndfile, so it cannot do better here;
        # it reports the file when the audio is read (eval goes on with the others).
        return 0.0
    return info.frames / info.samplerate


def _subset(audio: str, full: str) -> str:
    """The first folder of a relative audio path inside the manifest's folder; for an
    absolute path, or one that leaves that folder (``../x/a.wav``), the folder holding
    the file (``full``: its normalised absolute path)."""
    path = os.path.normpath(audio)
    if os.path.isabs(path) or path.split(os.sep, 1)[0] == os.pardir:
        return os.path.basename(os.path.dirname(full))
    return path.split(os.sep, 1)[0] if os.sep in path else ""


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of utterances of similar duration, each up to ``batch_seconds`` of audio.

    The first epoch goes shortest batch first (CTC leaves its blank plateau faster on
    short utterances); later epochs shuffle the batches. The order depends only on the
    seed and the epoch, so ``start_batch`` resumes exactly where a run stopped.
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_seconds: float,
        seed: int = 0,
        max_batch: int = 256,
        sorted_first_epoch: bool = True,
    ) -> None:
        self.durations = list(durations)
        self.batch_seconds = batch_seconds
        self.seed = seed
        self.max_batch = max_batch
        self.sorted_first_epoch = sorted_first_epoch
        self.epoch = 0
        self.start_batch = 0

    def batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + epoch)
        # Jitter the sort so that batches differ from epoch to epoch.
        keys = [d * rng.uniform(0.9, 1.1) for d in self.durations]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0.0
        for i in order:
            longest_if_added = max(longest, self.durations[i])
            if current and (
                longest_if_added * (len(current) + 1) > self.batch_seconds or len(current) >= self.max_batch
            ):
                batches.append(current)
                current, longest_if_added = [], self.durations[i]
            current.append(i)
            longest = longest_if_added
        if current:
            batches.append(current)
        if not (epoch == 0 and self.sorted_first_epoch):
            rng.shuffle(batches)
        return batches

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.start_batch :]

    def __len__(self) -> int:
        return len(self.batches(self.epoch)) - self.start_batch


@dataclass
class Batch:
    """``feats`` ``(batch, frames, n_mels)``, ``feat_lengths`` ``(batch,)``, ``targets``
    ``(batch, max_chars)`` padded with 0, ``target_lengths`` ``(batch,)``."""

    feats: Tensor
    feat_lengths: Tensor
    targets: Tensor
    target_lengths: Tensor
    texts: list[str]
    seconds: float


class SpeechDataset(torch.utils.data.Dataset):
    """Loads, optionally augments and featurises one utterance at a time.

    A file that fails to load is replaced by a moment of silence with an empty transcript
    and a warning is printed, so one bad file does not stop a long run.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        vocabulary: Vocabulary,
        features: FeatureConfig = FeatureConfig(),
        augment: object | None = None,
    ) -> None:
        self.utterances = list(utterances)
        self.vocabulary = vocabulary
        self.features = features
        self.augment = augment

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> tuple[Tensor, list[int], str]:
        utt = self.utterances[index]
        try:
            audio = load_audio(utt.audio, self.features.sample_rate)
            text = utt.text
        except AudioError as e:
            print(f"warning: {e}; skipped", flush=True)
            audio, text = np.zeros(self.features.hop_length * 4, np.float32), ""
        if self.augment is not None:
            audio = self.augment(audio)  # type: ignore[operator]
        feats = log_mel(audio, self.features)
        warp = getattr(self.augment, "warp_features", None)
        if warp is not None:
            feats = warp(feats, self.features)
        return feats, self.vocabulary.encode(text), text


def collate(items: Sequence[tuple[Tensor, list[int], str]], hop_seconds: float = 0.01) -> Batch:
    """Pad a list of ``(frames, n_mels)`` features and token lists into a Batch."""
    feats = torch.nn.utils.rnn.pad_sequence([f for f, _, _ in items], batch_first=True)
    feat_lengths = torch.tensor([f.shape[0] for f, _, _ in items])
    longest = max(1, max(len(t) for _, t, _ in items))
    targets = torch.zeros(len(items), longest, dtype=torch.long)
    for i, (_, tokens, _) in enumerate(items):
        targets[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    target_lengths = torch.tensor([len(t) for _, t, _ in items])
    seconds = float(feat_lengths.sum()) * hop_seconds
    return Batch(feats, feat_lengths, targets, target_lengths, [t for _, _, t in items], seconds)


def feature_statistics(dataset: SpeechDataset, max_items: int = 500, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Per-bin mean and standard deviation ``(n_mels,)`` over a random sample of the data."""
    rng = random.Random(seed)
    indices = rng.sample(range(len(dataset)), min(max_items, len(dataset)))
    total = torch.zeros(dataset.features.n_mels, dtype=torch.float64)
    square = torch.zeros_like(total)
    count = 0
    for i in indices:
        feats = dataset[i][0].to(torch.float64)
        total += feats.sum(0)
        square += feats.square().sum(0)
        count += feats.shape[0]
    mean = total / max(count, 1)
    std = torch.sqrt(torch.clamp(square / max(count, 1) - mean.square(), min=0.0))
    return mean.float(), std.float()


def total_hours(utterances: Sequence[Utterance]) -> float:
    return math.fsum(u.duration for u in utterances) / 3600
