"""Chunkings of a byte string, for tests that feed a stream in every way, the pieces
of a stream that matter to an SSE parser, the ``rawsse`` command in a subprocess, and
stopping a process a test started."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from tests.conftest import ROOT


def whole(data: bytes) -> list[bytes]:
    """The stream in one chunk."""
    return [data]


def byte_at_a_time(data: bytes) -> list[bytes]:
    """The stream one byte per chunk."""
    return [data[i : i + 1] for i in range(len(data))]


def every_split(data: bytes) -> Iterator[list[bytes]]:
    """The stream cut in two at every position (including both ends)."""
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


def fixed_size(data: bytes, size: int) -> list[bytes]:
    """The stream in chunks of ``size`` bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)]


SSE_PIECES = [
    b"\r",
    b"\n",
    b"\r\n",
    b":",
    b" ",
    b"data:",
    b"data: ",
    b"event:",
    b"id:",
    b"retry:",
    b"\xef\xbb\xbf",
    b"\xef",
    b"\0",
    b"7",
    b"x",
    "é".encode(),
    "🌍".encode(),
    b"\xff",
    b"\xe2\x80",
    "\u2028".encode(),
]
"""Pieces that matter to an SSE parser (line ends, field names, a BOM, cut and bad
UTF-8), for generated streams that favour them over random bytes."""


# The settings of the user running the tests that would change what the command does.
_USER_SETTINGS = (
    "NO_COLOR",
    "OPENROUTER_API_KEY",
    "PYTHONUNBUFFERED",
    "RAWSSE_API_KEY",
    "RAWSSE_BASE_URL",
)


def rawsse_cli(
    *args: str, env: Mapping[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m rawsse ARGS`` in the repository root, with none of the user's keys,
    base URL or colour setting, ``env`` added, ``stdin`` on stdin, and plain output
    (not a terminal) read as UTF-8."""
    full_env = {k: v for k, v in os.environ.items() if k not in _USER_SETTINGS}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rawsse", *args],
        cwd=ROOT,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def stop_process(process: subprocess.Popen[Any], grace: float = 10) -> None:
    """SIGTERM ``process``, SIGKILL it when it has not ended within ``grace`` seconds,
    and close its stdout pipe."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
