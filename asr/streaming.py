"""The app-facing recogniser: one shared model, many streams, partial and final results.

    rec = Recognizer(load_model())
    stream = rec.stream()
    for chunk in chunks:                      # float32 or int16 numpy arrays, any length
        for event in stream.accept_waveform(chunk, sample_rate=16000):
            print(event.kind, event.result.text)
    final = stream.finish()

A stream splits its audio into utterances at endpoints (trailing silence after speech,
long silence without speech, a maximum length). Within an utterance, ``committed`` text
never changes again and ``unstable`` text may; a final event closes the utterance and the
stream goes on with the next one, keeping only what the next frames need.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import soxr
import torch

from asr.audio import (
    SAMPLE_RATE,
    AudioReader,
    as_float32,
    as_mono_float32,
    check_sample_rate,
    from_tensor,
    load_audio,
    resample,
)
from asr.checkpoint import Bundle, default_lm_path, load_model
from asr.decoding import (
    DEFAULT_BEAM_SIZE,
    DEFAULT_LM_WEIGHT,
    DEFAULT_WORD_BONUS,
    BeamSearchDecoder,
    BeamState,
    GreedyDecoder,
    GreedyState,
    Hypothesis,
    Word,
    parse_hotword,
)
from asr.features import StreamingFeatures, log_mel
from asr.lm import NgramLM, load_lm, read_lexicon
from asr.model import ModelState

#: Feature frames the model reads at a time in offline transcription (bounded memory).
OFFLINE_CHUNK_FRAMES = 3000


@dataclass(frozen=True)
class DecoderOptions:
    """How to turn log-probs into text.

    ``decoder``: "greedy" (best path) or "beam" (CTC prefix beam search of ``beam_size``).
    The beam search can fuse a word LM: ``lm`` is an ARPA file, "default" for the LM
    bundled with the package (none when it is absent), or None; ``lm_weight`` (alpha)
    and ``word_bonus`` (beta) weigh it. ``lexicon`` (a file of words, or the words)
    restricts the output to listed words. ``hotwords`` are "WORD", "PHRASE" or
    "WORD:BOOST" specs (one string is one spec). ``nbest`` > 1 asks for that many alternatives.
    """

    decoder: str = "greedy"
    beam_size: int = DEFAULT_BEAM_SIZE
    lm: str | None = "default"
    lm_weight: float = DEFAULT_LM_WEIGHT
    word_bonus: float = DEFAULT_WORD_BONUS
    lexicon: str | tuple[str, ...] | None = None
    hotwords: tuple[str, ...] = ()
    nbest: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.hotwords, str):  # one spec, not a sequence of letters
            object.__setattr__(self, "hotwords", (self.hotwords,))
        object.__setattr__(self, "hotwords", _strings(self.hotwords, "hotwords"))
        if isinstance(self.lexicon, os.PathLike):
            object.__setattr__(self, "lexicon", os.fspath(self.lexicon))
        elif self.lexicon is not None and not isinstance(self.lexicon, str):
            object.__setattr__(self, "lexicon", _strings(self.lexicon, "lexicon"))
        if isinstance(self.lm, os.PathLike):
            object.__setattr__(self, "lm", os.fspath(self.lm))
        if isinstance(self.lm, str) and self.lm.lower() == "none":  # as the CLI and server say it
            object.__setattr__(self, "lm", None)
        for name in ("beam_size", "nbest"):  # numpy integers too (np.arange sweeps)
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("lm_weight", "word_bonus"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.lm_weight < 0:
            raise ValueError(f"lm_weight must be >= 0, got {self.lm_weight}")
        if self.decoder not in ("greedy", "beam"):
            raise ValueError(f"unknown decoder {self.decoder!r}: use 'greedy' or 'beam'")
        if self.decoder == "greedy" and (self.lexicon or self.hotwords or self.nbest > 1):
            raise ValueError("a lexicon, hotwords and n-best lists need the beam decoder (decoder='beam')")


def _strings(values: object, name: str) -> tuple[str, ...]:
    """Any iterable of strings (a list, a set, a generator) as a tuple, so that options
    stay hashable; anything else is a TypeError that names the option."""
    try:
        items = tuple(values)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be strings (a list or tuple of them), got {type(values).__name__}"
        ) from None
    if not all(isinstance(item, str) for item in items):
        raise TypeError(
            f"{name} must be strings, got {next(type(i).__name__ for i in items if not isinstance(i, str))}"
        )
    return tuple(sorted(items)) if isinstance(values, (set, frozenset)) else items


def recommended_decoder(bundle: Bundle) -> str:
    """The decoder a model file recommends (its ``decoder`` metadata), else "greedy".

    The bundled model recommends "beam": with the bundled word LM it gets far more words
    right than the best path (see models/README.md). A model you train recommends
    nothing, so it decodes greedily unless told otherwise.
    """
    choice = bundle.metadata.get("decoder")
    return choice if choice in ("greedy", "beam") else "greedy"


def _options(decoder: str | DecoderOptions | None, beam_size: int | None, bundle: Bundle) -> DecoderOptions:
    if isinstance(decoder, DecoderOptions):
        if beam_size is not None and beam_size != decoder.beam_size:
            raise ValueError("give beam_size inside DecoderOptions, not beside it")
        return decoder
    return DecoderOptions(
        decoder or recommended_decoder(bundle), DEFAULT_BEAM_SIZE if beam_size is None else beam_size
    )


@functools.lru_cache(maxsize=4)
def _cached_lm(path: str) -> NgramLM:
    return load_lm(path)


_LM_LOCKS: dict[str, threading.Lock] = {}
_LM_LOCKS_LOCK = threading.Lock()


def _shared_lm(path: str) -> NgramLM:
    """The LM at ``path``, read once per process: recognizers made at once in many threads
    (a server's first clients) wait for one read instead of each reading it into memory.
    Decoders without that LM do not wait."""
    with _LM_LOCKS_LOCK:
        lock = _LM_LOCKS.setdefault(path, threading.Lock())
    with lock:
        return _cached_lm(path)


def make_decoder(
    bundle: Bundle, options: str | DecoderOptions | None = None, beam_size: int | None = None
) -> GreedyDecoder | BeamSearchDecoder:
    """The decoder that ``options`` (or a decoder name; None: the model's recommendation,
    ``recommended_decoder``) describe, for a model's vocabulary and frame rate. LM files
    are read once per process and shared. Raises ValueError (LanguageModelError) for an
    unreadable LM or lexicon."""
    options = _options(options, beam_size, bundle)
    calibration = _calibration(bundle, options.decoder)
    # Decoders hold no per-utterance state, so one per setting serves every file and
    # stream; building a beam search with an LM and hotwords is not free.
    named = dataclasses.replace(
        options,
        lm=os.path.abspath(options.lm) if options.lm not in (None, "default") else options.lm,
        lexicon=os.path.abspath(options.lexicon) if isinstance(options.lexicon, str) else options.lexicon,
    )
    key = (tuple(bundle.vocabulary.tokens), bundle.frame_seconds, tuple(calibration or ()), named)
    decoder = _DECODERS.get(key)
    if decoder is None:
        decoder = _build_decoder(bundle, options, calibration)
        with _DECODERS_LOCK:
            decoder = _DECODERS.setdefault(key, decoder)
            while len(_DECODERS) > 8:
                _DECODERS.pop(next(iter(_DECODERS)))
    return decoder


_DECODERS: dict[tuple, GreedyDecoder | BeamSearchDecoder] = {}
_DECODERS_LOCK = threading.Lock()
#: Where each decoder's confidence calibration lives in a model file's metadata.
CALIBRATION_KEYS = {"greedy": "confidence", "beam": "confidence_beam"}


def _calibration(bundle: Bundle, decoder: str) -> list[float] | None:
    """The model's confidence calibration for this decoder (tools/calibrate_confidence.py):
    ``confidence_beam`` for the beam search where the file has one, else ``confidence``
    (fitted on greedy output); None leaves confidences as mean character posteriors."""
    for key in dict.fromkeys([CALIBRATION_KEYS[decoder], CALIBRATION_KEYS["greedy"]]):
        value = bundle.metadata.get(key)
        if isinstance(value, (list, tuple)) and len(value) == 3:
            return list(value)
    return None


def _build_decoder(
    bundle: Bundle, options: DecoderOptions, calibration: list[float] | tuple[float, ...] | None
) -> GreedyDecoder | BeamSearchDecoder:
    if options.decoder == "greedy":
        return GreedyDecoder(bundle.vocabulary, bundle.frame_seconds, calibration)
    lm = None
    if options.lm == "default":
        path = default_lm_path()
        lm = _shared_lm(str(path)) if path.exists() else None
    elif options.lm:
        lm = _shared_lm(os.path.abspath(options.lm))
    lexicon = options.lexicon
    if isinstance(lexicon, str):
        lexicon = tuple(read_lexicon(lexicon))
    return BeamSearchDecoder(
        bundle.vocabulary,
        bundle.frame_seconds,
        options.beam_size,
        lm=lm,
        lm_weight=options.lm_weight,
        word_bonus=options.word_bonus,
        lexicon=lexicon,
        hotwords=dict(parse_hotword(h) for h in options.hotwords),
        confidence=calibration,
    )


def alternatives(hypotheses: Sequence[Hypothesis]) -> tuple[tuple[str, float], ...]:
    """N-best texts with their posterior probability among the list (scores softmaxed)."""
    if not hypotheses:
        return ()
    top = max(h.score for h in hypotheses)
    weights = [math.exp(h.score - top) for h in hypotheses]
    total = sum(weights)
    return tuple((h.text, round(w / total, 4)) for h, w in zip(hypotheses, weights, strict=True))


@dataclass(frozen=True)
class Result:
    """Recognised text: ``committed`` never changes again; ``unstable`` may still change.

    ``start`` is where the utterance begins in the stream and ``duration`` its length so
    far, in seconds; word times are stream times.
    """

    committed: str
    unstable: str = ""
    words: tuple[Word, ...] = ()
    duration: float = 0.0
    start: float = 0.0
    #: Alternative transcripts ``(text, posterior)``, best first (beam search with nbest > 1).
    nbest: tuple[tuple[str, float], ...] = ()

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.committed, self.unstable) if part)


def transcribe(
    audio: str | os.PathLike[str] | np.ndarray | torch.Tensor,
    model: Bundle | None = None,
    sample_rate: int | None = None,
    decoder: str | DecoderOptions | None = None,
    beam_size: int | None = None,
) -> Result:
    """Transcribe a file, or a numpy array (or CPU tensor) of samples at ``sample_rate``
    (16 kHz when not given).

    A file may have any common format, rate and channel count; its rate is read from it,
    so a ``sample_rate`` given with a file must be that rate (ValueError otherwise). An
    array is float32/float64 in [-1, 1] or int16/int32 PCM, shaped ``(samples,)`` or
    ``(samples, channels)`` (the ``soundfile.read`` layout; channels are averaged);
    another rate than the model's is resampled.

    ``decoder`` is "greedy" (best path), "beam" (CTC prefix beam search of ``beam_size``
    with the default LM), DecoderOptions (LM, lexicon, hotwords, n-best), or None for
    the model's recommendation (``recommended_decoder``: the bundled model's is "beam").

    Loads the bundled default model when ``model`` is None. Raises AudioError for a file
    that cannot be read, ValueError for an unusable array and TypeError for anything
    that is neither a path nor an array.
    """
    bundle = model if model is not None else load_model()
    samples = _samples(audio, bundle, sample_rate)
    options = _options(decoder, beam_size, bundle)
    search = make_decoder(bundle, options)
    decoded = search.start()
    for logprobs in _logprob_chunks(samples, bundle):
        decoded = search.step(logprobs, decoded)
    hypothesis = search.finish(decoded)
    nbest = ()
    if options.nbest > 1 and isinstance(search, BeamSearchDecoder):
        nbest = alternatives(search.nbest(decoded, options.nbest))
    duration = samples.shape[0] / bundle.features.sample_rate
    return Result(hypothesis.text, "", hypothesis.words, duration, nbest=nbest)


def _logprob_chunks(samples: np.ndarray, bundle: Bundle) -> Iterator[torch.Tensor]:
    """The model's ``(frames, vocab)`` log-probs of 16 kHz samples, a bounded chunk at a time."""
    feats = log_mel(samples, bundle.features)
    state = None
    device = bundle.model.feat_mean.device
    streaming = bundle.model.config.streaming
    # A whole-utterance bidirectional model needs all frames at once; the others stream.
    step = OFFLINE_CHUNK_FRAMES if streaming else max(1, feats.shape[0])
    with torch.inference_mode():
        for begin in range(0, max(1, feats.shape[0]), step):
            chunk = feats[begin : begin + step].unsqueeze(0).to(device)
            lengths = torch.tensor([chunk.shape[1]], device=device)
            last = begin + step >= feats.shape[0]
            logprobs, _, state = bundle.model(chunk, lengths, state if streaming else None, final=last)
            yield logprobs[0].cpu()


def compute_logprobs(
    audio: str | os.PathLike[str] | np.ndarray | torch.Tensor,
    model: Bundle | None = None,
    sample_rate: int | None = None,
) -> torch.Tensor:
    """The model's CTC log-probs ``(frames, vocab)`` for a file or an array as ``transcribe``
    takes them, for decoders used on their own (``BeamSearchDecoder(...).decode(logprobs)``)."""
    bundle = model if model is not None else load_model()
    return torch.cat(list(_logprob_chunks(_samples(audio, bundle, sample_rate), bundle)))


def _samples(
    audio: str | os.PathLike[str] | np.ndarray | torch.Tensor, bundle: Bundle, sample_rate: int | None
) -> np.ndarray:
    """A file, or an array at ``sample_rate`` (16 kHz when None), as float32 samples at
    the model's rate. Raises TypeError for anything else, and ValueError for a
    ``sample_rate`` given with a file that is not the file's own rate."""
    rate = bundle.features.sample_rate
    audio = from_tensor(audio)
    if isinstance(audio, np.ndarray):
        given = SAMPLE_RATE if sample_rate is None else sample_rate
        return resample(as_mono_float32(audio), check_sample_rate(given), rate)
    _samples_kind(audio, sample_rate)
    return load_audio(audio, rate)


def _samples_kind(audio: object, sample_rate: int | None) -> None:
    """Raise TypeError unless ``audio`` is a path, and ValueError for a ``sample_rate``
    that is not the file's own (which is read from the file; AudioError if it cannot be)."""
    if not isinstance(audio, (str, os.PathLike)):
        raise TypeError(
            f"audio must be a file path or a numpy array of samples, got {type(audio).__name__}"
            + ("; pass np.asarray(audio, dtype=np.float32)" if isinstance(audio, (list, tuple)) else "")
        )
    if sample_rate is not None:
        file_rate = AudioReader(audio).sample_rate
        if check_sample_rate(sample_rate) != file_rate:
            raise ValueError(
                f"sample_rate={sample_rate}, but {os.fspath(audio)} is at {file_rate} Hz: a file's "
                "rate is read from the file (sample_rate is for arrays of samples)"
            )


def join_results(parts: Sequence[Result]) -> Result:
    """One Result spanning consecutive utterances (empty ones are skipped). N-best lists
    are per utterance: a Result joining several has none."""
    spoken = [r for r in parts if r.text] or list(parts[-1:])
    if len(spoken) == 1:
        return spoken[0]
    first, last = spoken[0], spoken[-1]
    return Result(
        " ".join(r.text for r in spoken),
        "",
        tuple(w for r in spoken for w in r.words),
        last.start + last.duration - first.start,
        first.start,
    )


@dataclass(frozen=True)
class EndpointConfig:
    """When an utterance ends. A frame is silent when its most likely token is the blank.

    ``silence_after_speech``: trailing silence that ends an utterance with words in it;
    ``silence_without_speech``: silence after which an utterance with no words restarts;
    ``max_utterance``: the longest utterance, cut even mid-speech. All in seconds;
    ``math.inf`` turns a rule off.
    """

    silence_after_speech: float = 0.8
    silence_without_speech: float = 3.0
    max_utterance: float = 20.0

    def __post_init__(self) -> None:
        for name in ("silence_after_speech", "silence_without_speech", "max_utterance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, numbers.Real) and value > 0):  # inf: never
                raise ValueError(f"{name} must be a positive number of seconds (inf: never), got {value!r}")


@dataclass(frozen=True)
class Event:
    """``partial``: the open utterance's text changed; ``final``: an utterance ended."""

    kind: Literal["partial", "final"]
    result: Result


#: Feature frames a stream gathers before it runs the model (a multiple of 4: 80 ms).
CHUNK_FRAMES = 8


class Recognizer:
    """Shares one model between any number of streams; safe to use from many threads.

    Each thread owns its streams; the model is only read, under ``torch.inference_mode``.
    ``decoder`` as in ``transcribe`` (None: the model's recommendation).
    """

    def __init__(
        self,
        model: Bundle | None = None,
        endpoint: EndpointConfig = EndpointConfig(),
        chunk_frames: int = CHUNK_FRAMES,
        decoder: str | DecoderOptions | None = None,
        beam_size: int | None = None,
    ) -> None:
        self.bundle = model if model is not None else load_model()
        if not self.bundle.model.config.streaming:
            raise ValueError(
                "a whole-utterance bidirectional model cannot stream; use a unidirectional or "
                "a latency-controlled (chunk_frames > 0) model"
            )
        sub = self.bundle.model.config.subsampling
        if not isinstance(chunk_frames, numbers.Integral) or chunk_frames <= 0 or chunk_frames % sub:
            raise ValueError(f"chunk_frames must be a positive whole multiple of {sub}, got {chunk_frames!r}")
        chunk_frames = int(chunk_frames)
        self.endpoint = endpoint
        self.chunk_frames = chunk_frames
        self.decoder = make_decoder(self.bundle, decoder, beam_size)
        #: Alternatives each final result lists (DecoderOptions.nbest, beam search only).
        self.nbest = _options(decoder, beam_size, self.bundle).nbest

    @property
    def sample_rate(self) -> int:
        return self.bundle.features.sample_rate

    def stream(self) -> Stream:
        """A new stream with its own state."""
        return Stream(self)

    def decode_streams(self, streams: Sequence[Stream]) -> list[list[Event]]:
        """Run the model once over every stream with a chunk ready, as one batch.

        Feed audio with ``accept_waveform(..., decode=False)``, then call this; returns
        each stream's events, in order. Results equal decoding each stream alone.
        Streams of recognizers with other decoders over the same model (the same Bundle
        object) and chunk size may be mixed. Raises ValueError for a stream listed twice or of another model or chunk size.
        """
        if len({id(s) for s in streams}) < len(streams):
            raise ValueError("a stream is listed twice: list each stream once")
        # Streams of recognizers that differ only in their decoders batch together (a
        # server's clients); another model or chunk size would be run wrongly.
        if any(
            s.recognizer.bundle is not self.bundle or s.recognizer.chunk_frames != self.chunk_frames
            for s in streams
        ):
            raise ValueError("a stream of another model or chunk size: decode it with its own Recognizer")
        events: dict[int, list[Event]] = {id(s): [] for s in streams}
        while True:
            ready = [s for s in streams if s._pending.shape[0] >= self.chunk_frames]
            if not ready:
                break
            # Streams batch together when their states have the same shape.
            held = ready[0]._state.pending.shape[1]
            ready = [s for s in ready if s._state.pending.shape[1] == held]
            n = min(s._pending.shape[0] for s in ready) // self.chunk_frames * self.chunk_frames
            feats = torch.stack([s._pending[:n] for s in ready])
            state = ModelState(
                torch.cat([s._state.conv1 for s in ready]),
                torch.cat([s._state.conv2 for s in ready]),
                torch.cat([s._state.gru for s in ready], dim=1),
                torch.cat([s._state.pending for s in ready]),
            )
            logprobs, state = self._run(feats, state)
            for i, s in enumerate(ready):
                s._pending = s._pending[n:]
                s._state = ModelState(
                    state.conv1[i : i + 1],
                    state.conv2[i : i + 1],
                    state.gru[:, i : i + 1],
                    state.pending[i : i + 1],
                )
                events[id(s)] += s._consume(logprobs[i])
        return [events[id(s)] + streams[i]._partial_event() for i, s in enumerate(streams)]

    def _run(
        self, feats: torch.Tensor, state: ModelState, final: bool = False
    ) -> tuple[torch.Tensor, ModelState]:
        """Model step on ``(batch, frames, n_mels)``; returns log-probs and the new state."""
        model = self.bundle.model
        device = model.feat_mean.device
        lengths = torch.full((feats.shape[0],), feats.shape[1], device=device)
        with torch.inference_mode():
            state = ModelState(*(t.to(device) for t in state))
            logprobs, _, new_state = model(feats.to(device), lengths, state, final)
        return logprobs.cpu(), new_state


@dataclass
class _Utterance:
    """The open utterance: where it starts (output frame) and its decoding so far."""

    start: int
    decoded: GreedyState | BeamState
    last_speech: int = -1
    heard: bool = False
    reported: str = ""


class Stream:
    """One audio stream: features, model state and the open utterance. Not thread-safe."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next sample starts a new stream at time 0."""
        bundle = self.recognizer.bundle
        self._features = StreamingFeatures(bundle.features)
        self._pending = torch.zeros(0, bundle.features.n_mels)
        self._state = bundle.model.initial_state(1)
        self._frames = 0  # output frames decoded so far
        self._utt = _Utterance(0, self.recognizer.decoder.start())
        self.samples = 0
        # A resampler, once flushed at the end of a signal, must not carry into the next.
        self._resampler: soxr.ResampleStream | None = None
        self._resampler_rate = 0

    def accept_waveform(
        self, chunk: np.ndarray, sample_rate: int | None = None, decode: bool = True
    ) -> list[Event]:
        """Add audio: a float32/float64 (in [-1, 1]) or int16/int32 mono array ``(samples,)``
        (numpy, or a torch tensor).

        Audio at another ``sample_rate`` is resampled; the rate may change between chunks
        (the resampler's tail is flushed first). Returns the events this audio caused.
        ``decode=False`` only buffers the features, for ``Recognizer.decode_streams``.
        Raises ValueError for a wrong dtype, shape, NaN or rate, TypeError for a list or
        other non-array.
        """
        audio = as_float32(chunk)
        rate = self.recognizer.sample_rate
        sample_rate = rate if sample_rate is None else sample_rate
        sample_rate = check_sample_rate(sample_rate)
        if sample_rate != rate or self._resampler is not None:
            audio = self._resample(audio, sample_rate)
        self.samples += audio.shape[0]
        frames = self._features.accept(audio)
        self._pending = torch.cat([self._pending, frames])
        if not decode:
            return []
        return self.recognizer.decode_streams([self])[0]

    def _resample(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        # soxr's streaming resampler keeps its filter state between chunks.
        resampler = self._resampler
        tail = np.zeros(0, np.float32)
        if resampler is None or self._resampler_rate != sample_rate:
            if resampler is not None:  # the rate changed: what the old filter holds comes first
                tail = resampler.resample_chunk(tail, last=True)
                self._resampler = resampler = None
            if sample_rate != self.recognizer.sample_rate:
                resampler = soxr.ResampleStream(sample_rate, self.recognizer.sample_rate, 1, dtype="float32")
                self._resampler, self._resampler_rate = resampler, sample_rate
        out = resampler.resample_chunk(audio) if resampler is not None else audio
        return np.concatenate([tail, out]) if tail.size else out

    def result(self) -> Result:
        """The open utterance as it stands: committed words, an unstable tail, words, times."""
        return self._result(final=False)

    def finish(self) -> Result:
        """End of audio: decode everything left and return it as one final Result.

        Utterances that end during this flush (at endpoints among the last frames) are
        joined into the returned Result, so no text is lost. The stream is reset
        afterwards and can take a new signal.
        """
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            self._pending = torch.cat([self._pending, self._features.accept(tail)])
        self._pending = torch.cat([self._pending, self._features.finish()])
        recognizer = self.recognizer
        events = recognizer.decode_streams([self])[0]
        # The rest, and whatever a lookahead model still holds back, in one last step.
        logprobs, self._state = recognizer._run(self._pending.unsqueeze(0), self._state, final=True)
        events += self._consume(logprobs[0])
        parts = [e.result for e in events if e.kind == "final"] + [self._result(final=True)]
        self.reset()
        return join_results(parts)

    def _consume(self, logprobs: torch.Tensor) -> list[Event]:
        """Decode ``(frames, vocab)`` log-probs frame by frame, closing utterances at endpoints."""
        rule = self.recognizer.endpoint
        seconds = self.recognizer.bundle.frame_seconds
        decoder = self.recognizer.decoder
        events, begin = [], 0
        ids = logprobs.argmax(dim=-1).tolist()
        space = self.recognizer.bundle.vocabulary.space
        for i, token in enumerate(ids):
            frame = self._frames + i
            utt = self._utt
            if token != 0:
                utt.last_speech = frame
                utt.heard = utt.heard or token != space
            silence = (frame - max(utt.last_speech, utt.start - 1)) * seconds
            length = (frame - utt.start + 1) * seconds
            ended = (
                (utt.heard and silence >= rule.silence_after_speech)
                or (not utt.heard and silence >= rule.silence_without_speech)
                or length >= rule.max_utterance
            )
            if ended:
                utt.decoded = decoder.step(logprobs[begin : i + 1], utt.decoded)
                begin = i + 1
                final = self._result(final=True)
                if final.text:
                    events.append(Event("final", final))
                self._utt = _Utterance(frame + 1, decoder.start())
        self._utt.decoded = decoder.step(logprobs[begin:], self._utt.decoded)
        self._frames += len(ids)
        return events

    def _result(self, final: bool) -> Result:
        utt = self._utt
        seconds = self.recognizer.bundle.frame_seconds
        decoder = self.recognizer.decoder
        # A final result ends the utterance: the beam search then closes the open word
        # and adds the LM's end of sentence, which can reorder the beams.
        hyp = (decoder.finish if final else decoder.hypothesis)(utt.decoded, utt.start * seconds)
        words = hyp.words
        settled = len(words) if final else decoder.settled_words(utt.decoded)
        committed = " ".join(w.word for w in words[:settled])
        unstable = " ".join(w.word for w in words[settled:])
        nbest = ()
        if final and self.recognizer.nbest > 1 and isinstance(decoder, BeamSearchDecoder):
            nbest = alternatives(decoder.nbest(utt.decoded, self.recognizer.nbest, utt.start * seconds))
        return Result(committed, unstable, words, utt.decoded.frames * seconds, utt.start * seconds, nbest)

    def _partial_event(self) -> list[Event]:
        current = self.result()
        if current.text == self._utt.reported:
            return []
        self._utt.reported = current.text
        return [Event("partial", current)]


#: Audio per block when a file is streamed (``asr transcribe --stream``): partials still
#: come twice a second, with fewer model calls.
FILE_CHUNK_SECONDS = 0.5


def transcribe_stream(
    audio: str | os.PathLike[str] | np.ndarray | torch.Tensor,
    recognizer: Recognizer,
    on_event: Callable[[Event], None] = lambda event: None,
    sample_rate: int | None = None,
) -> Result:
    """Run a file, or a ``(samples,)`` or ``(samples, channels)`` array at ``sample_rate``,
    through a Stream in 0.5 s blocks.

    ``on_event`` sees every partial and final event as it happens. Returns one Result
    joining all the utterances, with their words in stream time.
    """
    audio = from_tensor(audio)
    if isinstance(audio, np.ndarray):
        samples = as_mono_float32(audio)
        sample_rate = check_sample_rate(SAMPLE_RATE if sample_rate is None else sample_rate)
        step = max(1, int(sample_rate * FILE_CHUNK_SECONDS))
        blocks: Iterable[np.ndarray] = (samples[i : i + step] for i in range(0, len(samples), step))
    else:
        _samples_kind(audio, sample_rate)
        # A file is read block by block: memory stays flat however long it is.
        reader = AudioReader(audio)
        sample_rate = reader.sample_rate
        blocks = reader.blocks(max(1, int(sample_rate * FILE_CHUNK_SECONDS)))
    stream = recognizer.stream()
    finals: list[Result] = []
    seconds = 0.0
    for block in blocks:
        seconds += len(block) / sample_rate
        for event in stream.accept_waveform(block, sample_rate):
            on_event(event)
            if event.kind == "final":
                finals.append(event.result)
    last = stream.finish()
    if last.text:
        on_event(Event("final", last))
        finals.append(last)
    joined = join_results(finals) if finals else Result("")
    return Result(joined.text, "", joined.words, seconds, nbest=joined.nbest)
