import pytest

from asr.text import CHARACTERS, Vocabulary, normalize, number_to_words


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("It's the dogs' bowl.", "it's the dogs' bowl"),
        ("\u2018Quoted\u2019 words", "quoted words"),
        ("I have 3 cats and 21 dogs", "i have three cats and twenty one dogs"),
        ("the 1st and 22nd of May", "the first and twenty second of may"),
        (
            "in 1984 and 1900, 1066 men",
            "in nineteen eighty four and nineteen hundred one thousand sixty six men",
        ),
        ("1,500,000 people", "one million five hundred thousand people"),
        ("2.5% of $40", "two point five percent of forty dollars"),
        ("call 007", "call zero zero seven"),
        ("Caf\u00e9 na\u00efve co-operate", "cafe naive co operate"),
        ("Stra\u00dfe \u00c6sop \u00d8rsted \u0141\u00f3d\u017a", "strasse aesop orsted lodz"),
        ("rock & roll", "rock and roll"),
        ("  many   spaces\tand\nlines ", "many spaces and lines"),
        ("--- ... !!!", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_output_alphabet() -> None:
    text = normalize("Mr. O'Neil paid \u00a3300 for 12\u00bd kg @ 9:45pm \u2014 really?!")
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyz' ")
    assert "  " not in text and text == text.strip()


def test_number_to_words() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(105) == "one hundred five"
    assert number_to_words(2_000_019) == "two million nineteen"


def test_vocabulary_round_trip() -> None:
    vocab = Vocabulary()
    assert vocab.blank == 0 and CHARACTERS[0] == "<blank>"
    assert len(vocab) == 29 and vocab.space == 1 and vocab.tokens[2] == "'"
    ids = vocab.encode("don't stop")
    assert 0 not in ids
    assert vocab.decode(ids) == "don't stop"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode("caf\u00e9")
    with pytest.raises(ValueError, match="blank"):
        Vocabulary(("a", "b"))
