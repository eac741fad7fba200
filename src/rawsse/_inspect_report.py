"""What the inspector reports: rows, anomalies and the ``StreamReport``, as data.

``StreamInspector`` (``_inspect``) fills these; the CLI, the HTML report and
``--json`` read them (``StreamReport.to_dict()``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._accumulate import ChatResult
from ._chat_events import ChatEvent, Usage
from ._frozen import Frozen
from ._sse import Comment, ServerSentEvent
from ._unicode import mend_surrogates

if TYPE_CHECKING:
    from typing import TypeAlias

__all__ = [
    "ANOMALY_KINDS",
    "DEFAULT_STALL_THRESHOLD",
    "Anomaly",
    "ChunkRow",
    "EventRow",
    "Row",
    "StreamReport",
    "event_to_dict",
    "row_to_dict",
    "sse_lines",
]

DEFAULT_STALL_THRESHOLD = 5.0
"""Seconds without a content event (while the stream is open) that count as a stall."""


class ChunkRow(Frozen):
    """One network chunk as it arrived."""

    __slots__ = ()
    number: int
    """1-based position of the chunk in the body."""
    t: float | None
    """Seconds since the request was sent, or None when the source has no timing."""
    offset: int
    """Byte offset of the chunk's first byte in the body."""
    size: int
    """Length in bytes."""


class EventRow(Frozen):
    """One SSE item (event or comment) and the typed chat events decoded from it."""

    __slots__ = ()
    chunk: int
    """Number of the chunk whose bytes completed the item."""
    t: float | None
    """Arrival time of that chunk (None without timing)."""
    size: int
    """UTF-8 bytes of the item's data (or comment text)."""
    item: ServerSentEvent | Comment
    """The SSE item as the decoder dispatched it."""
    events: tuple[ChatEvent, ...] = ()
    """Typed chat events it produced (none when it could not be decoded)."""
    error: str | None = None
    """Why the chat decoder rejected it, if it did."""


Row: TypeAlias = "ChunkRow | EventRow"


class Anomaly(Frozen):
    """One finding: ``kind`` is a stable identifier, ``message`` says it for people."""

    __slots__ = ()
    kind: str
    """One of the kinds listed in ``ANOMALY_KINDS``."""
    message: str
    """A one-line explanation (for ``in_band_error``: the server's own message)."""
    t: float | None = None
    """When it happened (first occurrence), if known."""
    times: int = 1
    """How many times it happened."""
    duration: float | None = None
    """How long it lasted, for ``stall`` and ``keep_alive`` (the longest wait covered)."""


ANOMALY_KINDS = (
    "http_error",
    "sse_limit",
    "other_api",
    "keep_alive",
    "empty_delta",
    "missing_usage",
    "no_done",
    "in_band_error",
    "error_finish",
    "invalid_json",
    "malformed_chunk",
    "mixed_line_ends",
    "finish_repeated",
    "content_after_finish",
    "stall",
    "invalid_tool_arguments",
    "empty_tool_arguments",
    "data_after_done",
    "unterminated_event",
    "stream_cut",
    "lone_surrogate",
)


@dataclass(frozen=True)
class StreamReport:
    """Everything ``StreamInspector`` found about one stream."""

    rows: tuple[Row, ...]
    """Chunk rows and event rows, in arrival order."""
    anomalies: tuple[Anomaly, ...]
    result: ChatResult
    """What the accumulator built from the typed events."""
    status: str
    """``complete``, ``truncated``, ``error`` or ``cancelled`` (a ``ChatStatus`` value)."""
    end: str | None
    """How the body ended: ``eof``, ``error``, ``closed`` (by the client), ``missing`` (cut)."""
    end_error: str | None
    """The transport error that cut the body, if any."""
    timed: bool
    """Whether chunk arrival times are known."""
    ttft: float | None
    """Seconds from the request to the first content event."""
    last_token: float | None
    """Seconds from the request to the last content event."""
    total: float | None
    """Seconds from the request to the end of the body."""
    response_t: float | None
    """Seconds from the request to the response headers, if known."""
    http_status: int | None
    total_bytes: int
    chunks: int
    keep_alives: int
    content_events: int
    done: bool
    """Whether ``data: [DONE]`` arrived."""
    line_ends: dict[str, int] = field(default_factory=dict)
    """Counts of ``lf``, ``crlf`` and ``cr`` line ends."""
    stall_threshold: float = DEFAULT_STALL_THRESHOLD
    streamed: bool = True
    """False for a non-streaming answer (one JSON ``chat.completion`` body): it has no
    events, ``[DONE]``, usage chunk or keep-alives to check."""

    def anomaly_kinds(self) -> list[str]:
        """The kinds of the anomalies, in report order."""
        return [a.kind for a in self.anomalies]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document: ``status``, ``events`` (the rows), ``anomalies`` and figures."""
        result = self.result
        choice = result.choices[0] if result.choices else None
        usage = result.usage
        doc = {
            "status": self.status,
            "end": self.end,
            "end_error": self.end_error,
            "http_status": self.http_status,
            "id": result.id,
            "model": result.model,
            "provider": result.provider,
            "finish_reason": choice.finish_reason if choice else None,
            "text": result.text,
            "usage": None if usage is None else _usage_dict(usage),
            "timing": {
                "timed": self.timed,
                "response": self.response_t,
                "ttft": self.ttft,
                "last_token": self.last_token,
                "total": self.total,
            },
            "counts": {
                "chunks": self.chunks,
                "bytes": self.total_bytes,
                "keep_alives": self.keep_alives,
                "content_events": self.content_events,
                "line_ends": dict(self.line_ends),
            },
            "done": self.done,
            "streamed": self.streamed,
            "stall_threshold": self.stall_threshold,
            "anomalies": [
                {
                    "kind": a.kind,
                    "message": a.message,
                    "t": a.t,
                    "count": a.times,
                    "duration": a.duration,
                }
                for a in self.anomalies
            ],
            "events": [row_to_dict(row) for row in self.rows],
        }
        # Extras and raw payloads keep the server's strings verbatim, lone
        # surrogates included; the document is for writing out, so mend them.
        mended: dict[str, Any] = writable(doc)
        return mended


def writable(value: Any) -> Any:
    """``value`` (JSON-ready) with lone surrogates in its strings and keys replaced by U+FFFD.

    Returns ``value`` itself when no string holds a surrogate (one JSON scan).
    """
    if not _ESCAPED_SURROGATE.search(json.dumps(value)):
        return value
    return _mend(value)


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _mend(value: Any) -> Any:
    if isinstance(value, str):
        return mend_surrogates(value)[0]
    if isinstance(value, dict):
        return {_mend(k): _mend(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mend(v) for v in value]
    return value


def _usage_dict(usage: Usage) -> dict[str, Any]:
    """The figures of ``usage``: every field but ``raw`` (the object as sent)."""
    return {name: value for name, value in usage._asdict().items() if name != "raw"}


def event_to_dict(event: ChatEvent) -> dict[str, Any]:
    """A typed chat event as a JSON-ready dict: ``{"type": "TextDelta", "index": 0, ...}``."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for name, value in event._asdict().items():
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def row_to_dict(row: Row) -> dict[str, Any]:
    """One report row as a JSON-ready dict (``row`` is ``chunk``, ``event`` or ``comment``)."""
    if isinstance(row, ChunkRow):
        return {
            "row": "chunk",
            "chunk": row.number,
            "t": row.t,
            "offset": row.offset,
            "bytes": row.size,
        }
    item = row.item
    out: dict[str, Any]
    if isinstance(item, Comment):
        out = {
            "row": "comment",
            "chunk": row.chunk,
            "t": row.t,
            "bytes": row.size,
            "comment": item.text,
        }
    else:
        out = {
            "row": "event",
            "chunk": row.chunk,
            "t": row.t,
            "bytes": row.size,
            "sse": {"event": item.event, "data": item.data, "id": item.id, "retry": item.retry},
        }
    out["chat"] = [event_to_dict(e) for e in row.events]
    if row.error is not None:
        out["error"] = row.error
    return out


def sse_lines(item: ServerSentEvent) -> list[str]:
    """The SSE fields of an event as lines (``event:``/``id:``/``retry:`` only when set)."""
    lines = []
    if item.event != "message":
        lines.append(f"event: {item.event}")
    if item.id:
        lines.append(f"id: {item.id}")
    if item.retry is not None:
        lines.append(f"retry: {item.retry}")
    lines.append(f"data: {item.data}")
    return lines
