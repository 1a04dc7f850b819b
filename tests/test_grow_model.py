"""tools/grow_model.py: deeper models that start out computing exactly what they grew from."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from asr.checkpoint import Bundle, load_model, save_model
from asr.features import FeatureConfig
from asr.model import AcousticModel
from asr.text import Vocabulary

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import grow_model  # noqa: E402


def bundle(**overrides) -> Bundle:
    torch.manual_seed(0)
    return Bundle(AcousticModel(tiny_config(**overrides)).eval(), Vocabulary(), FeatureConfig())


def test_grown_model_computes_the_same_and_its_new_layers_learn() -> None:
    small = bundle()
    grown = grow_model.grow(small, 4)
    assert grown.model.config.layers == 4 and grown.metadata["grown_from_layers"] == 2
    assert grown.model.num_parameters() > small.model.num_parameters()
    feats, lengths = torch.randn(2, 60, 80), torch.tensor([60, 41])
    grown.model.eval()
    with torch.no_grad():
        before, _, _ = small.model(feats, lengths)
        after, _, _ = grown.model(feats, lengths)
    assert torch.equal(before, after)
    # The new layers get gradients, so a fine-tune can use them.
    grown.model.train()
    logprobs, out_lengths, _ = grown.model(feats, lengths)
    loss = torch.nn.functional.ctc_loss(
        logprobs.transpose(0, 1), torch.tensor([[3, 4, 5], [6, 7, 8]]), out_lengths, torch.tensor([3, 3])
    )
    loss.backward()
    new = grown.model.layers[3].gru.weight_ih_l0
    assert new.grad is not None and new.grad.abs().sum() > 0


def test_streaming_still_equals_offline_after_growing() -> None:
    grown = grow_model.grow(bundle(), 3).model.eval()
    with torch.no_grad():
        grown.layers[2].gru.weight_ih_l0.normal_()  # as if trained
        feats = torch.randn(1, 64, 80)
        whole, _, _ = grown(feats, torch.tensor([64]))
        state, parts = None, []
        for start in range(0, 64, 16):
            out, _, state = grown(
                feats[:, start : start + 16], torch.tensor([16]), state, final=start + 16 == 64
            )
            parts.append(out)
    assert torch.allclose(whole, torch.cat(parts, dim=1), atol=1e-5)


def test_growing_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="already has 2 layers"):
        grow_model.grow(bundle(), 2)
    with pytest.raises(ValueError, match="unidirectional"):
        grow_model.grow(bundle(bidirectional=True), 4)


def grow_cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "tools" / "grow_model.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_cli_writes_a_loadable_model(tmp_path: Path) -> None:
    save_model(bundle(), tmp_path / "small.pt")
    done = grow_cli(str(tmp_path / "small.pt"), str(tmp_path / "big.pt"), "--layers", "3")
    assert done.returncode == 0, done.stderr
    assert "2 -> 3 layers" in done.stdout
    assert load_model(tmp_path / "big.pt").model.config.layers == 3
    done = grow_cli(str(tmp_path / "small.pt"), str(tmp_path / "x.pt"), "--layers", "1")
    assert (
        done.returncode != 0 and done.stderr.strip().startswith("error:") and "Traceback" not in done.stderr
    )
