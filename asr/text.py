"""Text normalisation and the character vocabulary.

One normaliser serves training, evaluation and the synthetic-corpus tools, so that a
reference transcript and a hypothesis are always compared in the same form: lowercase
``a-z``, the apostrophe and single spaces, with numbers spelled out as words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

BLANK = "<blank>"
SPACE = " "
APOSTROPHE = "'"
#: The default character inventory: blank = 0, then space, apostrophe and a-z.
CHARACTERS: tuple[str, ...] = (BLANK, SPACE, APOSTROPHE, *"abcdefghijklmnopqrstuvwxyz")

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals "}
_CURRENCY = {"$": "dollars", "£": "pounds", "€": "euros"}
#: Integers this long or longer are read digit by digit (phone numbers, serials).
_DIGIT_RUN = 16

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'", "\u02bc": "'"})
#: Latin letters that Unicode does not decompose into a-z plus accents, spelled as English
#: text spells them ("Straße" -> "strasse", "Æsop" -> "aesop").
_LIGATURES = str.maketrans(
    {"ß": "ss", "ẞ": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ø": "o", "Ø": "o",
     "đ": "d", "Đ": "d", "ł": "l", "Ł": "l", "þ": "th", "Þ": "th", "ð": "d", "Ð": "d", "ı": "i"}
)  # fmt: skip
_NUMBER = re.compile(
    r"(?P<cur>[$£€])?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?P<ord>st|nd|rd|th)?"
    r"(?P<pct>%)?"
)


def number_to_words(n: int) -> str:
    """Spell out a non-negative integer in English words ("one hundred five")."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return number_to_words(high) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def year_to_words(n: int) -> str:
    """Read a year the way people say it: 1984 -> "nineteen eighty four"."""
    high, low = divmod(n, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    if low < 10:
        return number_to_words(high) + " oh " + number_to_words(low)
    return number_to_words(high) + " " + number_to_words(low)


def ordinal_words(cardinal: str) -> str:
    """Turn spelled cardinal words into their ordinal: "twenty one" -> "twenty first"."""
    head, _, last = cardinal.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return f"{head} {last}".strip()


def _spell_number(match: re.Match[str]) -> str:
    digits = match["int"].replace(",", "")
    if len(digits) >= _DIGIT_RUN or (len(digits) > 1 and digits.startswith("0")):
        words = " ".join(_ONES[int(d)] for d in digits)
    else:
        value = int(digits)
        plain = "," not in match["int"] and not match["frac"] and not match["cur"]
        if plain and not match["ord"] and not match["pct"] and 1100 <= value <= 1999:
            words = year_to_words(value)
        else:
            words = number_to_words(value)
    if match["ord"]:
        words = ordinal_words(words)
    if match["frac"]:
        words += " point " + " ".join(_ONES[int(d)] for d in match["frac"])
    if match["pct"]:
        words += " percent"
    if match["cur"]:
        words += " " + _CURRENCY[match["cur"]]
    return f" {words} "


def normalize(text: str) -> str:
    """Normalise text to the form the models are trained on.

    Lowercase, accents stripped ("ß" and "æ" spelled "ss" and "ae"), numbers spelled out ("3rd" -> "third", "1984" -> "nineteen
    eighty four", "2.5" -> "two point five"), punctuation removed, apostrophes kept
    inside words, whitespace collapsed. The result only holds ``a-z``, ``'`` and single
    spaces.
    """
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES).translate(_LIGATURES))
    text = "".join(c for c in text if not unicodedata.combining(c))
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    text = _NUMBER.sub(_spell_number, text.lower())
    text = re.sub(r"[^a-z' ]+", " ", text)
    # An apostrophe survives only between letters or after a plural "s" (the dogs' bowl).
    text = re.sub(r"(?<![a-z])'|'(?![a-z])(?<!s')", " ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Vocabulary:
    """Maps characters to token ids for CTC; id 0 is always the blank."""

    tokens: tuple[str, ...] = CHARACTERS

    def __post_init__(self) -> None:
        if not self.tokens or self.tokens[0] != BLANK:
            raise ValueError(f"the vocabulary must start with the blank token {BLANK!r}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("the vocabulary has duplicate tokens")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def blank(self) -> int:
        return 0

    @property
    def space(self) -> int:
        return self.tokens.index(SPACE)

    def encode(self, text: str) -> list[int]:
        """Token ids of already-normalised text; characters outside the vocabulary raise."""
        index = self._index
        try:
            return [index[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids, skipping blanks (no CTC collapsing: see the decoders)."""
        return "".join(self.tokens[i] for i in ids if i != 0)

    @cached_property
    def muted(self) -> tuple[int, ...]:
        """Ids of special tokens other than the blank (``<s>``, ``</s>``, ``<unk>``: any
        ``<...>``): the decoders never emit them, as they stand for no text."""
        return tuple(
            i for i, t in enumerate(self.tokens) if i and len(t) > 2 and t.startswith("<") and t.endswith(">")
        )

    @cached_property
    def _index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_list(cls, tokens: Sequence[str]) -> Vocabulary:
        return cls(tuple(tokens))

    @classmethod
    def from_ctc(cls, tokens: Sequence[str], blank: str | int = 0, space: str = SPACE) -> Vocabulary:
        """The vocabulary of another CTC model, for the decoders: ``tokens`` in the order
        of its output columns, ``blank`` the blank's token or index (it must be column 0,
        as for wav2vec 2.0's ``<pad>``; permute the columns otherwise), ``space`` the
        token between words (``"|"`` for wav2vec 2.0). Letters are lowercased, so that
        the LM, lexicon and hotwords (all lowercase) match them. Raises ValueError when
        the blank is not first, the space token is missing, or tokens collide. Special
        tokens such as ``<s>``, ``</s>`` and ``<unk>`` stay in their columns but are never
        emitted (``Vocabulary.muted``): they do not stand for text."""
        tokens = list(tokens)
        index = blank if isinstance(blank, int) else (tokens.index(blank) if blank in tokens else -1)
        if index != 0:
            raise ValueError(
                f"the blank {blank!r} must be the first output column (index 0), got index {index}: "
                "reorder the log-prob columns so that it comes first"
            )
        if space not in tokens:
            raise ValueError(f"the word separator {space!r} is not among the tokens")
        mapped = [BLANK] + [SPACE if t == space else t.lower() for t in tokens[1:]]
        if len(set(mapped)) != len(mapped):
            raise ValueError("tokens collide once lowercased (or with the blank or space)")
        return cls(tuple(mapped))
