"""int8 quantisation and TorchScript/ONNX export: the exported models compute what ours do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr.checkpoint import Bundle, ModelFileError, load_model, safe_load, save_model
from asr.export import StreamingStep, export_onnx, export_torchscript, is_int8, quantize_int8, save_int8
from asr.features import FeatureConfig
from asr.model import AcousticModel
from asr.text import Vocabulary
from tests.conftest import tiny_config

CHUNK = 16  # feature frames per exported step


@pytest.fixture
def bundle() -> Bundle:
    torch.manual_seed(0)
    model = AcousticModel(tiny_config(hidden=48, layers=2)).eval()
    # Non-trivial normalisation so that a lost buffer would show.
    model.set_normalization(torch.randn(80), torch.rand(80) + 0.5)
    return Bundle(model, Vocabulary(), FeatureConfig())


def _whole(bundle: Bundle, feats: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return bundle.model(feats, torch.tensor([feats.shape[1]]))[0]


def test_int8_file_is_small_safe_and_exact(bundle: Bundle, tmp_path: Path) -> None:
    q = quantize_int8(bundle)
    assert is_int8(q) and not is_int8(bundle)
    save_model(bundle, tmp_path / "f32.pt")
    save_int8(q, tmp_path / "i8.pt")
    safe_load(tmp_path / "i8.pt")  # plain values only: weights_only loading accepts it
    (tmp_path / "plain").write_text("")
    # Readable like any new file (the temporary file it is written through is private).
    assert (tmp_path / "i8.pt").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    f32, i8 = (tmp_path / "f32.pt").stat().st_size, (tmp_path / "i8.pt").stat().st_size
    assert i8 < 0.5 * f32
    loaded = load_model(tmp_path / "i8.pt")
    assert is_int8(loaded)
    feats = torch.randn(1, 200, 80)
    # The file holds the int8 values themselves: loading gives the same model, bit for bit.
    assert torch.equal(_whole(loaded, feats), _whole(q, feats))
    # And int8 stays close to float32.
    ref, out = _whole(bundle, feats), _whole(q, feats)
    assert (out - ref).abs().max() < 0.5
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.8


def _chunked(bundle: Bundle, feats: torch.Tensor, chunk: int) -> torch.Tensor:
    state, parts = None, []
    with torch.no_grad():
        for i in range(0, feats.shape[1], chunk):
            lp, _, state = bundle.model(feats[:, i : i + chunk], torch.tensor([chunk]), state, False)
            parts.append(lp)
    return torch.cat(parts, 1)


def test_int8_streams_close_to_offline(bundle: Bundle) -> None:
    from asr.streaming import Recognizer

    q = quantize_int8(bundle)
    feats = torch.randn(1, 96, 80)
    # Dynamic quantisation scales activations per call, so chunks change the last bits:
    # close to offline, not equal (float32 models are exact, see test_model).
    whole, chunked = _whole(q, feats), _chunked(q, feats, 8)
    assert (chunked - whole).abs().max() < 0.1
    assert (chunked.argmax(-1) == whole.argmax(-1)).float().mean() > 0.9
    Recognizer(q).stream()  # the streaming API takes an int8 bundle


def test_damaged_int8_file_is_a_clear_error(bundle: Bundle, tmp_path: Path) -> None:
    from asr.export import int8_dict

    obj = int8_dict(quantize_int8(bundle))
    key = next(iter(obj["int8"]))
    obj["int8"][key]["values"] = obj["int8"][key]["values"].float()
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="damaged"):
        load_model(tmp_path / "bad.pt")
    save_int8(quantize_int8(bundle), tmp_path / "ok.pt")
    if torch.cuda.is_available():
        pytest.skip("the CPU-only error is checked on machines without a GPU")
    with pytest.raises((ModelFileError, RuntimeError)):
        load_model(tmp_path / "ok.pt", device="cuda")


def _stream(run, bundle: Bundle, feats: torch.Tensor) -> torch.Tensor:
    """Run an exported step over ``feats`` in CHUNK-frame pieces, carrying its state."""
    state = StreamingStep(bundle.model).initial_state(1)
    outputs = []
    for i in range(0, feats.shape[1], CHUNK):
        logprobs, *state = run(feats[:, i : i + CHUNK], *state)
        outputs.append(torch.as_tensor(logprobs))
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("int8", [False, True])
def test_torchscript_step_matches_pytorch(bundle: Bundle, tmp_path: Path, int8: bool) -> None:
    if int8:
        bundle = quantize_int8(bundle)
    export_torchscript(bundle, tmp_path / "m.ts", CHUNK)
    with pytest.warns(FutureWarning):  # torch.jit.load is deprecated, still supported
        scripted = torch.jit.load(str(tmp_path / "m.ts"))
    feats = torch.randn(1, CHUNK * 7, 80)
    with torch.no_grad():
        out = _stream(scripted, bundle, feats)
    # The same chunks through PyTorch (for float32 this also equals the whole signal).
    assert torch.allclose(out, _chunked(bundle, feats, CHUNK), atol=1e-5)
    if not int8:
        assert torch.allclose(out, _whole(bundle, feats), atol=1e-5)


def test_onnx_step_matches_pytorch(bundle: Bundle, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    import json

    import onnx

    export_onnx(bundle, tmp_path / "m.onnx", CHUNK)
    info = json.loads({p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}["asr"])
    assert info["chunk_frames"] == CHUNK and info["vocabulary"] == list(bundle.vocabulary.tokens)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])

    def run(feats, conv1, conv2, gru):
        inputs = {"feats": feats, "conv1": conv1, "conv2": conv2, "gru": gru}
        return session.run(None, {k: torch.as_tensor(v).numpy() for k, v in inputs.items()})

    feats = torch.randn(1, CHUNK * 7, 80)
    out = _stream(run, bundle, feats)
    assert torch.allclose(out, _whole(bundle, feats), atol=1e-4)


def test_bidirectional_models_do_not_export(tmp_path: Path) -> None:
    model = AcousticModel(tiny_config(bidirectional=True, chunk_frames=4, lookahead_frames=2)).eval()
    with pytest.raises(ValueError, match="unidirectional"):
        export_torchscript(Bundle(model, Vocabulary(), FeatureConfig()), tmp_path / "m.ts")


def test_cli_export_and_int8_transcribe(tmp_path: Path, tiny_model_file: Path) -> None:
    from tests.conftest import speak

    wav = tmp_path / "a.wav"
    speak("hello there", wav)

    def asr(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "asr", *args], capture_output=True, text=True, timeout=120
        )

    done = asr("export", "--model", str(tiny_model_file), "--format", "int8", "-o", str(tmp_path / "q.pt"))
    assert done.returncode == 0, done.stderr
    assert "int8" in done.stdout
    float_run = asr("transcribe", "--model", str(tiny_model_file), "--int8", "--format", "json", str(wav))
    file_run = asr("transcribe", "--model", str(tmp_path / "q.pt"), "--format", "json", str(wav))
    assert float_run.returncode == file_run.returncode == 0, float_run.stderr + file_run.stderr
    assert float_run.stdout == file_run.stdout
    bad = asr(
        "export", "--model", str(tiny_model_file), "--format", "onnx", "--int8", "-o", str(tmp_path / "x")
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "float model" in bad.stderr


def _no_warnings_load(path: Path) -> str:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ModelFileError) as error:
            load_model(path)
    assert not caught, [str(w.message) for w in caught]
    return str(error.value)


def test_export_formats_given_as_model_files_are_named(bundle: Bundle, tmp_path: Path) -> None:
    export_torchscript(bundle, tmp_path / "m.ts", CHUNK)
    message = _no_warnings_load(tmp_path / "m.ts")
    assert "TorchScript export" in message and "other runtimes" in message and ".pt model file" in message
    assert "\n" not in message
    # An ONNX ModelProto starts with its ir_version field, then e.g. the producer name.
    (tmp_path / "m.bin").write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x062.14.1:" + bytes(64))
    assert "an ONNX export" in _no_warnings_load(tmp_path / "m.bin")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert "an ONNX export" in _no_warnings_load(tmp_path / "junk.onnx")
    # A real model file still loads, and other files keep the general message.
    save_model(bundle, tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt").vocabulary == bundle.vocabulary
    (tmp_path / "junk.pt").write_bytes(b"\x08junk")
    assert "not a readable model file" in _no_warnings_load(tmp_path / "junk.pt")


def test_onnx_export_given_as_a_model_file_is_named(bundle: Bundle, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    export_onnx(bundle, tmp_path / "m.model", CHUNK)  # named by its contents, not its suffix
    assert "an ONNX export" in _no_warnings_load(tmp_path / "m.model")


def test_cli_transcribe_with_a_torchscript_model_is_one_line(tmp_path: Path, tiny_model_file: Path) -> None:
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    run = [sys.executable, "-m", "asr"]
    done = subprocess.run(
        [
            *run,
            "export",
            "--model",
            str(tiny_model_file),
            "--format",
            "torchscript",
            "-o",
            str(tmp_path / "new" / "m.ts"),  # a folder that does not exist yet is made
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*run, "transcribe", str(tmp_path / "a.wav"), "--model", str(tmp_path / "new" / "m.ts")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Warning" not in done.stderr, done.stderr
    assert "TorchScript export" in done.stderr and "--model takes a .pt model file" in done.stderr


@pytest.mark.parametrize("fmt", ["int8", "torchscript", "onnx"])
def test_export_to_an_unwritable_place_is_one_line(
    tmp_path: Path, tiny_model_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch, fmt: str
) -> None:
    from asr.cli import main

    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["export", "--model", str(tiny_model_file), "--format", fmt, "-o", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err == f"asr: error: {folder}: is a directory\n"
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    assert main(["export", "--model", str(tiny_model_file), "--format", fmt, "-o", str(locked / "m")]) == 2
    assert (
        capsys.readouterr().err
        == f"asr: error: {locked / 'm'}: permission denied (cannot write in {locked})\n"
    )
