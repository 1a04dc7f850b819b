"""End to end: espeak-ng speech -> a tiny model trained for a few seconds -> asr transcribe."""

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr.checkpoint import bundle_from_dict, load_model, safe_load
from asr.data import BucketBatchSampler, read_manifest
from asr.model import AcousticModel, ModelConfig
from asr.train import (
    TrainConfig,
    WeightAverage,
    dev_batches_of,
    evaluate,
    learning_rate,
    parameter_groups,
    train,
)

TINY = {"hidden": 48, "layers": 2, "conv_channels": 4, "dropout": 0.0}


def config(corpus: Path, out: Path, steps: int) -> TrainConfig:
    return TrainConfig(
        train=[f"{corpus}:2"],
        dev=str(corpus),
        out=str(out),
        model=TINY,
        max_steps=steps,
        batch_seconds=12.0,
        lr=3e-3,
        warmup_steps=3,
        augment=False,
        checkpoint_every=4,
        eval_every=6,
        workers=0,
        seed=1,
    )


def dev_losses(out: Path) -> list[tuple[int, float]]:
    with open(out / "log.csv") as f:
        return [(int(row["step"]), float(row["dev_loss"])) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(config(corpus, out, 24), log=lambda m: None)
    return out


def test_loss_falls_and_files_are_written(trained: Path) -> None:
    losses = dev_losses(trained)
    steps = [s for s, _ in losses]
    assert steps == sorted(set(steps)) and 6 in steps and steps[-1] == 24
    assert losses[-1][1] < 0.8 * losses[0][1]
    assert (trained / "best.pt").exists() and (trained / "last.pt").exists()
    assert not list(trained.glob(".tmp-*"))
    ckpt = safe_load(trained / "last.pt")
    assert ckpt["step"] == 24 and "optimizer" in ckpt


def test_resume_continues_from_the_last_checkpoint(trained: Path, corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "best.pt", "log.csv"):
        (run / name).write_bytes((trained / name).read_bytes())
    train(config(corpus, run, 30), resume=True, log=lambda m: None)
    ckpt = safe_load(run / "last.pt")
    assert ckpt["step"] == 30
    assert [s for s, _ in dev_losses(run)][-1] == 30
    # --max-steps re-plans the schedule: the decay now ends at step 30.
    assert ckpt["total_steps"] == 30
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        learning_rate(29, 30, config(corpus, run, 30))
    )
    # Resumed again at its limit, it takes no step and logs no second row for step 30.
    rows = (run / "log.csv").read_text().splitlines()
    train(config(corpus, run, 30), resume=True, log=lambda m: None)
    assert (run / "log.csv").read_text().splitlines() == rows
    assert safe_load(run / "last.pt")["step"] == 30


def test_weight_decay_spares_biases_and_norm_gains() -> None:
    model = AcousticModel(ModelConfig(**TINY))
    decayed, plain = parameter_groups(model, 0.01)
    assert decayed["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    plain_names = {names[id(p)] for p in plain["params"]}
    assert plain_names and all("bias" in n or "norm" in n for n in plain_names)
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert len(decayed["params"]) + len(plain_names) == len(names)


def test_a_run_saved_with_one_optimizer_group_still_resumes(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    assert len(safe_load(trained / "last.pt")["optimizer"]["param_groups"]) == 2
    # Runs from before the decay split saved AdamW's state as a single group.
    # Rebuild that layout: AdamW numbers the state by position in the groups, model order.
    ckpt = safe_load(trained / "last.pt")
    model = AcousticModel(ModelConfig(**TINY))
    position = {id(p): k for k, p in enumerate(p for g in parameter_groups(model, 0.0) for p in g["params"])}
    old = [position[id(p)] for p in model.parameters()]
    state = ckpt["optimizer"]["state"]
    ckpt["optimizer"]["state"] = {j: state[k] for j, k in enumerate(old)}
    group = ckpt["optimizer"]["param_groups"][0]
    ckpt["optimizer"]["param_groups"] = [{**group, "params": list(range(len(old)))}]
    run = tmp_path / "run"
    run.mkdir()
    torch.save(ckpt, run / "last.pt")
    train(config(corpus, run, 26), resume=True, log=lambda m: None)
    resumed = safe_load(run / "last.pt")
    assert resumed["step"] == 26 and len(resumed["optimizer"]["param_groups"]) == 1
    assert resumed["optimizer"]["param_groups"][0]["weight_decay"] == 0.01  # as the run began


def test_transcribe_cli_runs_on_the_checkpoint(trained: Path, corpus: Path) -> None:
    audio = [str(corpus.parent / "u2.wav"), str(corpus.parent / "u3.wav")]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "transcribe",
            "--model",
            str(trained / "best.pt"),
            "--format",
            "json",
            *audio,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["audio"] for o in objects] == audio
    for o in objects:
        assert o["duration"] > 0.3
        for w in o["words"]:
            assert 0 <= w["start"] < w["end"] <= o["duration"] + 0.05 and 0 <= w["confidence"] <= 1
    # A checkpoint is also accepted where a model file is.
    assert load_model(trained / "last.pt").model.config.hidden == 48


def test_learning_rate_schedule() -> None:
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(0, 100, cfg) == pytest.approx(1e-4)
    assert learning_rate(9, 100, cfg) == pytest.approx(1e-3)
    assert learning_rate(55, 100, cfg) == pytest.approx(0.55e-3)
    assert learning_rate(100, 100, cfg) == pytest.approx(1e-4)
    assert learning_rate(500, 100, cfg) == pytest.approx(1e-4)


def test_bucket_sampler_first_epoch_sorted_then_shuffled() -> None:
    durations = [float(d) for d in torch.randint(1, 20, (300,))]
    sampler = BucketBatchSampler(durations, batch_seconds=60.0, seed=3)
    first = sampler.batches(0)
    assert sorted(i for b in first for i in b) == list(range(300))
    assert all(max(durations[i] for i in b) * len(b) <= 60.0 or len(b) == 1 for b in first)
    # Shortest first, up to the +-10% jitter that varies batches between epochs.
    longest = [max(durations[i] for i in b) for b in first]
    assert all(a <= b * 1.25 for a, b in itertools.pairwise(longest))
    assert longest[0] < longest[-1]
    assert sampler.batches(1) != sampler.batches(2)
    assert sampler.batches(1) == BucketBatchSampler(durations, 60.0, seed=3).batches(1)
    sampler.set_epoch(1, start_batch=4)
    assert list(sampler) == sampler.batches(1)[4:]


def test_manifest_paths_and_weights(corpus: Path) -> None:
    rows = read_manifest(corpus, weight=2)
    assert len(rows) == 16 and Path(rows[0].audio).is_absolute() and rows[0].text == "yes"
    # Subsets: the first folder inside the manifest's folder, else the file's own folder.
    from asr.data import _subset

    assert _subset("cathy/a.wav", "/data/cathy/a.wav") == "cathy"
    assert _subset("a.wav", "/data/a.wav") == ""
    assert _subset("../a.wav", "/corpora/a.wav") == "corpora"
    assert _subset("../other/x/a.wav", "/corpora/other/x/a.wav") == "x"
    assert _subset("/abs/b/a.wav", "/abs/b/a.wav") == "b"


def test_init_starts_from_a_model_file(trained: Path, corpus: Path, tmp_path: Path) -> None:
    cfg = config(corpus, tmp_path / "cont", 2)
    cfg.init = str(trained / "best.pt")
    cfg.model = {}  # the shape comes from the file
    messages: list[str] = []
    bundle = train(cfg, log=messages.append)
    # Two steps never get past a warmup of three: the run says so rather than look stuck.
    assert (
        "warning: --warmup-steps 3 is longer than the run (2 steps): the learning rate "
        "never reaches --lr 0.003"
    ) in messages
    start = load_model(trained / "best.pt")
    assert bundle.model.config == start.model.config
    assert torch.equal(bundle.model.feat_mean, start.model.feat_mean)
    # Two small steps moved the weights, but not far from where they started.
    a, b = bundle.model.output.weight.detach(), start.model.output.weight.detach()
    assert 0 < float((a - b).abs().max()) < 0.1


def test_weight_average_follows_the_weights() -> None:
    model = AcousticModel(ModelConfig(**TINY))
    average = WeightAverage(model, 0.5)
    start = model.output.weight.detach().clone()
    with torch.no_grad():
        model.output.weight.add_(1.0)
        model.feat_mean.fill_(3.0)
    average.update(model)  # the first update's decay is min(0.5, 2 / 11)
    moved = average.model.output.weight - start
    assert torch.allclose(moved, torch.full_like(moved, 9 / 11))
    assert torch.equal(average.model.feat_mean, model.feat_mean)  # buffers are copied
    assert not average.model.training and not any(p.requires_grad for p in average.model.parameters())
    with pytest.raises(ValueError, match="ema"):
        WeightAverage(model, 1.0)


def test_ema_run_scores_ships_and_resumes_the_average(trained: Path, corpus: Path, tmp_path: Path) -> None:
    cfg = config(corpus, tmp_path / "ema", 6)
    cfg.init, cfg.model, cfg.ema = str(trained / "best.pt"), {}, 0.9
    train(cfg, log=lambda m: None)
    ckpt = safe_load(tmp_path / "ema" / "last.pt")
    assert ckpt["ema"]["updates"] == 6
    # The dev figures logged at step 6 are those of the average, not of the live weights.
    live = bundle_from_dict(ckpt["model"])
    averaged = bundle_from_dict(ckpt["model"])
    averaged.model.load_state_dict(ckpt["ema"]["model"])
    batches = dev_batches_of(read_manifest(corpus), live.vocabulary)
    cpu = torch.device("cpu")
    logged = dev_losses(tmp_path / "ema")[-1]
    assert logged[0] == 6
    assert evaluate(averaged.model, batches, live.vocabulary, cpu)["dev_loss"] == pytest.approx(
        logged[1], abs=2e-4
    )
    assert evaluate(live.model, batches, live.vocabulary, cpu)["dev_loss"] != pytest.approx(
        logged[1], abs=2e-4
    )
    cfg.max_steps = 6  # resume with no step left: the average goes back out as it came in
    train(cfg, resume=True, log=lambda m: None)
    again = safe_load(tmp_path / "ema" / "last.pt")["ema"]
    assert again["updates"] == 6
    assert all(torch.equal(again["model"][k], v) for k, v in ckpt["ema"]["model"].items())
    cfg.max_steps = 8
    train(cfg, resume=True, log=lambda m: None)
    assert safe_load(tmp_path / "ema" / "last.pt")["ema"]["updates"] == 8
    # Without dev data best.pt is the run's final model: the average, not the live weights.
    cfg = config(corpus, tmp_path / "nodev", 3)
    cfg.init, cfg.model, cfg.ema, cfg.dev = str(trained / "best.pt"), {}, 0.9, ""
    train(cfg, log=lambda m: None)
    ckpt = safe_load(tmp_path / "nodev" / "last.pt")
    best = load_model(tmp_path / "nodev" / "best.pt").model.state_dict()
    assert torch.allclose(best["output.weight"], ckpt["ema"]["model"]["output.weight"])
    assert not torch.allclose(best["output.weight"], ckpt["model"]["state_dict"]["output.weight"])


def test_ema_given_on_resume_replaces_the_run_setting(trained: Path, corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "best.pt", "log.csv"):
        (run / name).write_bytes((trained / name).read_bytes())
    assert safe_load(run / "last.pt").get("ema") is None  # trained without an average
    cfg = config(corpus, run, 26)
    cfg.ema = 0.9
    logs: list[str] = []
    train(cfg, resume=True, log=logs.append)
    assert any("no weight average" in line for line in logs)
    ckpt = safe_load(run / "last.pt")
    assert ckpt["config"]["ema"] == 0.9 and ckpt["ema"]["updates"] == 2
    cfg.ema, cfg.max_steps = None, 27  # not given: the run keeps its average
    train(cfg, resume=True, log=lambda m: None)
    assert safe_load(run / "last.pt")["ema"]["updates"] == 3


def test_shuffle_first_epoch_reaches_the_sampler(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    import asr.train

    made: list[BucketBatchSampler] = []

    class Spy(BucketBatchSampler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(asr.train, "BucketBatchSampler", Spy)
    train(config(corpus, tmp_path / "sorted", 1), log=lambda m: None)
    assert made and all(s.sorted_first_epoch for s in made)  # training's and dev's
    made.clear()
    shuffled = TrainConfig(
        **{**config(corpus, tmp_path / "shuffled", 1).__dict__, "sorted_first_epoch": False}
    )
    train(shuffled, log=lambda m: None)
    assert [s.sorted_first_epoch for s in made].count(False) == 1  # training's; dev stays sorted
    # The first epoch's order then differs from shortest first.
    durations = [1.0 + i for i in range(40)]
    first = BucketBatchSampler(durations, 3.0, seed=1, sorted_first_epoch=False).batches(0)
    assert first != BucketBatchSampler(durations, 3.0, seed=1).batches(0)


def test_train_cli_passes_shuffle_first_epoch(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    import asr.train
    from asr.cli import main

    seen: list[TrainConfig] = []

    def fake_train(config: TrainConfig, resume: bool = False, log=print, given=None):
        seen.append(config)
        raise asr.train.TrainingInterrupted(0, "x")

    monkeypatch.setattr(asr.train, "train", fake_train)
    base = ["train", "--train", str(corpus), "--out", str(tmp_path / "run")]
    for extra, expected in (([], True), (["--shuffle-first-epoch"], False)):
        main([*base, *extra])
        assert seen[-1].sorted_first_epoch is expected


def test_init_takes_a_new_dropout_and_refuses_a_new_shape(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    cfg = config(corpus, tmp_path / "drop", 2)
    cfg.init, cfg.model = str(trained / "best.pt"), {"dropout": 0.3}
    bundle = train(cfg, log=lambda m: None)
    # The fine-tune ran with the new rate, and the model file records it.
    assert bundle.model.config.dropout == 0.3
    dropouts = [m.p for m in bundle.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(p == 0.3 for p in dropouts)
    assert load_model(tmp_path / "drop" / "best.pt").model.config.dropout == 0.3
    # A resumed run keeps its rate unless a new one is given.
    cfg.max_steps, cfg.model = 3, {}
    assert train(cfg, resume=True, log=lambda m: None).model.config.dropout == 0.3
    cfg.max_steps, cfg.model = 4, {"dropout": 0.0}
    train(cfg, resume=True, log=lambda m: None)
    ckpt = safe_load(tmp_path / "drop" / "last.pt")
    assert bundle_from_dict(ckpt["model"]).model.config.dropout == 0.0
    # A shape flag that differs from the model file is an error, not silently ignored.
    cfg = config(corpus, tmp_path / "wide", 2)
    cfg.init, cfg.model = str(trained / "best.pt"), {"hidden": 64}
    with pytest.raises(ValueError, match=r"--hidden 64: .* has hidden = 48"):
        train(cfg, log=lambda m: None)


def test_utterances_that_cannot_teach_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asr.data import Utterance
    from asr.train import _fits, _manifests

    # 1 s is 101 feature frames, so 26 output frames (ceil(101 / 4)): 26 characters, less
    # one per doubled letter, which needs a blank between its two.
    assert _fits(Utterance("a.wav", "abcdefghij" * 2 + "abcdef", 1.0))
    assert not _fits(Utterance("a.wav", "abcdefghij" * 2 + "abcdefg", 1.0))
    assert not _fits(Utterance("a.wav", "abcdefghij" * 2 + "abcdee", 1.0))
    rows = [
        {"audio": "long.wav", "text": "far too many words for half a second of audio", "duration": 0.5},
        {"audio": "greek.wav", "text": "Ελληνικά", "duration": 1.0},
        {"audio": "ok.wav", "text": "Straße", "duration": 1.0},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = _manifests([f"{manifest}:3"])
    assert sorted({(Path(u.audio).name, u.text) for u in kept}) == [("greek.wav", ""), ("ok.wav", "strasse")]
    out = capsys.readouterr().out
    assert "1 utterances have more text than their audio can hold" in out and "long.wav" in out
    assert "1 utterances have no text after normalising" in out and "greek.wav" in out
    from asr.data import ManifestError

    with pytest.raises(ManifestError, match="must be 1 or more"):
        _manifests([f"{manifest}:0"])
