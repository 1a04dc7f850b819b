"""Training: CTC on bucketed batches, AdamW with warmup and cosine decay, atomic checkpoints.

Reads top to bottom: a config, the learning-rate function, the evaluation function,
then the loop. ``OUT/last.pt`` is the resumable checkpoint (weights, optimizer, step,
epoch, batch position and RNG states); ``OUT/best.pt`` is the model file with the lowest
dev CER; ``OUT/log.csv`` has one row per evaluation and ``OUT/steps.csv`` one per step.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import ctypes
import datetime
import glob
import itertools
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from asr.audio import HOP_LENGTH, SAMPLE_RATE
from asr.augment import AugmentConfig, WaveAugment, spec_augment
from asr.checkpoint import (
    Bundle,
    ModelFileError,
    atomic_save,
    bundle_from_dict,
    is_checkpoint,
    model_dict,
    safe_load,
    save_model,
)
from asr.data import (
    Batch,
    BucketBatchSampler,
    ManifestError,
    SpeechDataset,
    collate,
    feature_statistics,
    read_manifest,
    total_hours,
)
from asr.decoding import greedy_texts
from asr.evaluate import score
from asr.features import FeatureConfig
from asr.model import AcousticModel, ModelConfig
from asr.text import Vocabulary


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in each checkpoint."""

    train: list[str] = field(default_factory=list)  # manifests, "PATH" or "PATH:WEIGHT"
    dev: str = ""
    out: str = "runs/model"
    model: dict = field(default_factory=dict)  # ModelConfig overrides
    epochs: int = 30
    max_steps: int = 0  # stop after this many steps in total (0: no limit)
    max_minutes: float = 0.0  # stop (with a checkpoint) after this long in this process
    batch_seconds: float = 200.0
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 300
    weight_decay: float = 0.01
    clip: float = 5.0
    augment: bool = True
    # Shortest batches first in the first epoch: it gets CTC past its blank plateau from
    # random weights. A fine-tune (--init) gains nothing from it, and the sorted epoch ends
    # with only the longest utterances, so --shuffle-first-epoch turns it off.
    sorted_first_epoch: bool = True
    checkpoint_every: int = 200
    eval_every: int = 0  # also evaluate every N steps (0: only after each epoch)
    seed: int = 0
    workers: int = 1
    threads: int = 0  # torch threads (0: leave the default)
    device: str = "auto"
    init: str = ""  # start from this model file's weights instead of random ones
    amp: str = "off"  # mixed precision: "off", "bf16" (CPU or GPU) or "fp16" (GPU, loss scaling)
    accumulate: int = 1  # batches per optimizer step (gradient accumulation)
    # Decay of an exponential moving average of the weights (0: none). None: not given,
    # so a resumed run keeps its own setting; a value given on --resume replaces it.
    ema: float | None = None


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at ``total_steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped training; the step in flight finished and was checkpointed."""

    def __init__(self, step: int, path: str) -> None:
        super().__init__(f"interrupted at step {step}; saved {path}; run again with --resume to continue")
        self.step, self.path = step, path


class _StopRequests:
    """Turns SIGINT and SIGTERM into a flag the loop reads after each optimizer step, so
    an interrupted run keeps all its steps. A second SIGINT (Ctrl-C) stops at once; a
    SIGTERM after a request changes nothing (torchrun sends one to every worker right
    after the terminal's Ctrl-C, and must not cut the last checkpoint short)."""

    def __init__(self) -> None:
        self.requested = False
        self.armed = False  # set once the loop runs; before that a signal stops at once
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if not self.armed or (self.requested and signum == signal.SIGINT):
            raise KeyboardInterrupt
        if not self.requested and os.environ.get("RANK", "0") == "0":
            print(
                "\nasr: stopping after this step to save a checkpoint (Ctrl-C again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _ignore_stop_signals(worker_id: int) -> None:
    """A data-loading process ignores SIGTERM: systemd, SLURM's scancel or ``kill -- -PGID``
    send it to every process of the run, and a loader killed by it would crash the main
    process, which instead finishes its step, saves and then shuts its loaders down."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        # Ignoring SIGTERM also ignores the parent's terminate() of a loader stuck past its
        # shutdown timeout; dying with the parent keeps such a loader from being orphaned.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices and kernels; none on biases and norm gains.

    Decay pulls a LayerNorm gain towards 0 and a bias towards 0, which no one wants; the
    1-D parameters (``(features,)`` gains and biases) form the undecayed group.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def ctc_loss(logprobs: torch.Tensor, lengths: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean CTC loss per target character of ``(batch, frames, vocab)`` log-probs."""
    device = logprobs.device
    return torch.nn.functional.ctc_loss(
        logprobs.transpose(0, 1),
        batch.targets.to(device),
        lengths,
        batch.target_lengths.to(device),
        zero_infinity=True,
    )


def dev_batches_of(
    utterances: list, vocabulary: Vocabulary, features: FeatureConfig = FeatureConfig()
) -> list[Batch]:
    """Featurised dev batches of up to 300 s, shortest first, as ``evaluate`` takes them."""
    dataset = SpeechDataset(utterances, vocabulary, features)
    sampler = BucketBatchSampler([u.duration for u in utterances], 300.0, sorted_first_epoch=True)
    return [collate([dataset[i] for i in b]) for b in sampler.batches(0)]


@torch.no_grad()
def evaluate(
    model: AcousticModel, batches: list, vocabulary: Vocabulary, device: torch.device
) -> dict[str, float]:
    """Greedy CER and WER (``asr.evaluate.score``, as ``asr eval`` scores) and mean CTC
    loss over prepared dev batches."""
    was_training = model.training
    model.eval()
    refs, hyps, losses = [], [], []
    for batch in batches:
        logprobs, lengths, _ = model(batch.feats.to(device), batch.feat_lengths.to(device))
        losses.append(float(ctc_loss(logprobs, lengths, batch)))
        hyps += greedy_texts(logprobs.cpu(), lengths.cpu(), vocabulary)
        refs += batch.texts
    model.train(was_training)
    # The rule asr eval scores by: words said where a reference is empty are insertions.
    scores = score(refs, hyps)
    return {"dev_loss": sum(losses) / max(1, len(losses)), "dev_cer": scores.cer, "dev_wer": scores.wer}


class WeightAverage:
    """An exponential moving average of a model's weights (Polyak averaging).

    After each optimizer step the average moves ``1 - decay`` of the way to the live
    weights (less early on: the decay ramps up as ``(1 + n) / (10 + n)`` over the first
    updates, so a fresh average is not dominated by its starting point). Evaluating and
    shipping the average instead of the last weights smooths out the noise of the final
    steps, which matters most on small, noisy data.
    """

    def __init__(self, model: AcousticModel, decay: float) -> None:
        self.check(decay)
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @staticmethod
    def check(decay: float) -> None:
        """Raise ValueError unless 0 < ``decay`` < 1."""
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema: the decay must be between 0 and 1, got {decay}")

    @torch.no_grad()
    def update(self, model: AcousticModel) -> None:
        """Move the average towards ``model``'s weights; buffers (normalisation) are copied."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for mine, theirs in zip(self.model.parameters(), model.parameters(), strict=True):
            mine.lerp_(theirs, 1.0 - decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


def apply_model_overrides(model: AcousticModel, overrides: dict[str, Any], source: str) -> None:
    """Apply the model flags given with ``--init`` or ``--resume`` to ``model`` loaded from
    ``source``: a new dropout rate is set in place (it changes no weight); a flag that would
    change the weights' shape raises ValueError instead of being silently ignored."""
    current = model.config.to_dict()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key, value in overrides.items():
        if key == "dropout" or current.get(key) == value:
            continue
        flag = "--" + key.replace("_", "-")
        raise ValueError(
            f"{flag} {value}: {source} has {key} = {current.get(key)}; a fine-tune or a resumed "
            "run keeps the model's shape (only --dropout can change; tools/grow_model.py adds layers)"
        )
    if "dropout" in overrides and overrides["dropout"] != model.config.dropout:
        rate = float(overrides["dropout"])
        model.config = replace(model.config, dropout=rate)  # validated and saved with the model
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = rate


def _manifests(specs: list[str]) -> list:
    utterances = []
    for spec in specs:
        path, _, weight = spec.rpartition(":")
        if not weight.isdigit() or not path:
            path, weight = spec, "1"
        if int(weight) < 1:
            raise ManifestError(f"{spec}: the weight after ':' repeats the manifest, so it must be 1 or more")
        rows = read_manifest(path, int(weight))
        # A line without a duration whose audio could not be read has duration 0.
        readable = [u for u in rows if u.duration > 0]
        if not readable:
            raise ManifestError(f"{path}: no utterance with readable audio")
        if len(readable) < len(rows):
            bad = next(u.audio for u in rows if u.duration <= 0)
            print(
                f"warning: {path}: {len(rows) - len(readable)} unreadable audio files skipped (first: {bad})"
            )
        # Each distinct line once (a weight repeats them), for the checks and the counts.
        distinct = list({(u.audio, u.text): u for u in readable}.values())
        unfit = {(u.audio, u.text) for u in distinct if not _fits(u)}
        for message in _unteachable(distinct, unfit, path):
            print(f"warning: {message}")
        fitting = [u for u in readable if (u.audio, u.text) not in unfit]
        if not fitting:
            raise ManifestError(f"{path}: no utterance whose text fits its audio")
        utterances += fitting
    return utterances


def _fits(utt) -> bool:
    """Whether CTC can align the text to the audio at all: each character needs an output
    frame (40 ms), and a doubled letter a blank frame between its two."""
    text = utt.text
    needed = len(text) + sum(1 for a, b in itertools.pairwise(text) if a == b)
    feature_frames = 1 + int(utt.duration * SAMPLE_RATE) // HOP_LENGTH
    return needed <= -(-feature_frames // 4)  # the model's output frames: ceil(frames / 4)


def _unteachable(utterances: list, unfit: set, path: str) -> list[str]:
    """Warnings for utterances that cannot teach what their manifest means them to;
    ``unfit`` holds the (audio, text) of those whose text cannot fit the audio."""
    messages = []
    long = [u for u in utterances if (u.audio, u.text) in unfit]
    if long:
        messages.append(
            f"{path}: {len(long)} utterances have more text than their audio can hold "
            f"(a character per 40 ms) and are skipped (first: {long[0].audio}); wrong transcript or audio?"
        )
    empty = [u for u in utterances if not u.text]
    if empty:
        messages.append(
            f'{path}: {len(empty)} utterances have no text after normalising (a missing or empty "text", '
            f"or no English letters; first: {empty[0].audio}): they teach the model to say nothing there"
        )
    return messages


class _AugmentedDataset(SpeechDataset):
    """Reseeds the waveform augmentation per (epoch, item), so a resumed run repeats."""

    def __init__(self, *args, seed: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.epoch = 0
        self.seed = seed

    def __getitem__(self, index: int):
        if isinstance(self.augment, WaveAugment):
            self.augment.reseed(hash((self.seed, self.epoch, index)) & 0xFFFFFFFF)
        return super().__getitem__(index)


class _TrainStep(torch.nn.Module):
    """What one training forward pass runs (standardise, SpecAugment, the model), as one
    module, so that DistributedDataParallel can wrap it and average the gradients."""

    def __init__(self, model: AcousticModel, augment: bool) -> None:
        super().__init__()
        self.model = model
        self.augment = augment

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.model.normalize(feats)
        if self.augment:
            x = spec_augment(x, lengths)
        logprobs, out_lengths, _ = self.model.forward_normalized(x, lengths)
        return logprobs, out_lengths


class _RankBatches(torch.utils.data.Sampler[list[int]]):
    """This rank's share of each global batch (every ``world``-th utterance), so that all
    ranks walk the same duration buckets in the same order and resume at the same batch."""

    def __init__(self, sampler: BucketBatchSampler, rank: int, world: int) -> None:
        self.sampler, self.rank, self.world = sampler, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.sampler:
            yield batch[self.rank :: self.world] or batch[:1]

    def __len__(self) -> int:
        return len(self.sampler)


def _init_distributed(config: TrainConfig) -> tuple[int, int, torch.device | None]:
    """(rank, world size, device) under torchrun; (0, 1, None) in a plain process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    cuda = torch.cuda.is_available() and config.device in ("auto", "cuda")
    # Rank 0 evaluates while the others wait in the next collective: allow for a long dev set.
    torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
    device = None
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return torch.distributed.get_rank(), world, device


def _check_replicas(model: torch.nn.Module, world: int) -> None:
    """Raise unless every rank holds bit-identical weights."""
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    digest = torch.stack([flat.sum(), (flat * torch.arange(1, flat.numel() + 1, dtype=flat.dtype)).sum()])
    gathered = [torch.zeros_like(digest) for _ in range(world)]
    torch.distributed.all_gather(gathered, digest.cpu() if digest.device.type == "cpu" else digest)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError("the ranks' weights differ after training")


def _tensorboard(out: str):
    """A TensorBoard writer into ``OUT/tensorboard`` when tensorboard is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(os.path.join(out, "tensorboard"))


def train(
    config: TrainConfig,
    resume: bool = False,
    log: Callable[[str], None] = print,
    given: Collection[str] | None = None,
) -> Bundle:
    """Run (or resume) training; returns the best model by dev CER.

    A resumed run keeps its schedule, batches and seed (``RESUMED_SETTINGS``) and raises
    ValueError where the caller asks for other ones: those in ``given`` (the fields the
    caller set explicitly; None: those that differ from TrainConfig's defaults).

    Under torchrun (``WORLD_SIZE`` > 1) each process trains on its share of every global
    batch of ``batch_seconds``, gradients are averaged by DistributedDataParallel (NCCL on
    GPUs, gloo on CPUs), and rank 0 alone evaluates, logs and writes checkpoints.

    Ctrl-C (SIGINT) or SIGTERM lets the step in flight finish, writes ``last.pt`` and
    raises TrainingInterrupted (a KeyboardInterrupt); a second one stops at once.
    """
    with _StopRequests() as stop_requests:
        return _train(config, resume, log, stop_requests, given)


#: Settings a resumed run takes from its checkpoint (its schedule, batches and data
#: order), with the flag that sets each; asking for another value is an error.
RESUMED_SETTINGS = {
    "lr": "--lr",
    "warmup_steps": "--warmup-steps",
    "batch_seconds": "--batch-seconds",
    "accumulate": "--accumulate",
    "augment": "--no-augment",
    "sorted_first_epoch": "--shuffle-first-epoch",
    "seed": "--seed",
    "weight_decay": "weight_decay",
}


def _device(config: TrainConfig) -> torch.device:
    """The device ``config.device`` names (``auto``: CUDA when there is one); ValueError
    for a name torch does not know, another kind than CPU or CUDA, or CUDA without a GPU,
    and for ``--amp fp16`` off CUDA."""
    name = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"--device {config.device}: not a device name (auto, cpu, cuda, cuda:1, ...)"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {config.device}: training runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {config.device}: CUDA is not available on this machine")
    if config.amp == "fp16" and device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
    return device


def _check_resumed_settings(
    saved: dict, config: TrainConfig, given: Collection[str] | None, out: str
) -> None:
    """Raise ValueError where the caller asked a resumed run for another schedule than its
    own. ``given``: the settings the caller set explicitly (None: those that differ from
    TrainConfig's defaults)."""
    defaults = TrainConfig(train="", out="")
    for name, flag in RESUMED_SETTINGS.items():
        asked = getattr(config, name)
        explicit = name in given if given is not None else asked != getattr(defaults, name)
        if explicit and name in saved and asked != saved[name]:
            shown = {"augment": "augmentation", "sorted_first_epoch": "first-epoch order"}.get(name, flag)
            raise ValueError(
                f"{shown}: a resumed run keeps its own setting ({saved[name]!r}, not {asked!r}); to go on "
                f"with other settings, start a new run from its weights: --init {os.path.join(out, 'last.pt')} "
                "--out NEW_FOLDER"
            )


def _train(
    config: TrainConfig,
    resume: bool,
    log: Callable[[str], None],
    stop_requests: _StopRequests,
    given: Collection[str] | None = None,
) -> Bundle:
    if config.ema:
        WeightAverage.check(config.ema)  # before any time goes into loading data
    rank, world, rank_device = _init_distributed(config)
    # A bad --device or --amp is refused before the folder is made (a resumed run keeps
    # the caller's device and precision, so this stays the run's device).
    device = rank_device or _device(config)
    if rank:
        log = lambda message: None  # noqa: E731
    last_path = os.path.join(config.out, "last.pt")
    best_path = os.path.join(config.out, "best.pt")
    if not resume and os.path.exists(last_path):
        # A new run here would overwrite the old one's checkpoint and mix their logs (and
        # is refused before touching the folder, where that run may be writing).
        raise ValueError(
            f"--out {config.out} already holds a run ({last_path}); add --resume to continue "
            "it, or give another --out for a new run"
        )
    os.makedirs(config.out, exist_ok=True)
    if not rank:
        for stale in glob.glob(os.path.join(config.out, ".tmp-*")):
            Path(stale).unlink(missing_ok=True)  # a checkpoint write that a crash cut short
    checkpoint = safe_load(last_path) if resume and os.path.exists(last_path) else None
    if resume and checkpoint is None:
        log(f"no checkpoint in {config.out}; starting a new run")
    if checkpoint is not None and not is_checkpoint(checkpoint):
        raise ModelFileError(
            f"{last_path}: a model file, not a training checkpoint (no optimizer or step to resume "
            f"from); start a new run from its weights with --init {last_path} --out NEW_FOLDER"
        )
    requested = dict(config.model)  # the caller's flags; a resumed run's config replaces them
    if checkpoint is not None:
        saved = checkpoint["config"]
        _check_resumed_settings(saved, config, given, config.out)
        # The run's shape (model, schedule, batches, seed) comes from the checkpoint; where
        # the data and the run live and how long this session may go come from the caller.
        keep = {
            "train",
            "dev",
            "out",
            "epochs",
            "max_steps",
            "max_minutes",
            "workers",
            "threads",
            "device",
            "eval_every",
            "checkpoint_every",
            "amp",
        }
        if config.ema is not None:
            keep.add("ema")
        config = TrainConfig(**{**saved, **{k: getattr(config, k) for k in keep}})
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    vocabulary = Vocabulary()
    features = FeatureConfig()
    train_utts = _manifests(config.train)
    dev_utts = read_manifest(config.dev) if config.dev else []
    augment = WaveAugment(AugmentConfig()) if config.augment else None
    train_set = _AugmentedDataset(train_utts, vocabulary, features, augment, seed=config.seed)
    log(
        f"train: {len(train_utts)} utterances, {total_hours(train_utts):.2f} h; "
        f"dev: {len(dev_utts)} utterances; device: {device}"
    )

    if checkpoint is not None:
        bundle = bundle_from_dict(checkpoint["model"], last_path)
        model = bundle.model
    elif config.init:
        # Continue from a model file's weights (its shape and normalisation), new optimizer.
        bundle = bundle_from_dict(safe_load(config.init), config.init)
        bundle.metadata = {"init": config.init}
        model = bundle.model
    else:
        model = AcousticModel(ModelConfig(**config.model))
        mean, std = feature_statistics(SpeechDataset(train_utts, vocabulary, features), seed=config.seed)
        model.set_normalization(mean, std)
        bundle = Bundle(model, vocabulary, features)
    if checkpoint is not None or config.init:
        apply_model_overrides(model, requested, last_path if checkpoint is not None else config.init)
    model.to(device).train()
    log(f"model: {model.num_parameters() / 1e6:.2f}M parameters, {model.config}")
    # With --ema the average is what dev evaluation scores and best.pt ships; only rank 0,
    # which evaluates and saves, keeps one.
    average = WeightAverage(model, config.ema) if config.ema and not rank else None
    shipped = replace(bundle, model=average.model) if average is not None else bundle

    step_module: torch.nn.Module = _TrainStep(model, config.augment)
    if world > 1:
        step_module = torch.nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device] if device.type == "cuda" else None
        )
    # Runs saved before decay was split keep their single group, so they resume unchanged.
    single = checkpoint is not None and len(checkpoint["optimizer"]["param_groups"]) == 1
    groups = (
        [{"params": list(model.parameters())}] if single else parameter_groups(model, config.weight_decay)
    )
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    sampler = BucketBatchSampler(
        [u.duration for u in train_utts],
        config.batch_seconds,
        config.seed,
        sorted_first_epoch=config.sorted_first_epoch,
    )
    steps_per_epoch = len(sampler.batches(0))  # batches (micro-batches with --accumulate)
    total_steps = config.max_steps or math.ceil(steps_per_epoch / config.accumulate) * config.epochs
    amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[config.amp]
    # Loss scaling keeps small float16 gradients from underflowing; bf16 needs none.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    step, epoch, start_batch, best_cer = 0, 0, 0, math.inf
    # What dev evaluation last scored: (step, dev manifest, weight average); a resumed run
    # with another --dev or --ema scores its step again.
    evaluated: tuple = ()
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        step, epoch, start_batch = checkpoint["step"], checkpoint["epoch"], checkpoint["batch"]
        best_cer = checkpoint["best_cer"]
        evaluated = tuple(checkpoint.get("evaluated") or ())
        if average is not None:
            if checkpoint.get("ema"):
                average.load_state_dict(checkpoint["ema"])
            else:
                log("the checkpoint has no weight average: it starts from the resumed weights")
        # A new --max-steps re-plans the decay (to extend or shorten a run); otherwise the
        # schedule stays the one the run started with.
        total_steps = config.max_steps or checkpoint["total_steps"]
        saved = checkpoint.get("rng_ranks") or []
        rng = saved[rank] if len(saved) == world else checkpoint["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        if device.type == "cuda" and rng.get("cuda"):
            torch.cuda.set_rng_state_all(rng["cuda"])
        log(f"resumed from {last_path}: step {step}, epoch {epoch}, batch {start_batch}")
    if config.warmup_steps > total_steps:
        log(
            f"warning: --warmup-steps {config.warmup_steps} is longer than the run "
            f"({total_steps} steps): the learning rate never reaches --lr {config.lr:g}"
        )

    dev_batches = dev_batches_of(dev_utts, vocabulary, features) if dev_utts and not rank else []

    def save(epoch_: int, batch_: int) -> None:
        rng = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        }
        # Dropout and SpecAugment draw different amounts on each rank, so every rank's
        # generators are saved (all ranks reach each save together) and each resumes its own.
        rngs = [rng]
        if world > 1:
            rngs = [None] * world
            torch.distributed.all_gather_object(rngs, rng)
        if rank:
            return
        bundle.metadata.update(train_hours=round(total_hours(train_utts), 2), steps=step)
        atomic_save(
            {
                "model": model_dict(bundle),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "config": asdict(config),
                "step": step,
                "epoch": epoch_,
                "batch": batch_,
                "best_cer": best_cer,
                "total_steps": total_steps,
                "rng": rng,
                "rng_ranks": rngs,
                "ema": average.state_dict() if average is not None else None,
                "evaluated": list(evaluated),
            },
            last_path,
        )

    def run_eval(epoch_: float) -> None:
        nonlocal best_cer, evaluated
        # Once per step: a resumed run that takes no step (its limit already reached, or
        # at the end of an epoch) does not score the same weights again.
        if not dev_batches or rank or evaluated == (step, config.dev, config.ema):
            return
        evaluated = (step, config.dev, config.ema)
        metrics = evaluate(shipped.model, dev_batches, vocabulary, device)
        if board is not None:
            for name, number in metrics.items():
                board.add_scalar(name.replace("dev_", "dev/"), number, step)
        log(
            f"step {step} epoch {epoch_:.2f}: dev loss {metrics['dev_loss']:.3f} "
            f"CER {metrics['dev_cer']:.4f} WER {metrics['dev_wer']:.4f}"
        )
        new_file = not os.path.exists(os.path.join(config.out, "log.csv"))
        with open(os.path.join(config.out, "log.csv"), "a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(["time", "step", "epoch", "train_loss", "dev_loss", "dev_cer", "dev_wer"])
            writer.writerow(
                [
                    round(time.time()),
                    step,
                    round(epoch_, 3),
                    "" if first_step else round(running, 4),  # no step yet in this session
                    round(metrics["dev_loss"], 4),
                    round(metrics["dev_cer"], 4),
                    round(metrics["dev_wer"], 4),
                ]
            )
        if metrics["dev_cer"] < best_cer:
            best_cer = metrics["dev_cer"]
            bundle.metadata.update(
                dev_cer=round(best_cer, 4),
                dev_wer=round(metrics["dev_wer"], 4),
                steps=step,
                train_hours=round(total_hours(train_utts), 2),
            )
            save_model(shipped, best_path)

    # One row per step; after a crash, the steps redone after --resume appear again.
    steps_path = os.path.join(config.out, "steps.csv")
    new_steps_file = not os.path.exists(steps_path)
    steps_log = open(steps_path if not rank else os.devnull, "a", buffering=1)  # noqa: SIM115
    if new_steps_file and not rank:
        steps_log.write("step,train_loss,lr\n")
    board = _tensorboard(config.out) if not rank else None

    def close(check_replicas: bool) -> None:
        """End the run's logs and, with several ranks, the process group. No rank leaves
        before all are here, since rank 0 may still be writing a checkpoint."""
        steps_log.close()
        if board is not None:
            board.close()
        if world > 1:
            if check_replicas:
                _check_replicas(model, world)
                log(f"weights identical on all {world} ranks")
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()

    started = time.time()
    running, first_step = 0.0, True
    interactive = sys.stderr.isatty()
    stop = False
    stop_requests.armed = True
    while epoch < config.epochs and not stop:
        sampler.set_epoch(epoch, start_batch)
        train_set.epoch = epoch
        loader = torch.utils.data.DataLoader(
            train_set,
            batch_sampler=_RankBatches(sampler, rank, world) if world > 1 else sampler,
            collate_fn=collate,
            num_workers=config.workers,
            worker_init_fn=_ignore_stop_signals if config.workers else None,
            prefetch_factor=4 if config.workers else None,
            # Its own generator: a loader drawing its seed from the global RNG would shift
            # SpecAugment's masks after a mid-epoch resume.
            generator=torch.Generator().manual_seed(config.seed * 1_000 + epoch),
        )
        bar = tqdm(
            loader,
            total=len(sampler) + start_batch,
            initial=start_batch,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            mininterval=1.0 if interactive else 30.0,
            dynamic_ncols=True,
            disable=bool(rank),
        )
        batch_index = start_batch
        epoch_batches = len(sampler.batches(epoch))  # bucketing differs from epoch to epoch
        pending = 0  # micro-batches accumulated since the last optimizer step
        audio_seconds, tick = 0.0, time.time()
        for batch in bar:
            if config.max_steps and step >= config.max_steps:
                stop = True
                break
            if pending == 0:
                lr = learning_rate(step, total_steps, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                loss_sum = torch.zeros((), device=device)
            # The last micro-batch of a group (or of the epoch) makes the optimizer step.
            last = pending + 1 == config.accumulate or batch_index + 1 == epoch_batches
            sync = contextlib.nullcontext() if last or world == 1 else step_module.no_sync()
            with sync:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logprobs, lengths = step_module(batch.feats.to(device), batch.feat_lengths.to(device))
                loss = ctc_loss(logprobs.float(), lengths, batch)
                scaler.scale(loss / config.accumulate).backward()
            loss_sum += loss.detach()
            pending += 1
            batch_index += 1
            audio_seconds += batch.seconds
            if not last:
                continue
            if pending < config.accumulate:  # a short group at the end of an epoch
                for p in model.parameters():
                    if p.grad is not None:
                        p.grad.mul_(config.accumulate / pending)
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            scaler.step(optimizer)
            scale = scaler.get_scale() if scaler.is_enabled() else 0.0
            scaler.update()
            # fp16 loss scaling skips a step whose gradients overflowed (and lowers the
            # scale): the average skips it too.
            if average is not None and not (scaler.is_enabled() and scaler.get_scale() < scale):
                average.update(model)
            step += 1
            value = loss_sum / pending
            pending = 0
            if world > 1:
                torch.distributed.all_reduce(value)
                value = value / world
            value = float(value)
            if not rank:
                steps_log.write(f"{step},{value:.6f},{lr:.6e}\n")
            if board is not None:
                board.add_scalar("train/loss", value, step)
                board.add_scalar("train/lr", lr, step)
            running = value if first_step else 0.98 * running + 0.02 * value
            first_step = False
            bar.set_postfix(
                loss=f"{running:.3f}",
                lr=f"{lr:.2e}",
                speed=f"{audio_seconds / max(1e-6, time.time() - tick):.0f}x",
                refresh=False,
            )
            if step % config.checkpoint_every == 0:
                save(epoch, batch_index)
            if config.eval_every and step % config.eval_every == 0:
                run_eval(epoch + batch_index / steps_per_epoch)
            out_of_time = bool(config.max_minutes and time.time() - started > config.max_minutes * 60)
            interrupted = stop_requests.requested
            if world > 1:
                # Every rank must stop at the same step: rank 0's clock decides the time
                # limit, and a signal to any rank stops them all.
                flags = torch.tensor([float(out_of_time and not rank), float(interrupted)], device=device)
                torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
                out_of_time, interrupted = bool(flags[0]), bool(flags[1])
            if interrupted:
                bar.close()
                save(epoch, batch_index)
                close(check_replicas=False)
                raise TrainingInterrupted(step, last_path)
            if (config.max_steps and step >= config.max_steps) or out_of_time:
                stop = True
                break
        bar.close()
        if stop:
            # The last weights (at the end of the decay) compete for best.pt too.
            if not (config.eval_every and step % config.eval_every == 0):
                run_eval(epoch + batch_index / steps_per_epoch)
            save(epoch, batch_index)
            log(f"stopped at step {step} (limit reached); resume with --resume")
            break
        epoch += 1
        start_batch = 0
        if not (config.eval_every and step % config.eval_every == 0):
            run_eval(float(epoch))
        save(epoch, 0)
        log(f"epoch {epoch} done: step {step}" + ("" if first_step else f", train loss {running:.3f}"))
    if not rank and not os.path.exists(best_path):
        save_model(shipped, best_path)  # before close(): the other ranks then read it
    close(check_replicas=True)
    return bundle_from_dict(safe_load(best_path), best_path)
