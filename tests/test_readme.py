"""Every ```python block in README.md runs as written, in a fresh interpreter, from an
empty directory (as on a fresh install: nothing from the repository but the package)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import start_server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: The address the client example uses: ``asr serve``'s default.
SERVE_URL = "ws://127.0.0.1:8765/ws"


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line, code)`` of each ```python block, fenced at any indent (blocks in lists)."""
    blocks = []
    for match in re.finditer(r"^([ \t]*)```python[ \t]*\n(.*?)^\1```[ \t]*$", text, re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, textwrap.dedent(match.group(2))))
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_its_python_examples() -> None:
    # Guards the parser: a broken pattern would otherwise test nothing.
    assert len(BLOCKS) >= 5
    assert all(code.strip() for _, code in BLOCKS)


@pytest.mark.parametrize(
    "code", [code for _, code in BLOCKS], ids=[f"README.md:{line}" for line, _ in BLOCKS]
)
def test_readme_python_block_runs(code: str, tmp_path: Path) -> None:
    server = None
    if SERVE_URL in code:
        # The client example talks to a running server: start one on a free port.
        server, http_url = start_server()
        code = code.replace(SERVE_URL, http_url.replace("http://", "ws://").rstrip("/") + "/ws")
    try:
        # One thread: the examples are tiny, and on a busy machine more threads only wait.
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert done.stdout.strip(), "the example printed nothing"
