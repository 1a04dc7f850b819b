"""The ``asr`` command: parses arguments and calls the library, nothing more.

Exit codes: 0 when everything succeeded, 1 when some inputs failed (each reported on
stderr), 2 for usage errors (bad options, a model that cannot be loaded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the library lazily, so that --help stays fast
    from asr.checkpoint import Bundle
    from asr.streaming import DecoderOptions

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: asr.model.ModelConfig's defaults, for --help without importing torch (a test keeps them equal).
MODEL_DEFAULTS = {"hidden": 320, "layers": 4, "conv_channels": 32, "dropout": 0.1}


def _error(message: str) -> None:
    print(f"asr: error: {message}", file=sys.stderr, flush=True)


def _load(path: str | None, int8: bool = False, int8_optional: bool = False):
    """The model file at ``path`` (the bundled one for None), quantised to int8 if asked.

    Where this torch build cannot quantise (no quantised engine on the platform), an
    asked-for ``int8`` is an error line; an ``int8_optional`` one (a default, not a flag)
    warns and goes on in float32.
    """
    from asr.checkpoint import ModelFileError, load_model

    try:
        bundle = load_model(path)
    except ModelFileError as e:
        _error(str(e))
        raise SystemExit(EXIT_USAGE) from None
    if int8:
        from asr.export import quantize_int8

        try:
            bundle = quantize_int8(bundle)
        except RuntimeError as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if not int8_optional:
                _error(f"int8 is not available in this torch build ({reason}); use the float32 model")
                raise SystemExit(EXIT_USAGE) from None
            print(
                f"warning: int8 is not available in this torch build ({reason}); running float32",
                file=sys.stderr,
                flush=True,
            )
    return bundle


def _add_model_args(p: argparse.ArgumentParser, int8_default: bool = False) -> None:
    p.add_argument("--model", help="model file (default: the bundled model)")
    detail = (
        " (default: on where this torch build can quantise; on a 2-core machine it halves the cost of live 100 ms chunks, to 0.035 x "
        "real time on one thread); --no-int8 runs float32 (an int8 model file stays int8)"
        if int8_default
        else " (faster on CPU)"
    )
    p.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction if int8_default else "store_true",
        default=None if int8_default else False,  # None: on, unless the platform cannot
        help="quantise the GRU and linear layers to int8" + detail,
    )


def _decoder_options(args: argparse.Namespace, bundle: Bundle) -> DecoderOptions:
    """DecoderOptions from the decoding flags; LM, lexicon, hotword or n-best flags
    choose the beam search unless --decoder says otherwise; with none of them the model's
    recommendation decides (the bundled model: beam search with the bundled LM)."""
    from asr.streaming import DecoderOptions, recommended_decoder

    wants_beam = bool(args.lm or args.lexicon or args.hotword or args.nbest > 1)
    decoder = args.decoder or ("beam" if wants_beam else recommended_decoder(bundle))
    if decoder == "greedy" and wants_beam:
        raise ValueError("--lm, --lexicon, --hotword and --nbest need --decoder beam")
    lm = args.lm or "default"
    defaults = DecoderOptions()
    return DecoderOptions(
        decoder=decoder,
        beam_size=args.beam_size,
        lm=None if lm == "none" else lm,
        lm_weight=defaults.lm_weight if args.lm_weight is None else args.lm_weight,
        word_bonus=defaults.word_bonus if args.word_bonus is None else args.word_bonus,
        lexicon=args.lexicon,
        hotwords=tuple(args.hotword),
        nbest=args.nbest,
    )


def _add_decoder_args(p: argparse.ArgumentParser, nbest: bool = True) -> None:
    from asr.tuning import DEFAULT_BEAM_SIZE, DEFAULT_HOTWORD_BOOST, DEFAULT_LM_WEIGHT, DEFAULT_WORD_BONUS

    g = p.add_argument_group("decoding")
    g.add_argument(
        "--decoder",
        choices=["greedy", "beam"],
        help="greedy (best path) or prefix beam search (default: beam when LM, lexicon, hotword or "
        "n-best flags are given, else the model's choice: beam with the bundled model, greedy with yours)",
    )
    g.add_argument(
        "--beam-size", type=_positive, default=DEFAULT_BEAM_SIZE, help="beams kept by the beam search"
    )
    g.add_argument(
        "--lm",
        metavar="ARPA",
        help="word n-gram LM for the beam search: an ARPA file, 'default' (bundled) or 'none' "
        "(default: default, the bundled LM)",
    )
    g.add_argument(
        "--lm-weight", type=_non_negative_float, help=f"LM weight alpha, >= 0 (default {DEFAULT_LM_WEIGHT})"
    )
    g.add_argument(
        "--word-bonus", type=_finite_float, help=f"per-word bonus beta (default {DEFAULT_WORD_BONUS})"
    )
    g.add_argument("--lexicon", metavar="FILE", help="only output words listed in FILE (one per line)")
    g.add_argument(
        "--hotword",
        action="append",
        default=[],
        metavar="WORD[:BOOST]",
        help=f"favour a word or phrase (repeatable; BOOST in log units, default {DEFAULT_HOTWORD_BOOST:g}); implies --decoder beam",
    )
    if nbest:
        g.add_argument(
            "--nbest",
            type=_positive,
            default=1,
            help="alternatives of the whole file in --format json (not with --stream); implies --decoder beam",
        )
    else:
        p.set_defaults(nbest=1)


@contextlib.contextmanager
def _input(path: str) -> Iterator[str]:
    """``path`` itself, or for ``-`` a temporary file holding standard input (any format
    libsndfile reads, as from ``sox in.wav -t flac - | asr transcribe -``); errors name it ``-``."""
    if path != "-":
        yield path
        return
    from asr.audio import AudioError

    data = sys.stdin.buffer.read()
    with tempfile.TemporaryDirectory(prefix="asr-stdin-") as folder:
        held = os.path.join(folder, "stdin")
        Path(held).write_bytes(data)
        try:
            yield held
        except AudioError as e:
            raise AudioError(str(e).replace(held, "-")) from None


def cmd_transcribe(args: argparse.Namespace) -> int:
    from asr.audio import AudioError
    from asr.streaming import make_decoder, transcribe
    from asr.writers import WRITERS, Transcript

    if args.format in ("srt", "vtt") and len(args.files) > 1 and not args.output_dir:
        _error(f"--format {args.format} with several files needs --output-dir (one subtitle file each)")
        return EXIT_USAGE
    if args.nbest > 1 and (args.format != "json" or args.stream):
        why = (
            "--stream decodes utterance by utterance"
            if args.stream
            else f"--format {args.format} has no place for them"
        )
        _error(f"--nbest lists alternatives of the whole file in --format json only ({why})")
        return EXIT_USAGE
    if args.files.count("-") > 1:
        _error("- (standard input) can be read once")
        return EXIT_USAGE
    bundle = _load(args.model, args.int8)
    options = _decoder_options(args, bundle)
    make_decoder(bundle, options)  # a bad LM, lexicon or hotword fails here, once
    write = WRITERS[args.format]
    if args.stream:
        from asr.listen import LiveView
        from asr.streaming import Recognizer, transcribe_stream

        recognizer = Recognizer(bundle, decoder=options)
        # Plain text streams its lines to stdout; other formats show progress on stderr.
        view = LiveView(sys.stdout if args.format == "txt" and not args.output_dir else sys.stderr)
    if args.output_dir:
        if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
            _error(f"--output-dir {args.output_dir}: not a directory")
            return EXIT_USAGE
        os.makedirs(args.output_dir, exist_ok=True)
    failed = 0
    written: set[Path] = set()
    for path in args.files:
        try:
            with _input(path) as source:
                if args.stream:
                    if len(args.files) > 1:
                        view.prefix = f"{path}: "  # as in the batch output: each line names its file
                    result = transcribe_stream(source, recognizer, view.event)
                else:
                    result = transcribe(source, bundle, decoder=options)
        except AudioError as e:
            _error(str(e))
            failed += 1
            continue
        text = write(Transcript(path, result.text, result.words, result.duration, result.nbest))
        if args.output_dir:
            stem = "stdin" if path == "-" else Path(path).stem
            target = _unique(Path(args.output_dir), stem, args.format, written)
            target.write_text(text, encoding="utf-8")
            if target.stem != stem:
                print(
                    f"{path}: written to {target} (an earlier input took {stem}.{args.format})",
                    file=sys.stderr,
                )
        elif args.stream and args.format == "txt":
            pass  # its lines were printed as the utterances ended
        elif args.format == "txt" and len(args.files) > 1:
            sys.stdout.write(f"{path}: {text}")
        else:
            sys.stdout.write(text)
        sys.stdout.flush()
    if failed:
        _error(f"{failed} of {len(args.files)} files failed")
    return EXIT_FAILED if failed else EXIT_OK


def _unique(folder: Path, stem: str, suffix: str, written: set[Path]) -> Path:
    """``folder/stem.suffix``, or ``stem-2.suffix``... when an earlier input took that name."""
    target, n = folder / f"{stem}.{suffix}", 1
    while target in written:
        n += 1
        target = folder / f"{stem}-{n}.{suffix}"
    written.add(target)
    return target


def cmd_train(args: argparse.Namespace) -> int:
    from asr.checkpoint import ModelFileError
    from asr.data import ManifestError
    from asr.train import TrainConfig, TrainingInterrupted, train

    overrides = {
        k: v
        for k, v in {
            "hidden": args.hidden,
            "layers": args.layers,
            "conv_channels": args.conv_channels,
            "dropout": args.dropout,
            "bidirectional": args.bidirectional or None,
            "chunk_frames": args.chunk_frames,
            "lookahead_frames": args.lookahead_frames,
        }.items()
        if v is not None
    }
    config = TrainConfig(
        train=args.train,
        dev=args.dev or "",
        out=args.out,
        model=overrides,
        epochs=args.epochs,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        batch_seconds=args.batch_seconds,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        augment=not args.no_augment,
        sorted_first_epoch=not args.shuffle_first_epoch,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        seed=args.seed,
        amp=args.amp,
        accumulate=args.accumulate,
        ema=args.ema,
        workers=args.workers,
        threads=args.threads,
        device=args.device,
        init=args.init or "",
    )
    try:
        bundle = train(
            config, resume=args.resume, log=lambda m: print(m, flush=True), given=_given(args.argv)
        )
    except (ManifestError, ModelFileError) as e:
        _error(str(e))
        return EXIT_USAGE
    except TrainingInterrupted as e:
        if os.environ.get("RANK", "0") == "0":
            _error(str(e))
        return 130
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        print(f"best model: {bundle.path} (dev CER {bundle.metadata.get('dev_cer', 'n/a')})")
    return EXIT_OK


#: asr train's flags that set a TrainConfig field of another name.
_TRAIN_FIELDS = {"no_augment": "augment", "shuffle_first_epoch": "sorted_first_epoch"}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers by name."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _given(argv: Sequence[str]) -> set[str]:
    """The TrainConfig fields that ``asr train``'s command line set explicitly (however
    spelled: ``--lr=1e-4``, an abbreviation), found by parsing it again with no defaults."""
    parser = build_parser()
    for action in _subcommands(parser)["train"]._actions:
        action.default = argparse.SUPPRESS
    given = vars(parser.parse_known_args(argv)[0])
    return {_TRAIN_FIELDS.get(name, name) for name in given}


def cmd_eval(args: argparse.Namespace) -> int:
    import resource
    import time

    from asr.data import ManifestError, read_manifest
    from asr.evaluate import Report, evaluate_manifest

    if args.ref or args.hyp:
        if args.manifest:
            _error("give a MANIFEST or --ref and --hyp text files, not both")
            return EXIT_USAGE
        return _eval_text_files(args)
    if not args.manifest:
        _error("give a MANIFEST, or --ref and --hyp text files")
        return EXIT_USAGE
    if args.chunk_ms is not None and not args.stream:
        _error("--chunk-ms applies to --stream")
        return EXIT_USAGE
    args.chunk_ms = args.chunk_ms or 100
    if args.plot:
        from asr.plots import pyplot

        try:
            pyplot()  # before decoding, not after it
        except RuntimeError as e:
            _error(str(e))
            return EXIT_USAGE
    try:
        utterances = read_manifest(args.manifest)
    except ManifestError as e:
        _error(str(e))
        return EXIT_USAGE
    if not utterances:
        _error(f"{args.manifest}: no utterances to score")
        return EXIT_USAGE
    from asr.streaming import make_decoder

    began = time.perf_counter()
    bundle = _load(args.model, args.int8)
    options = _decoder_options(args, bundle)
    make_decoder(bundle, options)  # the LM is read here, once: its load is not decoding time
    load_seconds = time.perf_counter() - began
    chunk = args.chunk_ms / 1000 if args.stream else 0.0
    report: Report = evaluate_manifest(utterances, bundle, _error, options, chunk)
    if report.failed:
        _error(f"{len(report.failed)} of {len(utterances)} utterances failed and are not in the scores")
    silent = sum(1 for row in report.rows if not row["ref"])
    if silent:
        print(
            f"note: {silent} utterance{'s have' if silent > 1 else ' has'} no reference words (an empty or "
            'missing "text"): words said there count as insertions',
            file=sys.stderr,
        )
    if not report.rows:
        return EXIT_FAILED
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(
            json.dumps(
                {
                    "manifest": args.manifest,
                    "decoder": _decoder_json(options),
                    "overall": _finite(asdict(report.overall)),
                    "subsets": {k: _finite(asdict(v)) for k, v in report.subsets.items()},
                    "speakers": {k: _finite(asdict(v)) for k, v in report.speakers.items()},
                    "rtf": round(report.rtf, 5),
                    "model_load_seconds": round(load_seconds, 3),
                    "peak_memory_mb": round(peak_mb, 1),
                    "stream": {"chunk_ms": args.chunk_ms, **_finite(_rounded(report.streams))}
                    if args.stream
                    else None,
                    "worst": report.worst(args.worst),
                    "failed": report.failed,
                    "utterances": [_scored_row(row) for row in report.rows],
                },
                indent=2,
            )
        )
    else:
        print(f"decoder: {_describe(options)}\n")
        print(_scores_table(report.subsets, report.overall, "subset"))
        # Per speaker only where it stays readable; --json always has every speaker.
        if 1 < len(report.speakers) <= 20:
            print()
            print(_scores_table(report.speakers, report.overall, "speaker"))
        print(
            f"\nreal-time factor {report.rtf:.4f}, model load {load_seconds:.2f} s, peak memory {peak_mb:.0f} MB"
        )
        if args.stream and report.streams:
            f = report.streams
            print(
                f"streaming in {args.chunk_ms} ms chunks: word seen after {f['first_seen_median']:.2f} s median "
                f"({f['first_seen_p90']:.2f} s p90), committed after {f['committed_median']:.2f} s "
                f"({f['committed_p90']:.2f} s p90); {100 * f['partial_changed']:.1f}% of shown words later "
                f"changed, committed changes {f['committed_changed']:.0f}; RTF {f['rtf']:.4f}"
            )
        for row in report.worst(args.worst):
            errors = f"{row['errors']} error" + ("" if row["errors"] == 1 else "s")
            print(f"\n{row['audio']} ({errors})\n{row['alignment']}")
    if args.plot:
        from asr.plots import write_plots

        try:
            for path in write_plots(report, args.plot, report.latencies):
                print(f"wrote {path}", file=sys.stderr)
        except RuntimeError as e:
            _error(str(e))
            return EXIT_USAGE
    return EXIT_FAILED if report.failed else EXIT_OK


def _decoder_json(options: DecoderOptions) -> dict:
    """The decoding settings; a greedy run has the same keys, null where only the beam
    search has a setting."""
    values = asdict(options)
    if options.decoder == "greedy":
        values = {k: (v if k == "decoder" else None) for k, v in values.items()}
    return values


def _describe(options: DecoderOptions) -> str:
    """One line naming the decoder and its settings, e.g. ``beam 16, LM default (alpha 0.5, beta -1.0)``."""
    if options.decoder == "greedy":
        return "greedy"
    lm = (
        f", LM {options.lm} (alpha {options.lm_weight}, beta {options.word_bonus})"
        if options.lm
        else ", no LM"
    )
    extras = (", lexicon" if options.lexicon else "") + (", hotwords" if options.hotwords else "")
    return f"beam {options.beam_size}{lm}{extras}"


def _rounded(values: dict, digits: int = 4) -> dict:
    """Floats to ``digits`` places (seconds and shares: 0.06, not 0.05999999999999961)."""
    return {
        k: round(v, digits) if isinstance(v, float) and math.isfinite(v) else v for k, v in values.items()
    }


def _scored_row(row: dict) -> dict:
    """An utterance of the JSON report with its own word errors and reference words."""
    from asr.evaluate import score

    s = score([row["ref"]], [row["hyp"]])
    return {
        **row,
        "word_errors": s.substitutions + s.deletions + s.insertions,
        "reference_words": s.reference_words,
    }


def _finite(values: dict) -> dict:
    """JSON has no NaN or infinity: such a figure (nothing to measure, or words said
    where the reference has none) becomes null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def _scores_table(groups: dict, overall, title: str) -> str:
    lines = [f"{title:<24} {'utts':>5} {'WER':>7} {'CER':>7}   S / D / I"]
    for name, s in [*groups.items(), ("all", overall)]:
        lines.append(
            f"{(name or '-')[:24]:<24} {s.utterances:>5} {s.wer:>7.3f} {s.cer:>7.3f}   "
            f"{s.substitutions} / {s.deletions} / {s.insertions}"
        )
    return "\n".join(lines)


def _eval_text_files(args: argparse.Namespace) -> int:
    """jiwer-style: one reference and one hypothesis per line of two text files."""
    from asr.evaluate import score

    if not (args.ref and args.hyp):
        _error("--ref and --hyp go together")
        return EXIT_USAGE
    try:
        refs = Path(args.ref).read_text(encoding="utf-8").splitlines()
        hyps = Path(args.hyp).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        _error(f"{e.filename}: {e.strerror}")
        return EXIT_USAGE
    if len(refs) != len(hyps):
        _error(f"{args.ref} has {len(refs)} lines but {args.hyp} has {len(hyps)}")
        return EXIT_USAGE
    s = score(refs, hyps)
    if args.json:
        print(json.dumps(_finite(asdict(s)), indent=2))
    else:
        print(f"WER {s.wer:.4f}  CER {s.cer:.4f}  S/D/I {s.substitutions}/{s.deletions}/{s.insertions}")
    return EXIT_OK


def cmd_listen(args: argparse.Namespace) -> int:
    from asr.audio import AudioError, MicrophoneError, input_devices
    from asr.listen import FileSource, LiveView, MicrophoneSource, run
    from asr.streaming import Recognizer

    if args.file is None and args.speed is not None:
        _error("--speed applies to --file (a microphone runs in real time)")
        return EXIT_USAGE
    if args.list_devices and args.file is not None:
        _error("--list-devices lists microphones; it does not apply to --file")
        return EXIT_USAGE
    if args.file is not None and (args.device is not None or args.samplerate is not None):
        _error("--device and --samplerate choose a microphone; they do not apply to --file")
        return EXIT_USAGE
    try:
        if args.list_devices:
            devices = input_devices()
            if not devices:
                _error("no audio input devices found")
                return EXIT_FAILED
            for d in devices:
                mark = "*" if d.get("default") else " "
                print(f"{mark}{d['index']:>3}  {d['name']}  ({d['channels']} ch, {d['sample_rate']:.0f} Hz)")
            print("(* the default input)")
            return EXIT_OK
        import torch

        torch.set_num_threads(args.threads)
        # --int8 / --no-int8 decide; with neither, int8 where this torch build has it.
        bundle = _load(args.model, args.int8 is not False, int8_optional=args.int8 is None)
        recognizer = Recognizer(bundle, decoder=_decoder_options(args, bundle))
        if args.file:
            source: MicrophoneSource = FileSource(args.file, 1.0 if args.speed is None else args.speed)
        else:
            source = MicrophoneSource(args.device, args.samplerate)
            print(f"listening on {source.name!r} at {source.sample_rate} Hz; Ctrl-C to stop", file=sys.stderr)
        run(recognizer, source, LiveView(timestamps=args.timestamps))  # reports losses on stderr
    except (MicrophoneError, AudioError) as e:
        _error(str(e))
        return EXIT_FAILED
    except ValueError as e:
        _error(str(e))
        return EXIT_USAGE
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from asr.serve import ServerConfig, run_server
    from asr.streaming import EndpointConfig

    bundle = _load(args.model, args.int8)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        max_message_bytes=args.max_message_bytes,
        max_streams=args.max_streams,
        idle_timeout=args.idle_timeout,
        decoder=_decoder_options(args, bundle),
        endpoint=EndpointConfig(silence_after_speech=args.endpoint_silence),
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run_server(bundle, config, lambda m: print(m, file=sys.stderr, flush=True))
    return EXIT_OK


def cmd_prepare(args: argparse.Namespace) -> int:
    from asr import prepare

    if args.corpus == "librispeech":
        entries = prepare.librispeech(args.source)
        default_out = Path(args.source) / "manifest.jsonl"
    elif args.corpus == "commonvoice":
        entries = prepare.commonvoice(args.source, args.clips)
        default_out = Path(args.source).with_suffix(".jsonl")
    else:
        entries = prepare.csv_corpus(
            args.source, args.audio_column, args.text_column, args.speaker_column, args.root
        )
        default_out = Path(args.source).with_suffix(".jsonl")
    written = prepare.write_manifest(entries, args.out or default_out, _error)
    print(
        f"wrote {written.utterances} utterances ({written.hours:.2f} h) to {written.path}"
        + (f"; skipped {written.skipped} unreadable audio files" if written.skipped else "")
    )
    return EXIT_FAILED if written.skipped else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from asr import export

    bundle = _load(args.model, args.int8 or args.format == "int8")
    if problem := _unwritable(args.output):
        _error(f"{args.output}: {problem}")
        return EXIT_USAGE
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)  # as --output-dir does
    if args.format == "int8":
        export.save_int8(bundle, args.output)
    elif args.format == "torchscript":
        try:
            export.export_torchscript(bundle, args.output, args.chunk_frames)
        except RuntimeError as e:  # torch's writer: "open file failed with strerror: ..."
            _error(f"{args.output}: cannot write ({str(e).rsplit('strerror:', 1)[-1].strip()})")
            return EXIT_USAGE
    else:
        try:
            export.export_onnx(bundle, args.output, args.chunk_frames)
        except RuntimeError as e:  # the onnx package is missing
            _error(str(e))
            return EXIT_USAGE
    size = os.path.getsize(args.output) / 1e6
    print(f"wrote {args.output} ({args.format}, {size:.1f} MB)")
    return EXIT_OK


def _unwritable(path: str) -> str | None:
    """Why a file cannot be written at ``path`` (its folder may not exist yet), or None."""
    if os.path.isdir(path):
        return "is a directory"
    if os.path.exists(path):
        return None if os.access(path, os.W_OK) else "permission denied"
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):  # the nearest folder that exists must take new entries
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"{folder} is not a folder"
    return None if os.access(folder, os.W_OK | os.X_OK) else f"permission denied (cannot write in {folder})"


class _HelpFormatter(argparse.HelpFormatter):
    """Appends an option's default to its help, unless the help already states one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default in (None, False, [], 0.0, 0):
            return text
        if action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("asr")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr", description="Streaming speech recognition.", formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"asr {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("transcribe", help="transcribe audio files (wav, flac, ogg, mp3)")
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="audio files: wav, flac, ogg, mp3; any rate; - reads standard input",
    )
    _add_model_args(p)
    _add_decoder_args(p)
    p.add_argument(
        "--format", choices=["txt", "json", "srt", "vtt"], default="txt", help="output format (default txt)"
    )
    p.add_argument("--output-dir", help="write FILE's transcript to DIR/STEM.FORMAT")
    p.add_argument(
        "--stream",
        action="store_true",
        help="decode as a live stream: partial results and utterance endpoints",
    )
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("listen", help="live transcription from a microphone")
    p.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    p.add_argument(
        "--device", help="input device index or (part of its) name (default: the system's default input)"
    )
    p.add_argument(
        "--samplerate", type=_positive, help="record at this rate (default: 16000 or the device's)"
    )
    _add_model_args(p, int8_default=True)
    p.add_argument("--file", help="play this audio file through the live path instead of a microphone")
    p.add_argument(
        "--speed",
        type=_non_negative_float,
        help="with --file: times real time (default 1; 0: no waiting)",
    )
    p.add_argument(
        "--timestamps", action="store_true", help="prefix lines with the time (s) their first word began"
    )
    p.add_argument(
        "--threads",
        type=_positive,
        default=1,
        help="torch threads for the model (default 1: keeps up with real time on a busy machine)",
    )
    _add_decoder_args(p, nbest=False)
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser(
        "serve",
        help="WebSocket server and browser page for live transcription",
        description="Serve live transcription: a browser page at / and a WebSocket at /ws "
        "(protocol in the README). One model serves every connection.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8765, help="TCP port (0: any free port)")
    _add_model_args(p)
    p.add_argument("--max-streams", type=_positive, default=32, help="concurrent streams at most")
    p.add_argument(
        "--max-message-bytes",
        type=_positive,
        default=256 * 1024,
        help="largest message (audio chunk) accepted",
    )
    p.add_argument(
        "--idle-timeout", type=_positive_float, default=30.0, help="close a connection silent this long (s)"
    )
    p.add_argument(
        "--endpoint-silence",
        type=_positive_float,
        default=0.8,
        help="silence after speech that ends an utterance (s)",
    )
    p.add_argument("--threads", type=_positive, help="torch threads for the model (default: all cores)")
    _add_decoder_args(p, nbest=False)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "export",
        help="write an int8, TorchScript or ONNX version of a model",
        description="int8: a model file with int8 GRU and linear weights (use it with --model). "
        "torchscript/onnx: one streaming step of a unidirectional model (see models/README.md). "
        "--int8 also applies to torchscript; onnx is float32 only.",
    )
    p.add_argument("--format", choices=["int8", "torchscript", "onnx"], required=True, help="what to write")
    p.add_argument("--output", "-o", required=True, help="file to write")
    _add_model_args(p)
    p.add_argument(
        "--chunk-frames",
        type=_positive,
        default=32,
        help="torchscript/onnx: feature frames (10 ms) per streaming step, a multiple of 4",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("prepare", help="write a JSONL manifest for a corpus (LibriSpeech, Common Voice, CSV)")
    p.add_argument("corpus", choices=["librispeech", "commonvoice", "csv"])
    p.add_argument("source", help="LibriSpeech folder, Common Voice TSV (train.tsv...) or CSV/TSV file")
    p.add_argument("--out", help="manifest to write (default: beside the source)")
    p.add_argument("--clips", help="commonvoice: the clips folder (default: clips/ beside the TSV)")
    p.add_argument("--audio-column", default="audio", help="csv: column of audio paths")
    p.add_argument("--text-column", default="text", help="csv: column of transcripts")
    p.add_argument(
        "--speaker-column", default="speaker", help="csv: column of speaker ids, used when the file has it"
    )
    p.add_argument("--root", help="csv: folder that relative audio paths start from (default: the CSV's)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a model from JSONL manifests")
    p.add_argument(
        "--train",
        action="append",
        required=True,
        metavar="MANIFEST[:WEIGHT]",
        help="training manifest; repeat for several; :N repeats it N times",
    )
    p.add_argument("--dev", help="dev manifest for CER/WER and choosing the best checkpoint")
    p.add_argument("--out", required=True, help="run folder: last.pt, best.pt, log.csv")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", help="start from this model file's weights (e.g. asr/models/default.pt)")
    p.add_argument(
        "--epochs",
        type=_positive,
        default=30,
        help="epochs at most (--max-steps or --max-minutes may stop the run sooner)",
    )
    p.add_argument(
        "--max-steps", type=_non_negative, default=0, help="stop after N steps in total (0: --epochs decide)"
    )
    p.add_argument(
        "--max-minutes", type=_non_negative_float, default=0.0, help="stop after M minutes (0: no limit)"
    )
    p.add_argument("--batch-seconds", type=_positive_float, default=200.0, help="audio per batch")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="peak learning rate")
    p.add_argument(
        "--warmup-steps",
        type=_non_negative,
        default=300,
        help="steps of linear warmup to --lr before the cosine decay (keep it well below a short run's length)",
    )
    for flag, what in [
        ("--hidden", "GRU width"),
        ("--layers", "GRU layers"),
        ("--conv-channels", "channels of the two convolutions"),
    ]:
        default = MODEL_DEFAULTS[flag[2:].replace("-", "_")]
        p.add_argument(flag, type=_positive, help=f"{what} (default: {default}; with --init: the model's)")
    p.add_argument(
        "--dropout",
        type=float,
        help=f"dropout (default: {MODEL_DEFAULTS['dropout']}; with --init or --resume it replaces the model's)",
    )
    p.add_argument(
        "--bidirectional",
        action="store_true",
        help="bidirectional GRU layers (streams only with --chunk-frames; default: unidirectional)",
    )
    p.add_argument(
        "--chunk-frames",
        type=_non_negative,
        help="bidirectional streaming: output frames (40 ms) per chunk; 0 = whole utterance",
    )
    p.add_argument(
        "--lookahead-frames",
        type=_non_negative,
        help="bidirectional streaming: future frames each chunk sees",
    )
    p.add_argument(
        "--no-augment", action="store_true", help="no speed, noise, reverberation or SpecAugment augmentation"
    )
    p.add_argument(
        "--shuffle-first-epoch",
        action="store_true",
        help="shuffle the first epoch too instead of shortest batches first (for fine-tuning with --init)",
    )
    p.add_argument(
        "--ema",
        type=float,
        metavar="DECAY",
        help="evaluate and ship a moving average of the weights (e.g. 0.995; 0: off; "
        "given with --resume, it replaces the run's setting)",
    )
    p.add_argument("--checkpoint-every", type=_positive, default=200, help="steps between checkpoints")
    p.add_argument(
        "--eval-every",
        type=_non_negative,
        default=0,
        help="also evaluate on --dev every N steps (default 0: only after each epoch)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the weights, batches and augmentation (default 0)"
    )
    p.add_argument(
        "--amp", choices=["off", "bf16", "fp16"], default="off", help="mixed precision (fp16: GPU only)"
    )
    p.add_argument("--accumulate", type=_positive, default=1, help="batches per optimizer step")
    p.add_argument("--workers", type=_non_negative, default=1, help="data loading processes")
    p.add_argument("--threads", type=_non_negative, default=0, help="torch threads (0: default)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="WER and CER of a model on a manifest (or of two text files)")
    p.add_argument("manifest", nargs="?", help="JSONL manifest of audio and reference text (or --ref/--hyp)")
    _add_model_args(p)
    _add_decoder_args(p, nbest=False)
    p.add_argument(
        "--worst", type=_non_negative, default=5, help="show the N worst utterances with alignments"
    )
    p.add_argument("--stream", action="store_true", help="decode as streams: latency and stability figures")
    p.add_argument("--chunk-ms", type=_positive, help="with --stream: audio per chunk (default: 100)")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots (needs matplotlib) into DIR")
    p.add_argument("--ref", help="reference text file, one utterance a line (with --hyp)")
    p.add_argument("--hyp", help="hypothesis text file, one utterance a line (with --ref)")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=cmd_eval)
    for subparser in sub.choices.values():
        subparser.formatter_class = _HelpFormatter
    return parser


def _number(text: str, kind: type[int] | type[float] = float) -> float:
    """``text`` as a number, or argparse's error line naming what was expected."""
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def _positive_float(text: str) -> float:
    value = _number(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _finite_float(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _port(text: str) -> int:
    value = int(_number(text, int))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port, 0-65535 (0: any free port), got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``asr ...``: the exit status. Ctrl-C at any point, PyTorch's import included, is
    one line and status 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    args.argv = argv
    if unknown:  # the subcommand's usage and name, not the top level's
        _subcommands(parser)[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:
        # Settings that do not fit together, a model that does not fit the data, a folder
        # that cannot be written: one line, never a traceback. (Imported here: --help and
        # usage errors need not wait for PyTorch.)
        from asr.checkpoint import ModelFileError

        if not isinstance(e, (ValueError, OSError, ModelFileError)):
            raise
        detail = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename else str(e)
        _error(detail)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
