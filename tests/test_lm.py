import gzip
import math
import sys
from pathlib import Path

import pytest

from asr.lm import EOS, UNK, LanguageModelError, NgramLM, load_lm, read_lexicon

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import build_lm

TEXT = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the cat ate the fish",
    "a dog ate a bone",
    "the fish sat",
]


def lm_from(sentences: list[str], tmp_path: Path, **kwargs) -> NgramLM:
    model = build_lm.estimate([s.split() for s in sentences], **kwargs)
    path = str(tmp_path / "lm.arpa.gz")
    build_lm.write_arpa(model, path)
    return load_lm(path)


def vocabulary_of(lm: NgramLM) -> list[str]:
    return [*sorted(lm.words), EOS, UNK]


@pytest.mark.parametrize("prune", [(), (1, 2), (2, 2)])
def test_every_context_sums_to_one(tmp_path: Path, prune: tuple[int, ...]) -> None:
    lm = lm_from(TEXT, tmp_path, order=3, prune=prune)
    contexts = [("<s>",), ("the",), ("the", "cat"), ("sat", "on"), ("zebra", "the"), ("<s>", "a"), ("ate",)]
    for context in contexts:
        total = sum(10 ** lm.log10_prob(context, w) for w in vocabulary_of(lm))
        assert total == pytest.approx(1.0, abs=1e-5), context


def test_hand_computed_kneser_ney(tmp_path: Path) -> None:
    # Too little text for count-of-count discounts: D1 = .5, D2 = 1 (FALLBACK_DISCOUNTS).
    lm = lm_from(["a b", "a b", "a c"], tmp_path, order=2)
    # Continuation counts: a 1 (after <s>), b 1, c 1, </s> 2 (after b and c); total 5.
    # gamma = (.5 * 3 + 1 * 1) / 5 = .5, spread over 5 words (a b c </s> <unk>).
    assert 10 ** lm.log10_prob((), "a") == pytest.approx((1 - 0.5) / 5 + 0.5 / 5)
    assert 10 ** lm.log10_prob((), EOS) == pytest.approx((2 - 1) / 5 + 0.5 / 5)
    assert 10 ** lm.log10_prob((), "zzz") == pytest.approx(0.5 / 5)  # <unk>
    # After "a": raw counts b 2, c 1; gamma = (.5 + 1) / 3.
    assert 10 ** lm.log10_prob(("a",), "b") == pytest.approx((2 - 1) / 3 + 0.5 * 0.2)
    assert 10 ** lm.log10_prob(("a",), "a") == pytest.approx(0.5 * 0.2)


def test_discounts_from_counts_of_counts() -> None:
    counts = [1] * 40 + [2] * 20 + [3] * 10 + [4] * 5
    y = 40 / (40 + 2 * 20)
    expected = (1 - 2 * y * 20 / 40, 2 - 3 * y * 10 / 20, 3 - 4 * y * 5 / 10)
    assert build_lm.discounts(counts) == pytest.approx(expected)


def test_seen_context_beats_backoff(tmp_path: Path) -> None:
    lm = lm_from(TEXT * 3, tmp_path, order=3)
    assert lm.log10_prob(("sat",), "on") > lm.log10_prob(("sat",), "fish")
    assert lm.log10_prob(("the", "cat"), "sat") > lm.log10_prob(("a", "dog"), "sat")
    logprob, state = lm.score(lm.begin(), "the")
    assert logprob == pytest.approx(lm.log10_prob(("<s>",), "the") * math.log(10))
    assert state == ("<s>", "the")
    assert lm.sentence_log10(["the", "cat", "sat"]) > lm.sentence_log10(["sat", "cat", "the"])


def test_prefix_tree_keeps_best_unigram(tmp_path: Path) -> None:
    lm = lm_from(TEXT, tmp_path, order=2)
    tree = lm.prefix_tree()
    node = tree.children["c"].children["a"]
    assert node.children["t"].is_word and not node.is_word
    assert node.best == pytest.approx(lm.log10_prob((), "cat") * math.log(10))
    assert tree.best == pytest.approx(max(lm.log10_prob((), w) for w in lm.words) * math.log(10))


def test_build_lm_cli_and_vocab_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "text.txt"
    text.write_text("The Cat sat.\nthe cat sat on 2 mats!\n")
    out = tmp_path / "lm.arpa"
    assert build_lm.main([str(text), "--order", "2", "--vocab-size", "3", "--out", str(out)]) == 0
    lm = load_lm(out)
    assert lm.words == {"the", "cat", "sat"}  # normalised; the rest became <unk>
    assert "2-grams" in capsys.readouterr().out
    assert build_lm.main([str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    # Latin-1 text is read as such (with a warning), not with its accented letters dropped.
    # A stray Latin-1 line does not turn the file's UTF-8 lines into mojibake.
    latin = tmp_path / "latin.txt"
    latin.write_bytes("na\u00efve d\u00e9j\u00e0 vu\n".encode() + "caf\xe9 au lait\n".encode("latin-1"))
    assert build_lm.read_sentences([str(latin)], False, []) == [
        ["naive", "deja", "vu"],
        ["cafe", "au", "lait"],
    ]
    assert "1 lines are not UTF-8 text; read them as Latin-1" in capsys.readouterr().err


def test_bad_arpa_files_raise_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(LanguageModelError, match="no such language model"):
        load_lm(tmp_path / "nope.arpa")
    bad = tmp_path / "bad.arpa"
    bad.write_text("hello world\n")
    with pytest.raises(LanguageModelError, match="not an ARPA file"):
        load_lm(bad)
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\n\\end\\\n")
    with pytest.raises(LanguageModelError, match="promises 2 1-grams"):
        load_lm(bad)
    bad.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\nxyz\ta\n\\end\\\n")
    with pytest.raises(LanguageModelError, match="bad 1-gram line"):
        load_lm(bad)
    gz = tmp_path / "broken.arpa.gz"
    gz.write_bytes(gzip.compress(b"\\data\\\n")[:10])
    with pytest.raises(LanguageModelError, match="cannot read"):
        load_lm(gz)


def test_read_lexicon(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("# commands\nLights\nkitchen  K IH CH AH N\n\n42\n")
    assert read_lexicon(path) == ["lights", "kitchen", "forty", "two"]
    path.write_text("# nothing\n")
    with pytest.raises(LanguageModelError, match="no words"):
        read_lexicon(path)


def test_uppercase_arpa_and_truncated_files(tmp_path: Path) -> None:
    path = tmp_path / "upper.arpa"
    path.write_text(
        "\\data\\\nngram 1=4\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\n-1.0\t<UNK>\n-0.3\tHELLO\n\\end\\\n"
    )
    assert load_lm(path).words == {"hello"}  # LibriSpeech's LMs are uppercase
    path.write_text("\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-0.5\ta\n\\end\\\n")
    with pytest.raises(LanguageModelError, match="lists 2 orders"):
        load_lm(path)
    path.write_text("\\data\\\nngram 1=many\n")
    with pytest.raises(LanguageModelError, match="bad header line"):
        load_lm(path)


def test_unknown_word_enters_the_context_as_unk(tmp_path: Path) -> None:
    # Hand-written bigram LM in which <unk> has a backoff weight and a bigram of its own.
    arpa = tmp_path / "unk.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=5\nngram 2=2\n\n\\1-grams:\n"
        "-1.0\t</s>\n-99\t<s>\t-0.3\n-1.5\t<unk>\t-0.7\n-0.5\tcat\t-0.2\n-0.6\tsat\t-0.1\n\n"
        "\\2-grams:\n-0.2\t<unk> sat\n-0.4\t<s> cat\n\n\\end\\\n"
    )
    lm = load_lm(arpa)
    # "zzz" is unknown: P(zzz | <s>) = bo(<s>) + P(<unk>); the context is then <unk>, so
    # "sat" takes the "<unk> sat" bigram; </s> backs off from "sat". KenLM gives the same
    # -3.1 and -4.2 for these two sentences.
    expected = (-0.3 - 1.5) + (-0.2) + (-0.1 - 1.0)
    assert lm.sentence_log10(["zzz", "sat"]) == pytest.approx(expected)
    # After an unknown word, a word without a bigram pays <unk>'s backoff (-0.7).
    assert lm.sentence_log10(["zzz", "cat"]) == pytest.approx((-0.3 - 1.5) + (-0.7 - 0.5) + (-0.2 - 1.0))
    # The decoder's scorer agrees with the sentence score.
    state, total = lm.begin(), 0.0
    for word in ["zzz", "cat", "</s>"]:
        logprob, state = lm.score(state, word)
        total += logprob
    assert total / math.log(10) == pytest.approx(lm.sentence_log10(["zzz", "cat"]))
