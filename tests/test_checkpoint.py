import os
from pathlib import Path

import pytest
import torch

from asr.checkpoint import Bundle, ModelFileError, atomic_save, load_model, save_model
from asr.features import FeatureConfig
from asr.model import AcousticModel
from asr.text import Vocabulary

FEATS = torch.randn(1, 50, 80)


def outputs(model: AcousticModel) -> torch.Tensor:
    with torch.no_grad():
        return model(FEATS, torch.tensor([50]))[0]


def test_round_trip_defines_the_recognizer(tmp_path: Path, tiny_model: AcousticModel) -> None:
    tiny_model.set_normalization(torch.full((80,), -3.0), torch.full((80,), 2.0))
    bundle = Bundle(tiny_model, Vocabulary(), FeatureConfig(f_max=7000.0), {"dev_cer": 0.5})
    save_model(bundle, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.model.config == tiny_model.config
    assert loaded.features == FeatureConfig(f_max=7000.0)
    assert loaded.vocabulary == Vocabulary() and loaded.metadata == {"dev_cer": 0.5}
    assert torch.equal(outputs(loaded.model), outputs(tiny_model))
    assert not loaded.model.training
    # Plain values and tensors only: loads with the safe unpickler.
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["format"] == "asr-model" and isinstance(raw["model_config"], dict)


def test_half_precision_file(tmp_path: Path, tiny_model: AcousticModel) -> None:
    bundle = Bundle(tiny_model, Vocabulary(), FeatureConfig())
    save_model(bundle, tmp_path / "full.pt")
    save_model(bundle, tmp_path / "half.pt", half=True)
    assert os.path.getsize(tmp_path / "half.pt") < 0.7 * os.path.getsize(tmp_path / "full.pt")
    loaded = load_model(tmp_path / "half.pt")
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert float((outputs(loaded.model) - outputs(tiny_model)).abs().max()) < 1e-2


def test_atomic_save_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    atomic_save({"step": 1}, target)

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"step": 2, "bad": Unsaveable()}, target)
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["ckpt.pt"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"not a model", "not a readable model file"), ({"a": 1}, "not an asr model")],
)
def test_bad_model_files(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "m.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "asr-model", "payload": Path("/etc/passwd")}, path)
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(path)


def test_missing_default_model_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("asr.checkpoint.default_model_path", lambda: tmp_path / "none.pt")
    with pytest.raises(ModelFileError, match="--model"):
        load_model()
