"""Training options for larger runs: mixed precision and gradient accumulation."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_resume import config, losses

from asr.checkpoint import load_model, safe_load
from asr.data import BucketBatchSampler, read_manifest
from asr.train import train


def test_bf16_autocast_trains(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "amp"
    train(replace(config(corpus, out), amp="bf16", augment=False, max_steps=8), log=lambda m: None)
    curve = list(losses(out).values())
    assert len(curve) == 8 and all(math.isfinite(v) for v in curve)
    assert curve[-1] < 0.6 * curve[0]
    weights = load_model(out / "best.pt").model.state_dict()
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())


def test_fp16_needs_a_gpu(corpus: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        train(replace(config(corpus, tmp_path), amp="fp16", device="cpu"), log=lambda m: None)


def test_accumulation_steps_every_n_batches_and_resumes(corpus: Path, tmp_path: Path) -> None:
    whole, pieces = tmp_path / "whole", tmp_path / "pieces"
    base = replace(config(corpus, whole), accumulate=2, max_steps=6)
    train(base, log=lambda m: None)
    reference = losses(whole)
    assert sorted(reference) == list(range(1, 7))
    train(replace(base, out=str(pieces), max_steps=3), log=lambda m: None)
    checkpoint = safe_load(pieces / "last.pt")
    assert checkpoint["step"] == 3
    # Two batches per step; an epoch's last group may be short (and is scaled up).
    durations = [u.duration for u in read_manifest(corpus, 2)]
    first_epoch = len(BucketBatchSampler(durations, base.batch_seconds, base.seed).batches(0))
    assert first_epoch >= 5
    assert (checkpoint["epoch"], checkpoint["batch"]) == (0, min(6, first_epoch))
    train(replace(base, out=str(pieces)), resume=True, log=lambda m: None)
    assert losses(pieces) == pytest.approx(reference, rel=1e-4)


def test_buckets_keep_padding_under_ten_percent() -> None:
    import random

    rng = random.Random(0)
    # Durations shaped like speech corpora: many 1-5 s clips, a long tail to 30 s.
    durations = [min(30.0, max(0.5, rng.lognormvariate(1.2, 0.7))) for _ in range(5000)]
    sampler = BucketBatchSampler(durations, 200.0, seed=1)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        assert sorted(i for b in batches for i in b) == list(range(len(durations)))
        padded = sum(max(durations[i] for i in b) * len(b) for b in batches)
        assert 1 - sum(durations) / padded < 0.10
