"""tools/average_models.py: the mean of models fine-tuned from one start."""

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
import average_models  # noqa: E402


def bundle(seed: int, **overrides) -> Bundle:
    torch.manual_seed(seed)
    model = AcousticModel(tiny_config(**overrides)).eval()
    model.set_normalization(torch.full((80,), float(seed)), torch.ones(80))
    return Bundle(model, Vocabulary(), FeatureConfig())


def test_the_soup_is_the_mean_of_the_weights_and_keeps_the_first_inputs(tmp_path: Path) -> None:
    a, b, c = bundle(1), bundle(2), bundle(3)
    expected = {k: (a.model.state_dict()[k] + b.model.state_dict()[k] + c.model.state_dict()[k]) / 3
                for k in a.model.state_dict()}  # fmt: skip
    paths = []
    for i, item in enumerate((a, b, c)):
        paths.append(tmp_path / f"m{i}.pt")
        save_model(item, paths[-1])
    out = tmp_path / "soup.pt"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "average_models.py"), str(out), *map(str, paths)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    soup = load_model(out)
    weights = soup.model.state_dict()
    torch.testing.assert_close(weights["output.weight"], expected["output.weight"])
    torch.testing.assert_close(weights["layers.1.gru.weight_hh_l0"], expected["layers.1.gru.weight_hh_l0"])
    assert torch.equal(weights["feat_mean"], torch.full((80,), 1.0))  # the first model's statistics
    assert soup.metadata["averaged_from"] == list(map(str, paths))


def test_models_of_another_shape_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        average_models.average([bundle(1), bundle(2, hidden=16)])
    assert average_models.average([bundle(1), bundle(2, dropout=0.2)]).model.config.dropout == 0.0
    with pytest.raises(ValueError, match="at least two"):
        average_models.average([bundle(1)])
    save_model(bundle(1), tmp_path / "a.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "average_models.py"), str(tmp_path / "o.pt"),
         str(tmp_path / "a.pt"), str(tmp_path / "junk.pt")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("average_models.py: error: ") and not (tmp_path / "o.pt").exists()
