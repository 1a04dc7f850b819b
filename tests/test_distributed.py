"""Multi-process training through torchrun (gloo on CPU): the ranks end with identical
weights, and the loss curve matches one process training on the same global batches."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def losses(out: Path) -> list[float]:
    with open(out / "steps.csv") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)]


def test_two_ranks_match_one_process(corpus: Path, tmp_path: Path) -> None:
    common = [
        "--train", f"{corpus}:2", "--dev", str(corpus), "--hidden", "32", "--layers", "2",
        "--conv-channels", "4", "--dropout", "0", "--max-steps", "6", "--batch-seconds", "8",
        "--lr", "3e-3", "--warmup-steps", "3", "--checkpoint-every", "3", "--eval-every", "3",
        "--workers", "0", "--threads", "1", "--seed", "3", "--no-augment",
    ]  # fmt: skip
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = subprocess.run(
        [*launch, "-m", "asr", "train", *common, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-2000:]
    # Each rank checks the others' weight digests (bitwise) before it exits.
    assert "weights identical on all 2 ranks" in two.stdout + two.stderr
    assert two.stdout.count("best model:") == 1  # rank 0 alone reports, logs and saves
    one = subprocess.run(
        [sys.executable, "-m", "asr", "train", *common, "--out", str(tmp_path / "one")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    curve_two, curve_one = losses(tmp_path / "two"), losses(tmp_path / "one")
    assert len(curve_two) == len(curve_one) == 6
    # Same global batches, gradients averaged over ranks: the curves agree up to the
    # split of each batch's mean between two halves of unequal size.
    assert curve_two == pytest.approx(curve_one, rel=0.02)
    assert curve_two[-1] < 0.7 * curve_two[0]
    assert (tmp_path / "two" / "last.pt").exists() and (tmp_path / "two" / "best.pt").exists()
    # Each rank's random generators are saved, so that each resumes its own.
    import torch

    checkpoint = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert len(checkpoint["rng_ranks"]) == 2
    assert len(torch.load(tmp_path / "one" / "last.pt", weights_only=True)["rng_ranks"]) == 1


def test_ctrl_c_under_torchrun_stops_every_rank_at_one_saved_step(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "--train", f"{corpus}:2", "--dev", str(corpus), "--hidden", "32", "--layers", "2",
        "--conv-channels", "4", "--max-steps", "500", "--batch-seconds", "8", "--checkpoint-every", "100",
        "--eval-every", "100", "--workers", "0", "--threads", "1", "--out", str(out),
    ]  # fmt: skip
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # Its own process group, as a terminal's foreground job: Ctrl-C reaches every process.
    proc = subprocess.Popen(
        [*launch, "-m", "asr", "train", *args], stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if (out / "steps.csv").exists() and len(losses(out)) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=90)
    done = len(losses(out))
    assert 3 <= done < 100, stderr[-2000:]
    assert f"interrupted at step {done}; saved {out / 'last.pt'}" in stderr
    import torch

    checkpoint = torch.load(out / "last.pt", weights_only=True)
    assert checkpoint["step"] == done and len(checkpoint["rng_ranks"]) == 2
