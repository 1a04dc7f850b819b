"""Crash-safe training: kill -9 mid-epoch, or in the middle of a checkpoint write, then
--resume; the resumed run's losses equal those of a run that was never interrupted."""

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from asr.checkpoint import safe_load
from asr.train import TrainConfig, _ignore_stop_signals, train

TINY = {"hidden": 32, "layers": 2, "conv_channels": 4, "dropout": 0.0}
STEPS = 12

# Runs training with torch.save patched to die like kill -9 halfway through its Nth write.
CRASHING = """
import json, os, signal, sys
import torch
from asr.train import TrainConfig, train
real_save, calls = torch.save, [0]
def save(obj, f, *args, **kwargs):
    calls[0] += 1
    if calls[0] == int(sys.argv[2]):
        f.write(b"half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = save
train(TrainConfig(**json.loads(sys.argv[1])), log=lambda m: None)
"""


def config(corpus: Path, out: Path) -> TrainConfig:
    return TrainConfig(
        train=[f"{corpus}:2"], dev=str(corpus), out=str(out), model=TINY, max_steps=STEPS,
        batch_seconds=4.0, lr=3e-3, warmup_steps=3, augment=True, checkpoint_every=4,
        eval_every=6, workers=0, threads=1, seed=3,
    )  # fmt: skip


def cli_args(corpus: Path, out: Path) -> list[str]:
    """``asr train`` arguments for the same run as ``config``."""
    c = config(corpus, out)
    return ["--train", c.train[0], "--dev", c.dev, "--out", str(out), "--hidden", "32", "--layers", "2",
            "--conv-channels", "4", "--dropout", "0", "--max-steps", str(STEPS), "--batch-seconds", "4",
            "--lr", "3e-3", "--warmup-steps", "3", "--checkpoint-every", "4", "--eval-every", "6",
            "--workers", "0", "--threads", "1", "--seed", "3"]  # fmt: skip


def processes_in(group: int) -> list[int]:
    """The pids of a process group (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError, ValueError):
            if entry.isdigit() and os.getpgid(int(entry)) == group:
                pids.append(int(entry))
    return pids


def losses(out: Path) -> dict[int, float]:
    """The loss of each step; a step redone after a resume keeps its last value."""
    with open(out / "steps.csv") as f:
        return {int(r["step"]): float(r["train_loss"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    out = tmp_path_factory.mktemp("uninterrupted")
    train(config(corpus, out), log=lambda m: None)
    return losses(out)


def resume(corpus: Path, out: Path) -> None:
    train(config(corpus, out), resume=True, log=lambda m: None)


def test_kill_9_mid_epoch_then_resume(corpus: Path, tmp_path: Path, reference: dict[int, float]) -> None:
    # The kill must land between checkpoints (every 4 steps), so that the steps after the
    # last one are lost and redone. A fast machine can finish step 8's checkpoint before
    # the kill arrives; then the run is tried again (a few attempts always land).
    for attempt in range(4):
        out = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "asr", "train", *cli_args(corpus, out)], stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if (out / "steps.csv").exists() and len(losses(out)) >= 5 + attempt % 2:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = len(losses(out))
        assert 5 <= done < STEPS, "the kill must land mid-run"
        checkpoint = safe_load(out / "last.pt")
        if checkpoint["step"] < done:
            break
    assert checkpoint["step"] < done, "no kill landed between two checkpoints"
    resume(corpus, out)
    resumed = losses(out)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    assert resumed == pytest.approx(reference, rel=1e-4)
    assert safe_load(out / "last.pt")["step"] == STEPS


@pytest.mark.parametrize(
    ("sig", "group"),
    [
        (signal.SIGINT, True),  # Ctrl-C in a terminal: the data-loading process hears it too
        (signal.SIGTERM, False),  # kill PID
        (signal.SIGTERM, True),  # systemd, SLURM's scancel, kill -- -PGID: every process
    ],
)
def test_ctrl_c_or_sigterm_keeps_every_step(
    corpus: Path, tmp_path: Path, reference: dict[int, float], sig: signal.Signals, group: bool
) -> None:
    out = tmp_path / "run"
    args = cli_args(corpus, out)
    if group:
        args[args.index("--workers") + 1] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "asr", "train", *args],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # Mid-epoch (an epoch is 5 steps), while a data-loading process is alive to hear it.
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        loader_alive = not group or len(processes_in(proc.pid)) > 1
        if (out / "steps.csv").exists() and len(losses(out)) >= 7 and loader_alive:
            break
        time.sleep(0.05)
    if group:
        assert len(processes_in(proc.pid)) > 1, "no data-loading process to signal"
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    done = len(losses(out))
    assert proc.returncode == 130 and 7 <= done < STEPS, stderr
    # One line, no traceback, and nothing lost: the step in flight finished and was saved.
    assert (
        stderr.strip()
        .splitlines()[-1]
        .endswith(f"interrupted at step {done}; saved {out / 'last.pt'}; run again with --resume to continue")
    )
    assert "Traceback" not in stderr and "stopping after this step to save a checkpoint" in stderr
    assert safe_load(out / "last.pt")["step"] == done
    resume(corpus, out)
    assert losses(out) == pytest.approx(reference, rel=1e-4)


def test_crash_during_a_checkpoint_write(corpus: Path, tmp_path: Path, reference: dict[int, float]) -> None:
    out = tmp_path / "run"
    c = asdict(config(corpus, out))
    # The third write (last.pt or best.pt, a few steps in) is cut short by SIGKILL.
    script = tmp_path / "crash.py"
    script.write_text(CRASHING)
    done = subprocess.run([sys.executable, str(script), json.dumps(c), "3"], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert list(out.glob(".tmp-*")), "the cut-short write is left behind"
    checkpoint = safe_load(out / "last.pt")  # the previous checkpoint, whole
    assert 0 < checkpoint["step"] <= len(losses(out)) < STEPS
    resume(corpus, out)
    assert not list(out.glob(".tmp-*"))
    assert losses(out) == pytest.approx(reference, rel=1e-4)
    assert os.path.exists(out / "best.pt")


class _SignalledDataset(torch.utils.data.Dataset):
    """Each item sends SIGTERM to the process that loads it, as a group signal would."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        return index


def test_data_loading_processes_outlive_sigterm() -> None:
    """A run's data-loading processes ignore SIGTERM, so the main process (which saves a
    checkpoint first) decides when they stop; a killed loader would crash the run."""
    loader = torch.utils.data.DataLoader(
        _SignalledDataset(), num_workers=1, worker_init_fn=_ignore_stop_signals, batch_size=None
    )
    assert list(loader) == list(range(6))


HANGING_LOADER = """
import os, sys, time
import torch
from asr.train import _ignore_stop_signals
class Hangs(torch.utils.data.Dataset):
    def __len__(self):
        return 2
    def __getitem__(self, index):
        if index:
            with open(sys.argv[1] + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(sys.argv[1] + ".tmp", sys.argv[1])  # seen whole or not at all
            time.sleep(600)  # a loader stuck mid-item
        return index
loader = iter(torch.utils.data.DataLoader(Hangs(), num_workers=1, worker_init_fn=_ignore_stop_signals, batch_size=None))
next(loader)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
os._exit(0)  # the main process goes, as after a crash or a SIGKILL
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dying with the parent is Linux's prctl")
def test_a_stuck_loader_dies_with_its_run(tmp_path: Path) -> None:
    """A loader that ignores SIGTERM must not outlive the run it loads for."""
    script, pid_file = tmp_path / "hang.py", tmp_path / "loader.pid"
    script.write_text(HANGING_LOADER)
    subprocess.run([sys.executable, str(script), str(pid_file)], timeout=60, check=True)
    pid = int(pid_file.read_text())
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), "the loader outlived its run"
