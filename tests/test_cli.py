"""The asr command as a user runs it: exit codes, one-line errors, output files."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def asr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    path = tmp_path / "tone.flac"
    t = np.arange(24000) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * 300 * t), 16000)
    return path


def test_a_bad_file_does_not_stop_the_batch(tmp_path: Path, audio: Path, tiny_model_file: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp3"
    text.write_text("not audio at all " * 50)
    missing = tmp_path / "missing.ogg"
    # A header that claims 1 Hz would "resample" into hours of audio and all the memory.
    slow = tmp_path / "rate1.wav"
    sf.write(slow, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    header = bytearray(slow.read_bytes())
    header[24:28] = (1).to_bytes(4, "little")
    slow.write_bytes(bytes(header))
    done = asr(
        "transcribe",
        "--model",
        str(tiny_model_file),
        "--format",
        "json",
        str(empty),
        str(audio),
        str(missing),
        str(text),
        str(slow),
        str(audio),
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("asr: error:")]
    assert len(errors) == 5
    assert f"{empty}: empty file" in errors[0] and f"{missing}: no such file" in errors[1]
    assert str(text) in errors[2] and f"{slow}: corrupt header (sample rate 1 Hz" in errors[3]
    assert "4 of 6 files failed" in errors[4]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["audio"] for r in results] == [str(audio), str(audio)]
    assert results[0]["duration"] == pytest.approx(1.5, abs=0.01)


def test_standard_input_is_a_file_named_dash(tmp_path: Path, audio: Path, tiny_model_file: Path) -> None:
    run = [sys.executable, "-m", "asr", "transcribe", "--model", str(tiny_model_file), "--format", "json"]
    piped = subprocess.run([*run, "-"], input=audio.read_bytes(), capture_output=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    named = asr("transcribe", "--model", str(tiny_model_file), "--format", "json", str(audio))
    assert json.loads(piped.stdout) == {**json.loads(named.stdout), "audio": "-"}
    bad = subprocess.run([*run, "-"], input=b"not audio at all", capture_output=True, timeout=120)
    assert bad.returncode == 1 and b"asr: error: -: not a readable audio file" in bad.stderr


def test_output_dir_gets_one_file_per_input(tmp_path: Path, audio: Path, tiny_model_file: Path) -> None:
    for fmt in ("srt", "vtt", "txt"):
        done = asr(
            "transcribe",
            "--model",
            str(tiny_model_file),
            "--format",
            fmt,
            "--output-dir",
            str(tmp_path / "out"),
            str(audio),
        )
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "out" / f"tone.{fmt}").exists()
    assert (tmp_path / "out" / "tone.vtt").read_text().startswith("WEBVTT")


def test_usage_errors_exit_2(tmp_path: Path, audio: Path) -> None:
    done = asr("transcribe")
    assert done.returncode == 2 and "usage:" in done.stderr
    done = asr("transcribe", "--format", "docx", str(audio))
    assert done.returncode == 2
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    done = asr("transcribe", "--model", str(bad), str(audio))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"asr: error: {bad}: not a readable model file"


def test_eval_reports_wer_and_cer(corpus: Path, tiny_model_file: Path) -> None:
    done = asr("eval", str(corpus), "--model", str(tiny_model_file), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["overall"]["utterances"] == 8
    # An untrained model gets (nearly) every word wrong.
    assert report["overall"]["wer"] >= 0.9
    assert len(report["utterances"]) == 8
    # Each utterance carries its own counts, and they add up to the overall figures.
    overall = report["overall"]
    assert sum(u["reference_words"] for u in report["utterances"]) == overall["reference_words"]
    errors = overall["substitutions"] + overall["deletions"] + overall["insertions"]
    assert sum(u["word_errors"] for u in report["utterances"]) == errors
    # The text report names the decoder first: a model of your own decodes greedily.
    done = asr("eval", str(corpus), "--model", str(tiny_model_file))
    assert done.returncode == 0 and done.stdout.startswith("decoder: greedy\n")


def test_train_reports_a_bad_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio": "a.wav"}\n')
    done = asr("train", "--train", str(manifest), "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"asr: error: {manifest}: no utterance with readable audio"
    manifest.write_text('{"text": "no audio path"}\n')
    done = asr("train", "--train", str(manifest), "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"asr: error: {manifest}:1: bad manifest line")


def test_transcribe_stream(audio: Path, tiny_model_file: Path) -> None:
    from asr.checkpoint import load_model
    from asr.streaming import Recognizer, transcribe_stream

    done = asr("transcribe", "--stream", "--format", "json", "--model", str(tiny_model_file), str(audio))
    assert done.returncode == 0, done.stderr
    obj = json.loads(done.stdout)
    expected = transcribe_stream(audio, Recognizer(load_model(tiny_model_file)))
    assert obj["text"] == expected.text and obj["text"]
    assert [(w["word"], w["start"], w["end"]) for w in obj["words"]] == [
        (w.word, w.start, w.end) for w in expected.words
    ]
    # Plain text: one line per utterance, printed as each one ends.
    done = asr("transcribe", "--stream", "--model", str(tiny_model_file), str(audio))
    assert done.returncode == 0 and done.stdout.strip() == expected.text


def test_bad_settings_are_one_line_errors(tmp_path: Path, audio: Path, tiny_model_file: Path) -> None:
    import torch
    from conftest import tiny_config

    from asr.checkpoint import Bundle, save_model
    from asr.features import FeatureConfig
    from asr.model import AcousticModel
    from asr.text import Vocabulary

    bi = tmp_path / "bi.pt"
    save_model(Bundle(AcousticModel(tiny_config(bidirectional=True)), Vocabulary(), FeatureConfig()), bi)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": str(audio), "text": "x", "duration": 1.5}) + "\n")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    lying = tmp_path / "lying.pt"
    raw = torch.load(tiny_model_file, weights_only=True)
    raw["vocabulary"] = raw["vocabulary"][:10]
    torch.save(raw, lying)
    cases = [
        (
            [
                "transcribe",
                "--model",
                str(tiny_model_file),
                "--decoder",
                "beam",
                "--beam-size",
                "0",
                str(audio),
            ],
            "must be at least 1",
        ),
        (["transcribe", "--stream", "--model", str(bi), str(audio)], "cannot stream"),
        (["eval", str(binary), "--model", str(tiny_model_file)], "not a text (UTF-8 JSON Lines) manifest"),
        (
            ["transcribe", "--model", str(tiny_model_file), "--output-dir", str(blocker), str(audio)],
            f"--output-dir {blocker}: not a directory",
        ),
        (["transcribe", "--model", str(lying), str(audio)], "inconsistent model file"),
        (
            ["train", "--train", str(manifest), "--out", str(tmp_path / "r"), "--chunk-frames", "4"],
            "bidirectional",
        ),
    ]
    for args, message in cases:
        done = asr(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and message in done.stderr, done.stderr


def test_output_dir_keeps_inputs_with_the_same_name(
    tmp_path: Path, audio: Path, tiny_model_file: Path
) -> None:
    other = tmp_path / "b"
    other.mkdir()
    twin = other / audio.name
    twin.write_bytes(audio.read_bytes())
    done = asr(
        "transcribe",
        "--model",
        str(tiny_model_file),
        "--output-dir",
        str(tmp_path / "o"),
        str(audio),
        str(twin),
    )
    assert done.returncode == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["tone-2.txt", "tone.txt"]
    # The renamed one is reported, so the user knows which input went where.
    assert (
        done.stderr.strip()
        == f"{twin}: written to {tmp_path / 'o' / 'tone-2.txt'} (an earlier input took tone.txt)"
    )


def test_several_files_stay_apart_on_stdout(audio: Path, tiny_model_file: Path) -> None:
    model = ["--model", str(tiny_model_file)]
    # Two subtitle documents cannot share stdout: refused before any decoding.
    for fmt in ("srt", "vtt"):
        done = asr("transcribe", *model, "--format", fmt, str(audio), str(audio))
        assert done.returncode == 2 and not done.stdout
        assert (
            done.stderr.strip()
            == f"asr: error: --format {fmt} with several files needs --output-dir (one subtitle file each)"
        )
    # Streamed text lines name their file, as the batch output does.
    done = asr("transcribe", *model, "--stream", str(audio), str(audio))
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines and all(line.startswith(f"{audio}: ") for line in lines)
    assert (
        lines
        == [
            f"{audio}: {line}"
            for line in asr("transcribe", *model, "--stream", str(audio)).stdout.splitlines()
        ]
        * 2
    )


def test_help_shows_real_defaults_and_version() -> None:
    import asr as package
    from asr.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        text = sub.format_help()
        assert "(default: None)" not in text and "default: the bundled model) (default" not in text, name
    assert "beams kept by the beam search (default: 16)" in " ".join(
        commands["transcribe"].format_help().split()
    )
    assert "(default: 100)" in commands["eval"].format_help()
    done = asr("--version")
    assert done.returncode == 0 and done.stdout.strip().startswith("asr ") and package.__name__ == "asr"


def test_eval_plot_without_matplotlib_fails_before_decoding(corpus: Path, tiny_model_file: Path) -> None:
    # matplotlib made unimportable: the error comes first, with no figures computed.
    script = (
        "import sys; sys.modules['matplotlib'] = None; from asr.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "eval", str(corpus), "--model", str(tiny_model_file), "--plot", "p"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "WER" not in done.stdout
    assert done.stderr.strip() == "asr: error: plots need matplotlib: pip install matplotlib"


def test_a_manifest_without_durations_reads_them_from_the_audio(
    corpus: Path, tmp_path: Path, tiny_model_file: Path
) -> None:
    from asr.data import ManifestError, read_manifest

    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    bare = tmp_path / "bare.jsonl"
    bare.write_text(
        "".join(
            json.dumps({"audio": str(corpus.parent / r["audio"]), "text": r["text"]}) + "\n" for r in rows
        )
    )
    read = read_manifest(bare)
    assert [u.duration for u in read] == pytest.approx([r["duration"] for r in rows], abs=1e-3)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "no audio"}\n{"audio": "gone.wav"}\n')
    with pytest.raises(
        ManifestError, match=r'broken.jsonl:1: bad manifest line \(each line needs an "audio" path\)'
    ):
        read_manifest(broken)
    # A missing file is the evaluation's to report, one file among the others.
    partly = tmp_path / "partly.jsonl"
    partly.write_text(bare.read_text() + json.dumps({"audio": "gone.wav", "text": "yes"}) + "\n")
    assert read_manifest(partly)[-1].duration == 0.0
    done = asr("eval", str(partly), "--model", str(tiny_model_file), "--json")
    assert done.returncode == 1 and "gone.wav: no such file" in done.stderr
    assert json.loads(done.stdout)["overall"]["utterances"] == len(rows)


def test_beam_options_nbest_and_hotwords(tmp_path: Path, audio: Path, tiny_model_file: Path) -> None:
    arpa = tmp_path / "lm.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=4\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\n-1.0\t<unk>\n-0.6\tgo\n\\end\\\n"
    )
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("go\nstop\n")
    done = asr(
        "transcribe", "--model", str(tiny_model_file), "--format", "json", "--nbest", "3",
        "--lm", str(arpa), "--hotword", "stop:2", "--lexicon", str(lexicon), str(audio),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert 1 <= len(result["nbest"]) <= 3
    assert result["nbest"][0]["text"] == result["text"]
    assert sum(alt["posterior"] for alt in result["nbest"]) == pytest.approx(1.0, abs=1e-3)
    assert set(result["text"].split()) <= {"go", "stop"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--decoder", "greedy", "--hotword", "x"], "need --decoder beam"),
        (["--lm", "missing.arpa"], "no such language model file"),
        (["--hotword", "x:lots"], "must be a number"),
        (["--decoder", "beam", "--lexicon", "missing.txt"], "no such lexicon file"),
    ],
)
def test_bad_decoder_options_are_usage_errors(
    audio: Path, tiny_model_file: Path, flags: list[str], message: str
) -> None:
    done = asr("transcribe", "--model", str(tiny_model_file), *flags, str(audio))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_train_will_not_overwrite_a_run_without_resume(tmp_path: Path, corpus: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"an earlier run's checkpoint")
    done = asr("train", "--train", str(corpus), "--out", str(run), "--max-steps", "1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"asr: error: --out {run} already holds a run ({run / 'last.pt'}); add --resume to "
        "continue it, or give another --out for a new run"
    )
    assert (run / "last.pt").read_bytes() == b"an earlier run's checkpoint"
    assert sorted(p.name for p in run.iterdir()) == ["last.pt"]


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``asr ARGS`` in this process (for errors raised before any work): exit code, stderr."""
    from asr.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def test_resume_refuses_what_it_cannot_honour(
    tmp_path: Path, corpus: Path, tiny_model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import asdict

    from asr.checkpoint import atomic_save, safe_load
    from asr.train import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    saved = asdict(TrainConfig(train=str(corpus), out=str(run), lr=2e-3, seed=3))
    model = safe_load(tiny_model_file)
    atomic_save({"model": model, "optimizer": {}, "config": saved, "step": 5}, run / "last.pt")
    train = ["train", "--train", str(corpus), "--out", str(run), "--resume"]
    # A new schedule, batches or seed would be silently ignored: say so instead.
    for flags, what in [
        (["--lr", "1e-5"], "--lr: a resumed run keeps its own setting (0.002, not 1e-05)"),
        (["--seed=4"], "--seed: a resumed run keeps its own setting (3, not 4)"),
        (["--no-augment"], "augmentation: a resumed run keeps its own setting (True, not False)"),
    ]:
        code, err = run_main(capsys, *train, *flags)
        assert code == 2 and what in err and f"--init {run / 'last.pt'} --out NEW_FOLDER" in err, err
    # The run's own values, given again, are no change; nor are defaults given implicitly.
    from asr.train import _check_resumed_settings

    _check_resumed_settings(saved, TrainConfig(train="", out="", lr=2e-3), {"lr"}, str(run))
    _check_resumed_settings(saved, TrainConfig(train="", out=""), {"train", "out"}, str(run))
    # A model file where the checkpoint should be (a calibration tool wrote it, say).
    atomic_save(model, run / "last.pt")
    code, err = run_main(capsys, *train)
    assert code == 2 and "a model file, not a training checkpoint" in err, err
    # A device that cannot train is refused before the output folder is made.
    for device, what in [("gpu", "not a device name"), ("mps", "training runs on cpu or cuda")]:
        out = tmp_path / f"new-{device}"
        code, err = run_main(capsys, "train", "--train", str(corpus), "--out", str(out), "--device", device)
        assert code == 2 and f"--device {device}: {what}" in err and not out.exists(), err


def test_eval_says_what_it_could_not_score(tmp_path: Path, corpus: Path, tiny_model_file: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    done = asr("eval", str(empty), "--model", str(tiny_model_file))
    assert done.returncode == 2 and done.stderr.strip() == f"asr: error: {empty}: no utterances to score"
    assert done.stdout == ""
    good = corpus.read_text().splitlines()[:2]
    missing = [json.dumps({"audio": str(tmp_path / f"gone{i}.wav"), "text": "x"}) for i in range(2)]
    some = tmp_path / "some.jsonl"
    some.write_text("\n".join([good[0].replace('"u0', f'"{corpus.parent}/u0'), *missing]) + "\n")
    done = asr("eval", str(some), "--model", str(tiny_model_file), "--json")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "asr: error: 2 of 3 utterances failed and are not in the scores"
    )
    report = json.loads(done.stdout)
    assert report["overall"]["utterances"] == 1 and len(report["failed"]) == 2
    # A greedy run keeps the keys of a beam run, null where only the beam search has a setting.
    assert report["decoder"]["decoder"] == "greedy"
    assert report["decoder"]["lm"] is None and report["decoder"]["beam_size"] is None
    none = tmp_path / "none.jsonl"
    none.write_text("\n".join(missing) + "\n")
    done = asr("eval", str(none), "--model", str(tiny_model_file))
    assert done.returncode == 1 and done.stdout == ""  # no table of zeros that reads as perfect
    assert (
        done.stderr.strip().splitlines()[-1]
        == "asr: error: 2 of 2 utterances failed and are not in the scores"
    )
    # A line without "text" expects silence; a path out of the manifest's folder (..)
    # is grouped by the folder holding the file, and reported without the detour.
    row = json.loads(good[0])
    row["audio"] = f"../{corpus.parent.name}/{row.pop('audio')}"
    del row["text"]
    assert tmp_path.parent == corpus.parent.parent  # both in pytest's base folder
    silent = tmp_path / "silent.jsonl"
    silent.write_text(json.dumps(row) + "\n")
    done = asr("eval", str(silent), "--model", str(tiny_model_file), "--json")
    assert done.returncode == 0, done.stderr
    assert 'note: 1 utterance has no reference words (an empty or missing "text")' in done.stderr
    report = json.loads(done.stdout)
    assert list(report["subsets"]) == [corpus.parent.name]
    assert ".." not in report["utterances"][0]["audio"]
    overall = report["overall"]
    assert overall["utterances"] == 1 and overall["reference_words"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["transcribe", "--lm-weight", "nan", "a.wav"], "--lm-weight: must be a number >= 0, got nan"),
        (["eval", "--lm-weight", "-5", "m.jsonl"], "--lm-weight: must be a number >= 0, got -5"),
        (["listen", "--word-bonus", "inf"], "--word-bonus: must be a finite number, got inf"),
        (["serve", "--port", "70000"], "--port: must be a TCP port, 0-65535"),
        (["serve", "--port", "-1"], "--port: must be a TCP port, 0-65535"),
        (["listen", "--file", "x.wav", "--speed", "-1"], "--speed: must be a number >= 0, got -1"),
        (["listen", "--file", "x.wav", "--speed", "nan"], "--speed: must be a number >= 0, got nan"),
        (["listen", "--speed", "2"], "asr: error: --speed applies to --file"),
        (
            ["listen", "--file", "x.wav", "--device", "1"],
            "asr: error: --device and --samplerate choose a microphone",
        ),
        (["train", "--train", "m.jsonl", "--out", "r", "--lr", "inf"], "--lr: must be a positive number"),
        (["train", "--train", "m.jsonl", "--out", "r", "--threads", "-1"], "--threads: must be 0 or more, got -1"),
        (["train", "--train", "m", "--out", "r", "--checkpoint-every", "0"], "--checkpoint-every: must be at least 1"),
        (["train", "--train", "m", "--out", "r", "--max-minutes", "-5"], "--max-minutes: must be a number >= 0"),
        (["train", "--train", "m", "--out", "r", "--hidden", "0"], "--hidden: must be at least 1, got 0"),
        (["transcribe", "--beam-size", "x", "a.wav"], "--beam-size: must be a whole number, got 'x'"),
        (["transcribe", "--lm-weight", "abc", "a.wav"], "--lm-weight: must be a number, got 'abc'"),
        (["transcribe", "--nbest", "3", "a.wav"], "--nbest lists alternatives of the whole file in --format json only"),
        (["transcribe", "--nbest", "3", "--format", "json", "--stream", "a.wav"], "(--stream decodes utterance by"),
        (["transcribe", "--bogus", "a.wav"], "asr transcribe: error: unrecognized arguments: --bogus"),
        (["eval", "--chunk-ms", "300", "m.jsonl"], "asr: error: --chunk-ms applies to --stream"),
    ],
)  # fmt: skip
def test_out_of_range_options_are_one_line_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # In this process: these fail before any model is read, so no need for a fresh one.
    code, err = run_main(capsys, *args)
    assert code == 2 and "Traceback" not in err
    assert message in err.strip().splitlines()[-1], err
    if "unrecognized" in message:  # the subcommand's usage, not the top level's
        assert err.startswith("usage: asr transcribe")


def test_train_help_shows_the_model_defaults() -> None:
    from dataclasses import fields

    from asr.cli import MODEL_DEFAULTS, build_parser
    from asr.model import ModelConfig

    defaults = {f.name: f.default for f in fields(ModelConfig)}
    assert {k: defaults[k] for k in MODEL_DEFAULTS} == MODEL_DEFAULTS
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    text = " ".join(commands["train"].format_help().split())
    for phrase in [
        "--epochs EPOCHS epochs at most (--max-steps or --max-minutes may stop the run sooner) (default: 30)",
        "--lr LR peak learning rate (default: 0.001)",
        "keep it well below a short run's length) (default: 300)",
        "--seed SEED seed of the weights, batches and augmentation (default 0)",
    ]:
        assert phrase in text, phrase
    assert f"GRU width (default: {defaults['hidden']};" in text


def test_import_is_light_and_every_public_name_loads() -> None:
    """``import asr`` does not wait for PyTorch; the names load on first use."""
    code = "import sys, asr; print('torch' in sys.modules); asr.Recognizer; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr
    import asr

    assert sorted(asr.__all__) == sorted(asr._HOMES)
    for name in asr.__all__:
        assert getattr(asr, name) is getattr(importlib.import_module(asr._HOMES[name]), name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        asr.nope  # noqa: B018


def test_ctrl_c_before_any_work_is_one_line(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    import asr.cli

    def interrupted():
        raise KeyboardInterrupt  # as if Ctrl-C landed while PyTorch was importing

    monkeypatch.setattr(asr.cli, "build_parser", interrupted)
    assert asr.cli.main(["transcribe", "a.wav"]) == 130
    assert capsys.readouterr().err == "asr: error: interrupted\n"
