"""Cassette format v1: one recorded HTTP exchange as JSON Lines, byte-exact.

Line 1 is the header (``format``, ``recorded_at``, the redacted request, the
response status, headers and ``t``); then one line per received chunk
(``{"t": ..., "text": ...}`` when the chunk is valid UTF-8 on its own, else
``{"t": ..., "b64": ...}``); the last line says how the body ended
(``{"t": ..., "end": "eof"}``, ``"error"`` with ``"error": "Exc: message"``, or
``"closed"`` when the consumer closed the response early).  A file without an
end line reads as ``end == "missing"``.  Every ``t`` is seconds since the
request was sent.  Concatenating the chunks gives the body exactly.

A file may hold several exchanges one after another (``append_cassette``, and a
recorder writing to one file): each starts with its own header line.
``load_cassettes`` reads them all, in order; ``load_cassette`` wants exactly one.

Secrets are redacted by ``redact_request``/``redact_headers`` and again by the
writer, so a key never reaches the disk whoever built the ``Cassette``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from ._constants import END_CLOSED, END_EOF, END_ERROR, END_MISSING
from ._errors import CassetteError
from ._json import loads_bounded
from ._redact import redact_headers, redact_request

__all__ = [
    "FORMAT",
    "MAX_DEPTH",
    "MAX_SECONDS",
    "Cassette",
    "append_cassette",
    "body_json",
    "dumps_cassette",
    "is_cassette_file",
    "load_cassette",
    "load_cassettes",
    "loads_cassette",
    "loads_cassettes",
    "save_cassette",
]

FORMAT = 1
"""The cassette format this version of rawsse reads and writes."""

_ENDS = (END_EOF, END_ERROR, END_CLOSED)


def body_json(content: bytes) -> Any:
    """A request body as the cassette stores it: parsed JSON, else text, else base64 text."""
    if not content:
        return None
    try:
        return loads_bounded(content, max_depth=MAX_DEPTH)  # what load_cassette accepts
    except ValueError:  # UnicodeDecodeError too
        pass
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return "b64:" + base64.b64encode(content).decode("ascii")


@dataclass(frozen=True)
class Cassette:
    """One recorded exchange.

    ``request`` is the redacted request (``method``, ``url``, ``headers``,
    ``body``); ``chunks`` the body as received, ``(t, bytes)`` each; ``end`` one
    of ``"eof"``, ``"error"``, ``"closed"``, ``"missing"``; ``error`` the
    ``"ExcType: message"`` of an ``"error"`` end.
    """

    request: dict[str, Any]
    status: int
    headers: dict[str, str]
    chunks: list[tuple[float, bytes]]
    end: str = END_EOF
    error: str | None = None
    response_t: float = 0.0
    """Seconds from sending the request to the response headers."""
    end_t: float | None = None
    """Seconds from sending the request to the end of the body (None: unknown)."""
    recorded_at: str = ""
    path: Path | None = field(default=None, compare=False)
    """The file it was read from, if any."""

    @classmethod
    def from_body(
        cls,
        body: bytes | Iterable[bytes],
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
        url: str = "https://openrouter.ai/api/v1/chat/completions",
        request_body: Any = None,
        interval: float = 0.0,
    ) -> Cassette:
        """A cassette serving ``body`` (bytes, or its chunks) with no real recording.

        Chunk ``i`` is stamped ``i * interval`` seconds; the content type is
        ``text/event-stream`` unless ``headers`` say otherwise.
        """
        pieces = [body] if isinstance(body, (bytes, bytearray)) else list(body)
        chunks = [(round(i * interval, 6), bytes(p)) for i, p in enumerate(pieces) if p]
        hdrs = {"content-type": "text/event-stream"}
        hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
        return cls(
            request={"method": method, "url": url, "headers": {}, "body": request_body},
            status=status,
            headers=hdrs,
            chunks=chunks,
            end=END_EOF,
            end_t=round(len(pieces) * interval, 6),
            recorded_at=_now_iso(),
        )

    @property
    def body(self) -> bytes:
        """The body exactly as received (the chunks concatenated)."""
        return b"".join(data for _, data in self.chunks)

    @property
    def method(self) -> str:
        return str(self.request.get("method", "GET")).upper()

    @property
    def url(self) -> str:
        return str(self.request.get("url", ""))

    @property
    def model(self) -> str | None:
        """The request body's ``model``, when it has one."""
        body = self.request.get("body")
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) else None

    @property
    def name(self) -> str:
        """The file name without ``.jsonl`` (or the model, or ``"cassette"``)."""
        if self.path is not None:
            return self.path.name.removesuffix(".jsonl")
        return self.model or "cassette"


def _now_iso() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- writing ---------------------------------------------------------------------------


_encode = json.JSONEncoder(ensure_ascii=False).encode


def _safe(line: str) -> str:
    # Readable UTF-8, but the characters some readers split lines on stay escaped.
    return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")


def _line(obj: dict[str, Any]) -> str:
    return _safe(_encode(obj))


def _chunk_line(t: float, data: bytes) -> str:
    # Formatted by hand (one line per chunk, the bulk of a file): the same bytes as
    # json.dumps({"t": t, "text": ...}, ensure_ascii=False), twice as fast.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f'{{"t": {float(t)!r}, "b64": "{base64.b64encode(data).decode("ascii")}"}}'
    return _safe(f'{{"t": {float(t)!r}, "text": {_encode(text)}}}')


def dumps_cassette(cassette: Cassette) -> bytes:
    """The cassette as format v1 bytes (redacting the request and headers again)."""
    req = cassette.request
    raw_headers = req.get("headers") or {}
    request = redact_request(
        str(req.get("method", "GET")),
        str(req.get("url", "")),
        [(str(k), str(v)) for k, v in dict(raw_headers).items()],
        req.get("body"),
    )
    header = {
        "format": FORMAT,
        "recorded_at": cassette.recorded_at or _now_iso(),
        "request": request,
        "response": {
            "status": cassette.status,
            "headers": redact_headers(cassette.headers),
            "t": cassette.response_t,
        },
    }
    lines = [_line(header)]
    lines += [_chunk_line(t, data) for t, data in cassette.chunks if data]
    if cassette.end != END_MISSING:
        last = cassette.chunks[-1][0] if cassette.chunks else cassette.response_t
        end: dict[str, Any] = {
            "t": cassette.end_t if cassette.end_t is not None else last,
            "end": cassette.end,
        }
        if cassette.end == END_ERROR:
            end["error"] = cassette.error or "unknown error"
        lines.append(_line(end))
    return ("\n".join(lines) + "\n").encode("utf-8")


def save_cassette(cassette: Cassette, path: str | os.PathLike[str]) -> Path:
    """Write ``cassette`` to ``path`` (format v1; parent directories are created).

    The file is written beside and renamed into place, so a reader never sees
    half of it.  Returns the path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = dumps_cassette(cassette)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


def append_cassette(cassette: Cassette, path: str | os.PathLike[str]) -> Path:
    """Add ``cassette`` after the exchanges already in ``path`` (created, with its parents,
    when missing).  ``CassetteError`` when ``path`` holds something that is not a cassette.

    The exchange is appended in one write, so concurrent recorders never lose one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = dumps_cassette(cassette)
    if not is_cassette_file(target, missing_ok=True):
        raise CassetteError(f"{target}: exists and is not a cassette; not appending to it")
    with target.open("ab") as out:
        if out.tell() and not _ends_with_newline(target):
            data = b"\n" + data  # a torn last line stays its own (damaged) line
        out.write(data)
    return target


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def is_cassette_file(path: str | os.PathLike[str], *, missing_ok: bool = False) -> bool:
    """Whether ``path``'s first line is a cassette header (an empty file counts as one
    when ``missing_ok``, as does a missing file)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            first = f.readline()
    except FileNotFoundError:
        return missing_ok
    except OSError:
        return False
    if not first.strip():
        return missing_ok
    try:
        header = json.loads(first)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "format" in header


# -- reading ---------------------------------------------------------------------------


def load_cassette(path: str | os.PathLike[str]) -> Cassette:
    """Read a one-exchange cassette file; ``CassetteError`` (naming file and line) when it
    is damaged or holds several exchanges (read those with ``load_cassettes``)."""
    cassettes = load_cassettes(path)
    if len(cassettes) > 1:
        raise CassetteError(
            f"{path}: holds {len(cassettes)} exchanges, not one; read them with load_cassettes()"
        )
    return cassettes[0]


def load_cassettes(path: str | os.PathLike[str]) -> list[Cassette]:
    """Read every exchange of a cassette file, in order (at least one)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CassetteError(f"{p}: no such cassette") from None
    except IsADirectoryError:
        raise CassetteError(f"{p}: is a directory, not a cassette file") from None
    except OSError as exc:
        raise CassetteError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return [dataclasses.replace(c, path=p) for c in loads_cassettes(data, source=str(p))]


MAX_SECONDS = 7 * 86400.0
"""The largest ``t`` a cassette may hold (a week); a larger one is a ``CassetteError``."""
MAX_DEPTH = 128
"""Arrays and objects in a cassette line may nest this deep (a request's JSON schemas)."""

# RFC 9110: a field name is a token; a value is visible characters, spaces and tabs
# (and obs-text).  CR, LF, NUL and the other controls would let a served value
# inject headers, so they are refused.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _seconds(
    value: object, what: str, lineno: int, fail: Callable[[int, str], CassetteError]
) -> float:
    if not _number(value):
        raise fail(lineno, f"bad or missing {what} {value!r}")
    if not value <= MAX_SECONDS:  # also inf, and ints too large for a float
        raise fail(lineno, f"{what} {value!r} is beyond the limit of {MAX_SECONDS:g} seconds")
    return float(value)


def _parse_lines(lines: list[bytes], fail: Callable[[int, str], CassetteError]) -> list[Any]:
    # One line, one value: never the whole file as one array, where lines that are
    # each damaged could join into valid JSON.  The file is decoded once; only a
    # failure looks for the line to blame.
    try:
        texts = b"\n".join(lines).decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        lineno = b"\n".join(lines)[: exc.start].count(b"\n") + 1
        raise fail(lineno, "not UTF-8") from None
    records: list[Any] = []
    append = records.append
    try:
        for text in texts:
            append(loads_bounded(text, max_depth=MAX_DEPTH))
    except ValueError as exc:
        raise fail(len(records) + 1, f"damaged JSON ({exc})") from None
    return records


def _check_headers(headers: object, fail: Callable[[int, str], CassetteError]) -> dict[str, str]:
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise fail(1, 'bad "response.headers": needs an object of strings')
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise fail(1, f"bad response header name {name!r}: not an HTTP token")
        if _HEADER_CONTROL.search(value):
            raise fail(1, f"bad response header {name!r}: its value holds a control character")
    return {name.lower(): value for name, value in headers.items()}


def loads_cassette(data: bytes, *, source: str = "<cassette>") -> Cassette:
    """Parse format v1 bytes of one exchange; ``source`` names the file in errors."""
    cassettes = loads_cassettes(data, source=source)
    if len(cassettes) > 1:
        raise CassetteError(
            f"{source}: holds {len(cassettes)} exchanges, not one; read them with loads_cassettes()"
        )
    return cassettes[0]


def loads_cassettes(data: bytes, *, source: str = "<cassette>") -> list[Cassette]:
    """Parse format v1 bytes holding one or more exchanges, each from its header line."""

    def fail(lineno: int, why: str) -> CassetteError:
        return CassetteError(f"{source}, line {lineno}: {why}")

    # Split on LF only: str.splitlines() would also split on U+2028 and friends.
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines or not lines[0].strip():
        raise fail(1, "empty file: no cassette header")
    records = _parse_lines(lines, fail)
    # A header line (an object with "format") starts the next exchange; chunk and
    # end lines never have that key.
    starts = [i for i, r in enumerate(records) if isinstance(r, dict) and "format" in r]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)  # the first line must be a header: _exchange says why not
    bounds = [*starts, len(records)]
    return [_exchange(records[a:b], a, fail) for a, b in itertools.pairwise(bounds)]


def _exchange(
    records: list[Any], offset: int, file_fail: Callable[[int, str], CassetteError]
) -> Cassette:
    """One exchange from its records; ``offset`` is its first line's index in the file."""

    def fail(lineno: int, why: str) -> CassetteError:
        return file_fail(lineno + offset, why)  # line numbers count from the file's start

    header = records[0]
    if not isinstance(header, dict) or "format" not in header:
        raise fail(1, 'missing header: the first line must be {"format": 1, ...}')
    version = header["format"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail(1, f"bad format {version!r}")
    if version > FORMAT:
        raise fail(
            1,
            f"format {version} is newer than this rawsse reads (format {FORMAT}); upgrade rawsse",
        )
    request = header.get("request")
    response = header.get("response")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        raise fail(1, 'bad "request": needs an object with "method" and "url"')
    if not isinstance(request.get("url"), str):
        raise fail(1, 'bad "request": needs an object with "method" and "url"')
    if not isinstance(response, dict):
        raise fail(1, 'bad "response": needs an object with "status" and "headers"')
    status = response.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
        raise fail(1, f'bad "response.status" {status!r}')
    headers = _check_headers(response.get("headers", {}), fail)
    response_t = _seconds(response.get("t", 0.0), '"response.t"', 1, fail)
    request_headers = request.get("headers", {})
    if not isinstance(request_headers, dict):
        raise fail(1, 'bad "request.headers": needs an object')
    recorded_at = header.get("recorded_at", "")
    if not isinstance(recorded_at, str):
        raise fail(1, f'bad "recorded_at" {recorded_at!r}')

    chunks: list[tuple[float, bytes]] = []
    end, error, end_t = END_MISSING, None, None
    for i, rec in enumerate(records[1:], 2):
        if end != END_MISSING:
            raise fail(i, f'a line after the end line (end was "{end}")')
        if not isinstance(rec, dict):
            raise fail(i, "a line must be a JSON object")
        t = _seconds(rec.get("t"), '"t"', i, fail)
        if "end" in rec:
            end = rec["end"]
            if end not in _ENDS:
                raise fail(i, f'bad "end" {end!r} (expected one of {", ".join(_ENDS)})')
            error = rec.get("error")
            if end == END_ERROR and not isinstance(error, str):
                raise fail(i, 'an "error" end needs an "error" string')
            end_t = t
        elif "text" in rec:
            if not isinstance(rec["text"], str) or "b64" in rec:
                raise fail(i, 'bad chunk: "text" must be a string (and no "b64")')
            try:
                chunks.append((t, rec["text"].encode("utf-8")))
            except UnicodeEncodeError:
                raise fail(i, 'bad chunk: "text" holds a lone surrogate') from None
        elif "b64" in rec:
            b64 = rec["b64"]
            try:
                if not isinstance(b64, str):
                    raise TypeError
                chunks.append((t, base64.b64decode(b64, validate=True)))
            except (TypeError, binascii.Error):
                raise fail(i, 'bad chunk: "b64" is not base64') from None
        else:
            raise fail(i, 'a line needs "text", "b64" or "end"')

    return Cassette(
        request=request,
        status=status,
        headers=headers,
        chunks=chunks,
        end=end,
        error=error if end == END_ERROR else None,
        response_t=response_t,
        end_t=end_t,
        recorded_at=recorded_at,
    )
