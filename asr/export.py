"""Smaller and portable models: int8 dynamic quantisation, TorchScript and ONNX export.

* ``quantize_int8(bundle)``: the GRU and linear weights become int8 (activations are
  quantised on the fly, per batch). It runs on the CPU only. ``save_int8`` writes it as a
  model file that still loads with ``weights_only=True``: the int8 values and their
  scales are stored as plain tensors and numbers, and ``load_model`` rebuilds exactly
  the same quantised modules.
* ``export_torchscript`` / ``export_onnx``: one streaming step of a unidirectional
  model, ``(feats, conv1, conv2, gru) -> (logprobs, conv1, conv2, gru)``, traced for a
  fixed chunk of feature frames. Feed log-mels (``asr.features.log_mel``) chunk by
  chunk and carry the three state tensors; the log-probs equal ``AcousticModel``'s.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from asr.checkpoint import Bundle, ModelFileError, atomic_save, model_dict
from asr.model import AcousticModel, ModelState

#: The tag a model file carries when its GRU and linear weights are int8.
INT8 = "dynamic-int8"
#: Feature frames per exported step (320 ms); a multiple of the model's subsampling.
EXPORT_CHUNK_FRAMES = 32


def _quantize_dynamic(model: nn.Module) -> nn.Module:
    # torch.ao.quantization is deprecated in favour of torchao, whose int8 path does not
    # cover nn.GRU; the eager dynamic path still works and is what we need here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notes of torch.ao and qint8 tensors
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {nn.GRU, nn.Linear}, dtype=torch.qint8)


def is_int8(bundle: Bundle) -> bool:
    """Whether the bundle's model has int8 (dynamically quantised) layers."""
    return bool(_quantized_modules(bundle.model))


def quantize_int8(bundle: Bundle) -> Bundle:
    """A copy of ``bundle`` with int8 GRU and linear layers (CPU only); ``bundle`` is unchanged."""
    if is_int8(bundle):
        return bundle
    model = copy.deepcopy(bundle.model).cpu().eval()
    quantized = _quantize_dynamic(model)
    metadata = {**bundle.metadata, "quantization": INT8}
    return Bundle(quantized, bundle.vocabulary, bundle.features, metadata, bundle.path)  # type: ignore[arg-type]


def _quantized_modules(model: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.nn.quantized import dynamic as qd

    return {name: m for name, m in model.named_modules() if isinstance(m, (qd.Linear, qd.GRU))}


def _weights(module: nn.Module) -> dict[str, tuple[Tensor, Tensor | None]]:
    """A quantised module's ``{weight name: (qint8 weight, float bias)}``."""
    from torch.ao.nn.quantized import dynamic as qd

    if isinstance(module, qd.Linear):
        return {"weight": (module.weight(), module.bias())}
    weights, biases = module.get_weight(), module.get_bias()
    return {name: (w, biases[name.replace("weight", "bias")]) for name, w in weights.items()}


def int8_dict(bundle: Bundle) -> dict[str, Any]:
    """The plain-value form of an int8 bundle.

    Quantised weights go to ``"int8"`` as ``{"values": int8 tensor, "scale", "zero_point"}``
    under their float model's state-dict names; everything else stays float32.
    """
    if not is_int8(bundle):
        raise ValueError("not an int8 model: quantize_int8() it first")
    float_model = AcousticModel(bundle.model.config)
    state = float_model.state_dict()
    quantized: dict[str, dict[str, Any]] = {}
    own = {k: v for k, v in bundle.model.state_dict().items() if isinstance(v, Tensor)}
    for name, module in _quantized_modules(bundle.model).items():
        for param, (weight, bias) in _weights(module).items():
            key = f"{name}.{param}"
            quantized[key] = {
                "values": weight.int_repr().clone(),
                "scale": float(weight.q_scale()),
                "zero_point": int(weight.q_zero_point()),
            }
            state[key] = weight.dequantize()
            if bias is not None:
                state[key.replace("weight", "bias")] = bias.detach().clone()
    for key in state:
        if key in own and not own[key].is_quantized:
            state[key] = own[key]
    float_model.load_state_dict(state)
    plain = Bundle(float_model, bundle.vocabulary, bundle.features, bundle.metadata, bundle.path)
    obj = model_dict(plain)
    for key in quantized:
        del obj["state_dict"][key]  # its int8 form below is the one that counts
    obj["int8"] = quantized
    return obj


def save_int8(bundle: Bundle, path: str | os.PathLike[str]) -> None:
    """Write an int8 model file (about a quarter of float32; loads with ``load_model``)."""
    atomic_save(int8_dict(bundle), path)


def int8_from_dict(float_bundle: Bundle, quantized: dict[str, Any], path: str = "") -> Bundle:
    """Rebuild the exact int8 model from a model file's ``"int8"`` section.

    ``float_bundle`` holds the file's other weights; the int8 values replace what
    quantisation would otherwise recompute, so the loaded model equals the saved one.
    """
    try:
        exact = {key: _qint8(q, key) for key, q in quantized.items()}
        bundle = quantize_int8(float_bundle)
        from torch.ao.nn.quantized import dynamic as qd

        for name, module in _quantized_modules(bundle.model).items():
            current = _weights(module)
            if isinstance(module, qd.GRU):  # takes a dict of every layer's weights and biases
                table = {}
                for param, (_, bias) in current.items():
                    table[param] = exact[f"{name}.{param}"]
                    table[param.replace("weight", "bias")] = bias
                module.set_weight_bias(table)
            else:
                module.set_weight_bias(exact[f"{name}.weight"], current["weight"][1])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: damaged int8 model file ({e})") from None
    bundle.path = path
    return bundle


def dequantize_entry(entry: Any, key: str = "") -> Tensor:
    """A model file's int8 entry as the float32 weight it stands for."""
    return _qint8(entry, key).dequantize()


def _qint8(entry: Any, key: str) -> Tensor:
    values = entry["values"]
    if not isinstance(values, Tensor) or values.dtype != torch.int8:
        raise ValueError(f"int8 weight {key} is not an int8 tensor")
    scale, zero = float(entry["scale"]), int(entry["zero_point"])
    # Exact: every value is an integer multiple of the scale, so rounding restores it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.quantize_per_tensor((values.float() - zero) * scale, scale, zero, torch.qint8)


class StreamingStep(nn.Module):
    """One streaming step of a unidirectional model, with the state as plain tensors.

    ``forward(feats (batch, frames, n_mels), conv1, conv2, gru)`` ->
    ``(logprobs (batch, frames / 4, vocab), conv1, conv2, gru)``; start from
    ``initial_state(batch)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        config = model.config  # type: ignore[union-attr]
        if config.bidirectional:
            raise ValueError(
                "only unidirectional models export as a streaming step (a bidirectional model's "
                "lookahead buffer changes size from chunk to chunk)"
            )
        self.model = model
        self.hidden = config.hidden

    def initial_state(self, batch: int = 1) -> tuple[Tensor, Tensor, Tensor]:
        """``conv1`` ``(batch, 1, 2, n_mels)``, ``conv2`` ``(batch, channels, 2, n_mels / 2)``,
        ``gru`` ``(layers, batch, hidden)``: all zeros."""
        state = self.model.initial_state(batch)  # type: ignore[operator]
        return state.conv1, state.conv2, state.gru

    def forward(
        self, feats: Tensor, conv1: Tensor, conv2: Tensor, gru: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        batch, frames = feats.shape[0], feats.shape[1]
        lengths = torch.full((batch,), frames, dtype=torch.long)
        pending = feats.new_zeros(batch, 0, self.hidden)
        logprobs, _, state = self.model(feats, lengths, ModelState(conv1, conv2, gru, pending), False)
        return logprobs, state.conv1, state.conv2, state.gru


def _example(step: StreamingStep, chunk_frames: int) -> tuple[Tensor, ...]:
    if chunk_frames <= 0 or chunk_frames % 4:
        raise ValueError(f"chunk_frames must be a positive multiple of 4, got {chunk_frames}")
    n_mels = step.model.config.n_mels  # type: ignore[union-attr]
    return (torch.randn(1, chunk_frames, n_mels), *step.initial_state(1))


def export_torchscript(
    bundle: Bundle, path: str | os.PathLike[str], chunk_frames: int = EXPORT_CHUNK_FRAMES
) -> None:
    """Trace the streaming step for ``chunk_frames`` feature frames and save it (``torch.jit.load``).

    Works for float and int8 models. The vocabulary and feature settings go into the
    archive's ``extra_files`` as ``asr.json``.
    """
    import json

    step = StreamingStep(copy.deepcopy(bundle.model).cpu().eval())
    example = _example(step, chunk_frames)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and torch.jit deprecation notes
        traced = torch.jit.trace(step, example, check_trace=False)
        info = json.dumps(_export_info(bundle, chunk_frames))
        torch.jit.save(traced, os.fspath(path), _extra_files={"asr.json": info})


def export_onnx(
    bundle: Bundle, path: str | os.PathLike[str], chunk_frames: int = EXPORT_CHUNK_FRAMES
) -> None:
    """Export the float streaming step to ONNX (opset 17) for ``chunk_frames`` feature frames.

    Needs the ``onnx`` package (``pip install 'asr[export]'``). The input names are
    ``feats, conv1, conv2, gru`` and the outputs ``logprobs, conv1_out, conv2_out, gru_out``;
    the vocabulary and feature settings are in the model's metadata under ``asr``.
    """
    import json

    if is_int8(bundle):
        raise ValueError("ONNX export takes a float model (int8 dynamic GRUs have no ONNX form)")
    try:
        import onnx
    except ImportError:
        raise RuntimeError("ONNX export needs the onnx package: pip install 'asr[export]'") from None
    step = StreamingStep(copy.deepcopy(bundle.model).cpu().eval())
    example = _example(step, chunk_frames)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step,
            example,
            os.fspath(path),
            input_names=["feats", "conv1", "conv2", "gru"],
            output_names=["logprobs", "conv1_out", "conv2_out", "gru_out"],
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(os.fspath(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "asr", json.dumps(_export_info(bundle, chunk_frames))
    onnx.save(proto, os.fspath(path))


def _export_info(bundle: Bundle, chunk_frames: int) -> dict[str, Any]:
    return {
        "chunk_frames": chunk_frames,
        "vocabulary": list(bundle.vocabulary.tokens),
        "feature_config": bundle.features.to_dict(),
        "model_config": bundle.model.config.to_dict(),  # type: ignore[union-attr]
        "frame_seconds": bundle.frame_seconds,
    }
