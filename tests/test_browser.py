"""End to end in a real browser: headless Chromium hears a WAV file as its microphone,
the page served by ``asr serve`` streams it over the WebSocket and shows the words.

Set ASR_SCREENSHOT=PATH to keep a screenshot of the page (the README's comes from here).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from tests.cdp import Page, find_browser
from tests.conftest import speak, start_server

SPOKEN = "one two three four five"


def _browser_or_skip() -> None:
    if find_browser() is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_page_shows_the_words_spoken_into_the_microphone(tmp_path: Path) -> None:
    _browser_or_skip()
    # Commas make espeak-ng pause between the digits, as someone reading them out would.
    speech = speak(SPOKEN.replace(" ", ", "), tmp_path / "speech.wav", speed=140)
    silence = np.zeros(16000, np.float32)
    # Silence around the speech: the endpoint rule ends the utterance while streaming.
    sf.write(
        tmp_path / "mic.wav", np.concatenate([silence, speech, silence, silence]), 16000, subtype="PCM_16"
    )
    seconds = (len(speech) + 3 * 16000) / 16000
    server, url = start_server()
    try:
        shown, status = asyncio.run(_drive(url + "?autostart&beam", tmp_path / "mic.wav", seconds))
    finally:
        server.terminate()
        server.wait(20)
    assert status == "done", status
    # The browser resamples the file to its own clock, so the frames fall a little
    # differently than offline; the weak default model then sometimes hears "two" as its
    # homophone "to", or "one" as "on". So one word in five may be misheard, but all five
    # must be there, and the last one exactly: the final flush must not lose it.
    words = shown.split()
    assert jiwer.wer(SPOKEN, shown) <= 0.2, f"the page showed {shown!r}"
    assert len(words) == 5 and words[-1] == "five", f"the page showed {shown!r}"


async def _drive(url: str, wav: Path, seconds: float) -> tuple[str, str]:
    async with Page(url, wav) as page:
        status = ""
        for _ in range(200):  # the microphone opens and the server answers "ready"
            status = await page.evaluate("document.getElementById('status').textContent")
            if status == "listening":
                break
            await asyncio.sleep(0.05)
        assert status == "listening", status
        await asyncio.sleep(seconds + 0.5)  # the file plays in real time
        committed = "[...document.querySelectorAll('#committed p')].map(p => p.lastChild.textContent)"
        during = await page.evaluate(committed)
        assert during, "no final result arrived while streaming (endpoint)"
        await page.evaluate("document.getElementById('stop').click()")
        for _ in range(200):
            status = await page.evaluate("document.getElementById('status').textContent")
            if status != "finishing…":
                break
            await asyncio.sleep(0.05)
        if os.environ.get("ASR_SCREENSHOT"):
            await page.screenshot(Path(os.environ["ASR_SCREENSHOT"]))
        return " ".join(await page.evaluate(committed)), status
