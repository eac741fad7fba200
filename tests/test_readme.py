"""README.md's Python snippets run as written.

Each ```python block runs as a script in a fresh interpreter, in a temporary
folder that sees the project's ``fixtures/``.  A block that would stream from a
remote server (it calls ``stream(`` or ``complete(`` with neither ``base_url=``
nor ``http_client=``) needs a key and the network and is only compiled.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, re.S | re.M)


def _needs_the_network(code: str) -> bool:
    streams = "stream(" in code or "complete(" in code
    return streams and "base_url=" not in code and "http_client=" not in code


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    (cwd / "fixtures").symlink_to(ROOT / "fixtures")
    env = {**os.environ, "OPENROUTER_API_KEY": "sk-or-readme-placeholder", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_readme_has_python_snippets() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_readme_snippet_runs(code: str, tmp_path: Path) -> None:
    compile(code, "README.md", "exec")
    if _needs_the_network(code):
        return
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr


def test_the_sans_io_snippet_prints_what_its_comments_say(tmp_path: Path) -> None:
    (code,) = [b for b in BLOCKS if "rawsse.SSEDecoder()" in b]
    expected = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    assert _run(code, tmp_path).stdout.splitlines() == expected


def test_the_typed_events_snippet_prints_what_its_comment_says(tmp_path: Path) -> None:
    (code,) = [b for b in BLOCKS if "rawsse.ChatDecoder()" in b]
    assert _run(code, tmp_path).stdout.splitlines() == ["Hello!", "complete stop 1e-05"]
