"""The sans-I/O Server-Sent-Events decoder and encoder (WHATWG "event stream").

Bytes go in, ``ServerSentEvent`` and ``Comment`` records come out.  The decoder
never raises anything but ``SSEProtocolError``, and only when a bound is
violated; the error's ``events`` are those the same call completed before the
violation, and after it the decoder refuses further input.

How it stays fast: each ``feed`` finds the last line end in the new bytes,
decodes everything before it as UTF-8 in one call (a line end is never inside a
multibyte sequence, so decoding whole lines is exact), turns CR and CRLF into LF
only when a CR is present, and walks the lines with the spec's rules.  Bytes
after the last line end wait, unscanned, until a later chunk ends their line.
"""

from __future__ import annotations

from typing import NoReturn, cast

from ._constants import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES
from ._errors import SSEProtocolError
from ._frozen import Frozen

__all__ = ["Comment", "SSEDecoder", "ServerSentEvent", "encode_comment", "encode_event"]


_BOM = b"\xef\xbb\xbf"
_tuple_new = tuple.__new__


class ServerSentEvent(Frozen):
    """One dispatched event."""

    __slots__ = ()
    event: str = "message"
    """The event type: the ``event`` field, or ``"message"`` when none was given."""
    data: str = ""
    """The data lines joined with LF."""
    id: str = ""
    """The last event ID in force when the event was dispatched."""
    retry: int | None = None
    """The valid ``retry`` value given inside this event's block, else None."""


class Comment(Frozen):
    """A comment line (``: text``), such as OpenRouter's ``: OPENROUTER PROCESSING``."""

    __slots__ = ()
    text: str
    """The line after the colon, with one leading space removed."""


class SSEDecoder:
    """Incremental decoder: ``feed(bytes)`` and ``close()`` return events in order.

    ``max_line_bytes`` bounds one line and ``max_event_bytes`` the data of one
    event (UTF-8 bytes); exceeding either raises ``SSEProtocolError``.  After
    ``close()`` the decoder is ready for a new stream (a reconnect) and keeps
    ``last_event_id`` and ``retry``, as the spec's reconnection state.
    """

    __slots__ = (
        "_data",
        "_data_limit",
        "_data_size",
        "_error",
        "_event_type",
        "_fast_limit",
        "_id_buffer",
        "_offset",
        "_pending",
        "_pending_size",
        "_retry_in_block",
        "_skip_lf",
        "_start",
        "last_event_id",
        "max_event_bytes",
        "max_line_bytes",
        "retry",
    )

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        if max_line_bytes < 1 or max_event_bytes < 1:
            raise ValueError("max_line_bytes and max_event_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self.last_event_id = ""
        """The last event ID string, updated at each dispatch (sent as ``Last-Event-ID``)."""
        self.retry: int | None = None
        """The reconnection time in ms from the last valid ``retry`` field, else None."""
        self._error: SSEProtocolError | None = None
        # Data sizes are counted in characters while they cannot matter; see _measure.
        self._fast_limit = max_event_bytes >> 2
        self._offset = 0
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._start: bytes | None = b""  # the first bytes, held until the BOM question is settled
        self._pending: list[bytes] = []  # bytes of the current, unterminated line
        self._pending_size = 0
        self._skip_lf = False  # the previous chunk ended with CR
        self._data: list[str] = []
        self._data_size = 0
        self._data_limit = self._fast_limit
        self._event_type = ""
        self._id_buffer = self.last_event_id
        self._retry_in_block: int | None = None
        self._offset = 0

    def feed(self, data: bytes) -> list[ServerSentEvent | Comment]:
        """Decode the next bytes of the stream; return the events they complete."""
        if self._error is not None:
            raise SSEProtocolError(f"the decoder failed earlier: {self._error}")
        if not data:
            return []
        offset = self._offset
        self._offset = offset + len(data)
        if self._start is not None:
            data = self._start + data
            if len(data) < 3 and _BOM.startswith(data):
                self._start = data
                return []
            self._start = None
            if data.startswith(_BOM):
                data = data[3:]
                offset += 3
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
                offset += 1
        # ``13 in`` is one C scan; each ``rfind`` call costs more than the scan itself.
        end = max(data.rfind(b"\n"), data.rfind(b"\r")) if 13 in data else data.rfind(b"\n")
        if end < 0:
            if data:
                self._pending.append(data)
                self._pending_size += len(data)
                if self._pending_size > self.max_line_bytes:
                    self._fail(
                        f"line longer than max_line_bytes={self.max_line_bytes} "
                        f"(at byte {self._offset} of the stream)"
                    )
            return []
        whole = end + 1 == len(data)  # the usual read: it ends with its last line
        if self._pending:
            self._pending.append(data if whole else data[: end + 1])
            chunk = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
        else:
            chunk = data if whole else data[: end + 1]
        if not whole:
            rest = data[end + 1 :]
            self._pending.append(rest)
            self._pending_size = len(rest)
        elif data[end] == 13:  # CR last: an LF at the start of the next chunk is its pair
            self._skip_lf = True
        limit = self.max_line_bytes
        if len(chunk) > limit or self._pending_size > limit:
            self._check_lines(chunk, offset)
        return self._complete_lines(chunk)

    def _complete_lines(self, chunk: bytes) -> list[ServerSentEvent | Comment]:
        """Decode ``chunk``: whole lines, each ending in CR, LF or CRLF."""
        if (
            13 not in chunk  # no CR
            and len(chunk) < self._fast_limit
            and not self._data
            and not self._event_type
            and self._retry_in_block is None
            and self._id_buffer == self.last_event_id
        ):
            if chunk.find(b"\n") == len(chunk) - 2 and chunk.startswith(b"data: "):
                # One event alone, "data: ...\n\n": a live stream's usual read.
                data = chunk[6:-2].decode("utf-8", "replace")
                return [_tuple_new(ServerSentEvent, ("message", data, self.last_event_id, None))]
            # The common chunk: "data: ..." lines and comments, each followed by a
            # blank line, and nothing pending before them.  Split the bytes and decode
            # each payload on its own: mostly-ASCII payloads decode fastest alone, and
            # one wide character no longer widens the whole chunk's text.
            lines = chunk.split(b"\n")
            lines.pop()  # the empty bytes after the last LF
            if not len(lines) & 1 and not any(lines[1::2]):
                last_id = self.last_event_id
                fast: list[ServerSentEvent | Comment | None] = [
                    _tuple_new(
                        ServerSentEvent,
                        ("message", line[6:].decode("utf-8", "replace"), last_id, None),
                    )
                    if line.startswith(b"data: ")
                    else _tuple_new(
                        Comment,
                        ((line[2:] if line[1:2] == b" " else line[1:]).decode("utf-8", "replace"),),
                    )
                    if line.startswith(b":")
                    else None
                    for line in lines[::2]
                ]
                if None not in fast:
                    return cast("list[ServerSentEvent | Comment]", fast)
        text = chunk.decode("utf-8", "replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return self._blocks(text)

    def close(self) -> list[ServerSentEvent | Comment]:
        """End of stream: discard any unterminated line or undispatched event.

        Returns the events this completes (always none, by the spec's rules) and
        readies the decoder for a new stream.
        """
        if self._error is not None:
            raise SSEProtocolError(f"the decoder failed earlier: {self._error}")
        self._reset_stream()
        return []

    def _check_lines(self, chunk: bytes, offset: int) -> None:
        # The whole lines before an over-long one are decoded first and travel with
        # the error, so the text they carry is not lost.
        pos = 0
        for line in chunk.splitlines(keepends=True):
            size = len(line.rstrip(b"\r\n"))
            if size > self.max_line_bytes:
                events = self._decoded_before(chunk[:pos])
                self._fail(
                    f"line of {size} bytes is longer than "
                    f"max_line_bytes={self.max_line_bytes} (line starts near byte "
                    f"{offset + pos} of the stream)",
                    events,
                )
            pos += len(line)
        if self._pending_size > self.max_line_bytes:
            self._fail(
                f"line longer than max_line_bytes={self.max_line_bytes} "
                f"(at byte {self._offset} of the stream)",
                self._decoded_before(chunk),
            )

    def _decoded_before(self, lines: bytes) -> list[ServerSentEvent | Comment]:
        try:
            return self._complete_lines(lines) if lines else []
        except SSEProtocolError as exc:  # an event too large among them: its own events
            return cast("list[ServerSentEvent | Comment]", exc.events)

    def _fail(
        self, message: str, events: list[ServerSentEvent | Comment] | None = None
    ) -> NoReturn:
        self._error = SSEProtocolError(message, events=events)
        raise self._error

    def _blocks(self, text: str) -> list[ServerSentEvent | Comment]:
        # ``text`` is whole lines, each ending in LF.  Split it at blank lines: a
        # block followed by "\n\n" is its lines then a dispatch.  The common block,
        # one "data:" line (or one comment) with nothing pending before it, is
        # handled here in a few C-level operations; every other block goes through
        # the line-by-line rules in _lines, which are the reference.
        out: list[ServerSentEvent | Comment] = []
        try:
            self._into(text, out)
        except SSEProtocolError as exc:
            exc.events = out  # the events dispatched before the bound was broken
            raise
        return out

    def _into(self, text: str, out: list[ServerSentEvent | Comment]) -> None:
        blocks = text.split("\n\n")
        tail = blocks.pop()  # lines after the last blank line, not yet dispatched
        if blocks:
            append = out.append
            last_id = self._id_buffer
            fast_limit = self._fast_limit
            clean = (
                not self._data
                and not self._event_type
                and self._retry_in_block is None
                and last_id == self.last_event_id
            )
            for block in blocks:
                if clean and "\n" not in block and len(block) < fast_limit:
                    if block[:6] == "data: ":
                        append(_tuple_new(ServerSentEvent, ("message", block[6:], last_id, None)))
                        continue
                    if block[:5] == "data:":
                        append(_tuple_new(ServerSentEvent, ("message", block[5:], last_id, None)))
                        continue
                    if block[:1] == ":":
                        text_ = block[2:] if block[1:2] == " " else block[1:]
                        append(_tuple_new(Comment, (text_,)))
                        continue
                lines = block.split("\n")
                lines.append("")  # the blank line that followed the block
                self._lines(lines, out)
                last_id = self._id_buffer
                clean = True  # a dispatch leaves nothing pending
        if tail:
            lines = tail.split("\n")
            lines.pop()  # the empty string after the final LF
            self._lines(lines, out)

    def _lines(self, lines: list[str], out: list[ServerSentEvent | Comment]) -> None:
        append = out.append
        data = self._data
        data_size = self._data_size
        data_limit = self._data_limit
        event_type = self._event_type
        last_id = self._id_buffer
        for line in lines:
            if not line:
                # Blank line: dispatch.
                self.last_event_id = last_id
                if data:
                    append(
                        _tuple_new(
                            ServerSentEvent,
                            (
                                event_type or "message",
                                data[0] if len(data) == 1 else "\n".join(data),
                                last_id,
                                self._retry_in_block,
                            ),
                        )
                    )
                    data = []
                    data_size = 0
                    data_limit = self._fast_limit
                event_type = ""
                self._retry_in_block = None
                continue
            if line[:5] == "data:":
                value = line[6:] if line[5:6] == " " else line[5:]
            elif line[0] == ":":
                append(_tuple_new(Comment, (line[2:] if line[1:2] == " " else line[1:],)))
                continue
            else:
                name, colon, value = line.partition(":")
                if colon and value[:1] == " ":
                    value = value[1:]
                if name == "event":
                    event_type = value
                    continue
                if name == "id":
                    if "\0" not in value:
                        last_id = value
                    continue
                if name == "retry":
                    if value.isascii() and value.isdigit():
                        self.retry = self._retry_in_block = int(value)
                    continue
                if name != "data":
                    continue  # unknown fields are ignored
            data.append(value)
            data_size += len(value) + 1
            if data_size > data_limit:
                data_size, data_limit = self._measure(data)
        self._data = data
        self._data_size = data_size
        self._data_limit = data_limit
        self._event_type = event_type
        self._id_buffer = last_id

    def _measure(self, data: list[str]) -> tuple[int, int]:
        # The running size counts characters, a lower bound of the UTF-8 size that
        # needs no encoding.  While it stays under a quarter of the room left, the
        # true size cannot pass the bound; past that, measure exactly and move the mark.
        size = len(data)  # one LF per line
        for part in data:
            size += len(part) if part.isascii() else len(part.encode("utf-8", "surrogatepass"))
        if size > self.max_event_bytes:
            lines = len(data)
            self._data = []
            self._fail(
                f"event data of {size} bytes is longer than max_event_bytes="
                f"{self.max_event_bytes} ({lines} data lines and no blank line, "
                f"near byte {self._offset} of the stream)"
            )
        return size, size + ((self.max_event_bytes - size) >> 2)


def _check_field(kind: str, value: str, forbidden: str) -> None:
    for ch in forbidden:
        if ch in value:
            raise ValueError(f"{kind} must not contain {ch!r}: {value!r}")


def encode_event(
    data: str,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event as UTF-8 SSE bytes, ending with a blank line.

    Data with LF inside round-trips exactly.  CR and CRLF inside ``data`` end
    lines too, so they decode as LF: the format cannot carry them.  An ``event``
    or ``id`` containing CR, LF or NUL, or a negative ``retry``, is a
    ``ValueError``.
    """
    parts: list[str] = []
    if event is not None:
        _check_field("event", event, "\r\n\0")
        parts.append(f"event: {event}\n" if event else "event\n")
    if id is not None:
        _check_field("id", id, "\r\n\0")
        parts.append(f"id: {id}\n" if id else "id\n")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"retry must be a non-negative int: {retry!r}")
        parts.append(f"retry: {retry}\n")
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    parts.extend(f"data: {line}\n" if line else "data:\n" for line in data.split("\n"))
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def encode_comment(text: str) -> bytes:
    """Encode a comment line followed by a blank line (as OpenRouter sends them).

    ``text`` containing CR or LF is a ``ValueError``.
    """
    _check_field("comment", text, "\r\n")
    return (f": {text}\n\n" if text else ":\n\n").encode("utf-8")
