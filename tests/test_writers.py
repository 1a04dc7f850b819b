import json

from asr.decoding import Word
from asr.writers import WRITERS, Transcript, cues, timestamp

WORDS = [
    Word("hello", 0.5, 0.9, 0.9),
    Word("world", 1.0, 1.4, 0.8),
    Word("after", 3.0, 3.3, 0.7),  # a 1.6 s pause starts a new cue
    Word("the", 3.35, 3.5, 0.95),
    Word("pause", 3.6, 4.1, 0.85),
]
T = Transcript("a.wav", "hello world after the pause", WORDS, 4.5)


def test_timestamps() -> None:
    assert timestamp(3723.456) == "01:02:03.456"
    assert timestamp(0.0016, ",") == "00:00:00,002"
    assert timestamp(-1) == "00:00:00.000"


def test_txt() -> None:
    assert WRITERS["txt"](T) == "hello world after the pause\n"


def test_json_contract() -> None:
    obj = json.loads(WRITERS["json"](T))
    assert set(obj) == {"audio", "text", "words", "duration"}
    assert obj["audio"] == "a.wav" and obj["duration"] == 4.5
    assert obj["words"][1] == {"word": "world", "start": 1.0, "end": 1.4, "confidence": 0.8}


def test_srt() -> None:
    assert WRITERS["srt"](T) == (
        "1\n00:00:00,500 --> 00:00:01,500\nhello world\n\n2\n00:00:03,000 --> 00:00:04,100\nafter the pause\n"
    )


def test_vtt() -> None:
    assert WRITERS["vtt"](T) == (
        "WEBVTT\n\n00:00:00.500 --> 00:00:01.500\nhello world\n\n"
        "00:00:03.000 --> 00:00:04.100\nafter the pause\n"
    )


def test_long_speech_is_split_into_short_cues() -> None:
    words = [Word(f"word{i}", i * 0.3, i * 0.3 + 0.25, 1.0) for i in range(60)]
    out = cues(words)
    assert len(out) >= 5
    for start, end, text in out:
        lines = text.split("\n")
        assert end - start <= 6.0 and len(lines) <= 2 and all(len(line) <= 42 for line in lines)
    assert " ".join(text.replace("\n", " ") for _, _, text in out) == " ".join(w.word for w in words)
    assert any("\n" in text for _, _, text in out)  # two lines where one would be too long


def test_two_lines_break_evenly() -> None:
    said = "the quick brown fox jumps over the lazy dog and then runs into the woods"
    words = [Word(w, i * 0.2, i * 0.2 + 0.15, 1.0) for i, w in enumerate(said.split())]
    ((_, _, text),) = cues(words)
    first, second = text.split("\n")
    assert f"{first} {second}" == said and abs(len(first) - len(second)) <= 6


def test_short_cues_stay_up_long_enough_to_read() -> None:
    words = [Word("to", 5.0, 5.12, 1.0), Word("go", 5.95, 6.05, 1.0), Word("now", 9.0, 9.2, 1.0)]
    out = cues(words, duration=9.5)
    assert [round(e - s, 3) for s, e, _ in out] == [
        0.91,
        1.0,
        0.5,
    ]  # up to the next cue, 1 s, the audio's end
    assert out[0][1] < out[1][0]  # a gap before the next cue
    # A word cut off by the end of the audio (its frames run 30 ms past it): not past the end.
    assert cues([Word("cut", 1.2, 1.68, 1.0)], duration=1.647) == [(1.2, 1.647, "cut")]


def test_no_words() -> None:
    empty = Transcript("a.wav", "", [], 1.0)
    assert WRITERS["srt"](empty) == "" and WRITERS["vtt"](empty) == "WEBVTT\n\n"
