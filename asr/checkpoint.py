"""Model files and training checkpoints: plain values and tensors, written atomically.

A model file is ``torch.save`` of a dict that loads with ``weights_only=True``: the
weights, the model config, the vocabulary and the feature parameters, so the file alone
defines the recognizer. Nothing is unpickled beyond tensors and plain containers.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from asr.features import FeatureConfig
from asr.model import AcousticModel, ModelConfig
from asr.text import Vocabulary

FORMAT = "asr-model"
VERSION = 1
DEFAULT_MODEL = "default.pt"
DEFAULT_LM = "default.arpa.gz"


class ModelFileError(Exception):
    """A model file that is missing, unreadable or not an asr model."""


@dataclass
class Bundle:
    """A loaded recognizer model: the network plus everything needed to feed and read it."""

    model: AcousticModel
    vocabulary: Vocabulary
    features: FeatureConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def frame_seconds(self) -> float:
        """Seconds per output (log-prob) frame."""
        return self.features.hop_length * self.model.config.subsampling / self.features.sample_rate


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over it.

    A crash at any moment leaves either the old file or the new one, never a torn one.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the usual rights for a new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safe_load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a file written by ``atomic_save`` without unpickling arbitrary objects."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    export = _export_format(path)
    if export:
        article = "an" if export == "ONNX" else "a"
        raise ModelFileError(
            f"{path}: {article} {export} export, for running the model in other runtimes; --model takes "
            "a .pt model file (the bundled default, asr train's best.pt, or asr export --format int8)"
        )
    try:
        # torch warns about some archives it cannot read this way; the error below says it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for a bad file
        raise ModelFileError(f"{path}: not a readable model file") from None
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path}: not an asr model file")
    return obj


#: Field tags that can follow ``ir_version`` at the start of an ONNX ModelProto.
_ONNX_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72}


def _export_format(path: str) -> str:
    """The name of the ``asr export`` format (TorchScript, ONNX) ``path`` holds, else "".

    A TorchScript archive is a zip like ``torch.save``'s, told apart by its
    ``constants.pkl`` and ``code/`` entries; an ONNX file is a protobuf that starts with
    its ``ir_version`` field (``torch.save`` files start with a zip or pickle header).
    """
    if os.path.isdir(path):
        return ""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return ""
        inner = {name.split("/", 1)[-1] for name in names}
        if "constants.pkl" in inner or any(name.startswith("code/") for name in inner):
            return "TorchScript"
        return ""
    with open(path, "rb") as f:
        head = f.read(3)
    onnx_header = len(head) == 3 and head[0] == 0x08 and head[1] < 0x80 and head[2] in _ONNX_TAGS
    if path.lower().endswith(".onnx") or onnx_header:
        return "ONNX"
    return ""


def model_dict(bundle: Bundle, half: bool = False) -> dict[str, Any]:
    """The plain-value form of a bundle; ``half`` stores float weights as float16."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in bundle.model.state_dict().items()
    }
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_config": bundle.model.config.to_dict(),
        "feature_config": bundle.features.to_dict(),
        "vocabulary": list(bundle.vocabulary.tokens),
        "state_dict": state,
        "metadata": dict(bundle.metadata),
    }


def save_model(bundle: Bundle, path: str | os.PathLike[str], half: bool = False) -> None:
    """Write a self-contained model file atomically."""
    atomic_save(model_dict(bundle, half), path)


def is_checkpoint(obj: dict[str, Any]) -> bool:
    """Whether a loaded file is a training checkpoint (``last.pt``: the model plus the
    optimizer, step and settings to resume from) rather than a model file."""
    return isinstance(obj.get("model"), dict) and "optimizer" in obj and "config" in obj


def bundle_from_dict(obj: dict[str, Any], path: str = "") -> Bundle:
    """Rebuild a Bundle from a model dict (or a training checkpoint holding one)."""
    if obj.get("format") != FORMAT:
        obj = obj.get("model", {})
    if obj.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an asr model file")
    if obj.get("version", 0) > VERSION:
        raise ModelFileError(f"{path}: made by a newer asr (format {obj['version']}); upgrade asr")
    try:
        model = AcousticModel(ModelConfig.from_dict(obj["model_config"]))
        state = {k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
        quantized = obj.get("int8")
        if quantized:
            from asr.export import dequantize_entry

            state.update({k: dequantize_entry(q, k) for k, q in quantized.items()})
        model.load_state_dict(state)
        vocabulary = Vocabulary.from_list(obj["vocabulary"])
        features = FeatureConfig.from_dict(obj["feature_config"])
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{path}: damaged model file ({e})") from None
    if model.config.vocab_size != len(vocabulary) or model.config.n_mels != features.n_mels:
        raise ModelFileError(
            f"{path}: inconsistent model file (model outputs {model.config.vocab_size} tokens for a "
            f"{len(vocabulary)}-token vocabulary, reads {model.config.n_mels} mel bins of {features.n_mels})"
        )
    model.eval()
    bundle = Bundle(model, vocabulary, features, dict(obj.get("metadata", {})), path)
    if quantized:
        from asr.export import int8_from_dict

        bundle = int8_from_dict(bundle, quantized, path)
    return bundle


def default_model_path() -> Path:
    """Where the model bundled with the package lives (it may not exist in a dev checkout)."""
    return Path(str(resources.files("asr") / "models" / DEFAULT_MODEL))


def default_lm_path() -> Path:
    """Where the word LM bundled with the package lives (it may not exist)."""
    return Path(str(resources.files("asr") / "models" / DEFAULT_LM))


def load_model(path: str | os.PathLike[str] | None = None, device: str = "cpu") -> Bundle:
    """Load a model file, or the bundled default model when ``path`` is None.

    Accepts a model file or a training checkpoint (``last.pt``) from ``asr train``.
    """
    if path is None:
        path = default_model_path()
        if not path.exists():
            raise ModelFileError(
                "no default model is bundled with this installation; pass --model PATH "
                "(train one with 'asr train')"
            )
    bundle = bundle_from_dict(safe_load(path), os.fspath(path))
    if bundle.metadata.get("quantization") and torch.device(device).type != "cpu":
        raise ModelFileError(f"{path}: an int8 model runs on the CPU only")
    bundle.model.to(device)
    return bundle
