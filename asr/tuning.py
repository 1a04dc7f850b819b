"""The decoders' tunable defaults, in one place (``asr.decoding`` uses them).

A module of plain numbers, so the command line can show them in ``--help`` without
loading PyTorch.
"""

DEFAULT_BEAM_SIZE = 16
#: Characters whose log-prob is this far below the frame's best are not tried.
DEFAULT_TOKEN_PRUNE = 5.0
#: Beams this far (in log-prob) below the best are dropped even when there is room.
DEFAULT_BEAM_PRUNE = 5.0
#: The same with a lexicon. A closed vocabulary must often spell what the model heard
#: otherwise ("zes" for "yes"), so the listed spellings need room; tuned on real/dev's
#: one-word clips (tools/tune_lm.py --lexicon): WER 0.445 at 5/5, 0.376 at 10/20.
LEXICON_TOKEN_PRUNE = 10.0
LEXICON_BEAM_PRUNE = 20.0
#: Committing words in a stream: words that every beam within this much (log-prob) of the
#: best shares are committed, and the weaker beams that spell them otherwise are dropped,
#: so committed text still never changes. On real/dev (asr eval --stream, beam + LM, 100 ms
#: chunks) it took the median commit delay from 0.62 s (every beam had to agree) to 0.40 s
#: at a WER of 0.523 against 0.522; 3.0 gave 0.54 s at 0.520. Not with a lexicon, whose
#: wide beams keep other spellings alive on purpose.
COMMIT_MARGIN = 1.5
#: Space cells a beam state remembers grouped words at (the oldest are forgotten first).
GROUPED_CACHE = 32
#: How many hypotheses ``nbest`` returns.
DEFAULT_NBEST = 5
#: LM weight (alpha) and per-word bonus (beta) of LM fusion; tools/tune_lm.py tunes them on dev.
DEFAULT_LM_WEIGHT = 0.5
DEFAULT_WORD_BONUS = -1.0
#: How much (natural log, before the LM weight) finishing a word may raise a prefix's LM
#: score above its estimate while spelled: extensions are pruned early with this margin.
LM_SLACK = 5.0
#: Boost (natural log) of a hotword given without ``:BOOST``.
DEFAULT_HOTWORD_BOOST = 16.0
#: The largest hotword boost accepted (log units): beyond it a hotword swallows everything.
MAX_HOTWORD_BOOST = 50.0
