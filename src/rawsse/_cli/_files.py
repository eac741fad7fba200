"""Reading a recorded stream from disk for ``inspect`` and ``replay``.

A file is a cassette (JSON Lines: timed, with its request and how it ended) or a
raw SSE body (untimed); ``-`` is SSE on stdin, each read stamped with its arrival.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._cassette import Cassette, load_cassettes
from .._errors import CassetteError
from ..inspect import (
    DEFAULT_STALL_THRESHOLD,
    StreamInspector,
    StreamReport,
    inspect_cassette,
    inspect_stream,
)
from ._output import UsageError, reason

__all__ = ["Recording", "add_file_argument", "read_recording"]

_EXCHANGE = re.compile(r"^(.+)#(\d+)$")


@dataclass(frozen=True)
class Recording:
    """A stream read from disk: a cassette (timed), a raw ``.sse`` body (untimed) or stdin."""

    path: str
    kind: str
    """``cassette``, ``sse`` or ``stdin``."""
    chunks: list[tuple[float | None, bytes]]
    end: str | None
    end_error: str | None
    end_t: float | None
    http_status: int | None
    response_t: float | None
    request: dict[str, Any] | None
    recorded_at: str | None = None
    cassette: Cassette | None = None
    """The cassette read, for a ``cassette``."""

    @property
    def choices(self) -> int:
        """How many choices the recorded answer has (so they can be labelled from the start)."""
        return len(self.report(DEFAULT_STALL_THRESHOLD).result.choices)

    def inspector(self) -> StreamInspector:
        """A ``StreamInspector`` for this response (feed it ``chunks``, then ``close``)."""
        return StreamInspector(http_status=self.http_status, response_t=self.response_t)

    def report(self, stall_threshold: float) -> StreamReport:
        """The inspector's report on the whole recording."""
        if self.cassette is not None:
            return inspect_cassette(self.cassette, stall_threshold=stall_threshold)
        return inspect_stream(self.chunks, stall_threshold=stall_threshold, end_t=self.end_t)


def add_file_argument(parser: argparse.ArgumentParser, *, mention_stdin: bool = False) -> None:
    """The ``FILE`` argument, for ``read_recording``."""
    cassette = "a cassette (FILE#N: exchange N of a file holding several)"
    if mention_stdin:
        what = f"{cassette}, a raw .sse body, or '-': SSE on stdin, timed as it arrives"
    else:
        what = f"{cassette} or a raw .sse body"
    parser.add_argument("file", metavar="FILE", help=what)


def read_recording(path: str) -> Recording:
    """Read ``path``: JSON Lines is a cassette, anything else a raw SSE body.

    A cassette file holding several exchanges (appended by a recorder) needs one
    named: ``FILE#N`` is exchange N (from 1).  Raises ``UsageError`` with a
    one-line reason when the file cannot be read.
    """
    if path == "-":
        return _read_stdin()
    exchange = None
    picked = _EXCHANGE.match(path)
    if picked is not None and not Path(path).exists():
        path, exchange = picked.group(1), int(picked.group(2))
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{path}: is a directory, not a cassette or .sse file")
    if not p.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        with p.open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if p.suffix == ".jsonl" or head.lstrip().startswith(b'{"format"') or exchange is not None:
        return _read_cassette(path, exchange)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return Recording(
        path, "sse", [(None, data)] if data else [], "eof", None, None, None, None, None
    )


def _read_stdin() -> Recording:
    """A raw SSE body from stdin, each read stamped with its arrival time.

    So ``curl -sN ... | rawsse inspect -`` shows the timing of any endpoint
    (times count from the start of ``rawsse``, not from the request).
    """
    start = time.monotonic()
    fd = sys.stdin.fileno()
    chunks: list[tuple[float | None, bytes]] = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append((round(time.monotonic() - start, 6), data))
    end_t = round(time.monotonic() - start, 6)
    return Recording("-", "stdin", chunks, "eof", None, end_t, None, None, None)


def _read_cassette(path: str, exchange: int | None) -> Recording:
    try:
        cassettes = load_cassettes(path)
    except CassetteError as exc:
        raise UsageError(f"not a usable cassette: {reason(exc)}") from None
    count = len(cassettes)
    if exchange is None and count > 1:
        raise UsageError(f"{path} holds {count} exchanges: name one, {path}#1 to {path}#{count}")
    if exchange is not None and not 1 <= exchange <= count:
        raise UsageError(f"{path} holds {count} exchange(s): there is no #{exchange}")
    cassette = cassettes[(exchange or 1) - 1]
    if exchange is not None:
        path = f"{path}#{exchange}"
    return Recording(
        path=path,
        kind="cassette",
        chunks=list(cassette.chunks),
        end=cassette.end,
        end_error=cassette.error,
        end_t=cassette.end_t,
        http_status=cassette.status,
        response_t=cassette.response_t,
        request=dict(cassette.request),
        recorded_at=cassette.recorded_at,
        cassette=cassette,
    )
