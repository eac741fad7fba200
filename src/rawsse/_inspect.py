"""Sans-I/O stream analysis: what a recorded stream did, chunk by chunk, and what was odd.

``StreamInspector`` takes network chunks (with their arrival time when known),
decodes them with the real SSE and chat decoders, and keeps one row per chunk
and one row per SSE item, with the typed chat events each item produced.
``close()`` returns a ``StreamReport``: the rows, the result the accumulator
built, timing figures and the list of ``Anomaly`` records (protocol quirks a
naive client trips on: keep-alives, a repeated finish reason, an in-band error
after ``[DONE]``-looking success, a final event without its blank line, ...).

A non-streaming answer (a body that is one JSON ``chat.completion`` document,
as ``stream: false`` gets) is read as what it is: its message is decoded by the
same chat decoder (through the event stream it stands for), it is ``complete``
when whole, and the stream-only findings (``[DONE]``, usage chunk, keep-alives,
empty deltas) do not apply; ``StreamReport.streamed`` is False.

Nothing here reads files or sockets; the CLI and the HTML report are built on
``StreamReport.to_dict()``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._accumulate import ChatAccumulator, ChatResult, ChatStatus, stream_status
from ._chat import ChatDecoder
from ._chat_events import (
    CONTENT_EVENTS,
    ChatEvent,
    Done,
    Finish,
    InBandError,
    Usage,
    is_token,
)
from ._completion import completion_document, stream_from_completion
from ._constants import DEFAULT_MAX_LINE_BYTES, DONE_DATA
from ._errors import MalformedChunk, SSEProtocolError
from ._inspect_report import (
    DEFAULT_STALL_THRESHOLD,
    Anomaly,
    ChunkRow,
    EventRow,
    Row,
    StreamReport,
)
from ._json import loads_bounded
from ._sse import Comment, ServerSentEvent, SSEDecoder

if TYPE_CHECKING:
    from ._cassette import Cassette

__all__ = ["StreamInspector", "inspect_cassette", "inspect_stream"]


_LINE_END = re.compile(rb"\r\n|\r|\n")
# Tool arguments nest deeper than chat payloads may, but not without bound.
_MAX_ARGUMENTS_DEPTH = 512
_CONTENT_KEYS = (
    "content",
    "reasoning",
    "reasoning_content",
    "refusal",
    "tool_calls",
    "reasoning_details",
    "images",
    "audio",
    "annotations",
)


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def _preview(text: str, limit: int = 60) -> str:
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class _Lines:
    """Counts line ends across chunk boundaries and tracks the unfinished SSE block."""

    __slots__ = ("block_head", "counts", "head", "line_len", "pending_cr")

    def __init__(self) -> None:
        self.counts = {"lf": 0, "crlf": 0, "cr": 0}
        self.pending_cr = False  # the previous chunk ended with CR
        self.head = b""  # first bytes of the current line
        self.line_len = 0
        self.block_head: bytes | None = None  # first data line of the undispatched block

    def feed(self, data: bytes) -> None:
        pos = 0
        if self.pending_cr:
            self.pending_cr = False
            if data[:1] == b"\n":
                self.counts["cr"] -= 1
                self.counts["crlf"] += 1
                pos = 1
        for match in _LINE_END.finditer(data, pos):
            self._text(data[pos : match.start()])
            sep = match.group()
            if sep == b"\r" and match.end() == len(data):
                self.pending_cr = True
            self.counts["lf" if sep == b"\n" else "crlf" if sep == b"\r\n" else "cr"] += 1
            self._line_end()
            pos = match.end()
        self._text(data[pos:])

    def _text(self, part: bytes) -> None:
        if part:
            if len(self.head) < 80:
                self.head += part[: 80 - len(self.head)]
            self.line_len += len(part)

    def _line_end(self) -> None:
        if self.line_len == 0:
            self.block_head = None  # blank line: the block is dispatched
        elif self.block_head is None and _is_data_line(self.head):
            self.block_head = self.head
        self.head = b""
        self.line_len = 0

    def unterminated(self) -> bytes | None:
        """The start of the data the stream ends inside of (discarded by the spec), if any."""
        if self.block_head is not None:
            return self.block_head
        if self.line_len and _is_data_line(self.head):
            return self.head
        return None


def _is_data_line(head: bytes) -> bool:
    head = head.removeprefix(b"\xef\xbb\xbf")
    return head == b"data" or head.startswith(b"data:")


class StreamInspector:
    """Incremental analysis of one response body.

    ``feed(data, t)`` for each network chunk (``t``: seconds since the request
    was sent, or None), then ``close(end=...)`` for the report.  ``http_status``
    and ``response_t`` describe the response head when known; a status of 400 or
    more makes the body an error document rather than a stream.  A line longer
    than ``max_line_bytes`` is reported (``sse_limit``) instead of raised.
    """

    def __init__(
        self,
        *,
        stall_threshold: float = DEFAULT_STALL_THRESHOLD,
        http_status: int | None = None,
        response_t: float | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self.stall_threshold = stall_threshold
        self.http_status = http_status
        self.response_t = response_t
        self._sse = SSEDecoder(max_line_bytes=max_line_bytes)
        self._chat = ChatDecoder()
        self._acc = ChatAccumulator()
        self._lines = _Lines()
        self._rows: list[Row] = []
        self._anomalies: list[Anomaly] = []
        self._body: list[bytes] = []  # kept only for an HTTP error body
        self._chunks = 0
        self._bytes = 0
        self._timed = False
        self._last_t: float | None = None
        self._other_api: str | None = None
        self._sse_failed = False
        self._json: bool | None = None  # the body looks like one JSON document (stream=false)
        # Findings gathered while feeding, turned into anomalies by close().
        self._keep_alives = 0
        self._keep_alive_text: str | None = None
        self._run_start: float | None = None  # arrival of the data before a keep-alive run
        self._in_run = False
        self._longest_covered: tuple[float, float] | None = None
        self._last_data_t: float | None = None
        self._first_data_seen = False
        self._empty_deltas = 0
        self._empty_first_t: float | None = None
        self._role_seen: set[object] = set()  # choices whose opening role delta was seen
        self._finishes: dict[int, list[tuple[str, float | None]]] = {}
        self._finished_before: set[int] = set()
        self._finishing: list[int] = []  # choices finished by the item being decoded
        self._after_finish: dict[int, tuple[int, float | None]] = {}
        self._done = False
        self._after_done = 0
        self._after_done_t: float | None = None
        self._content_events = 0
        self._ttft: float | None = None
        self._last_token_t: float | None = None
        self._stalls: list[tuple[float, float]] = []
        self._usage_seen = False
        self._error_finish: list[tuple[int, str | None, float | None]] = []
        self._in_band_errors = 0

    # -- feeding -------------------------------------------------------------

    def feed(self, data: bytes, t: float | None = None) -> list[Row]:
        """Analyse the next network chunk; return the rows it adds."""
        if not data:
            return []
        self._chunks += 1
        if t is not None:
            self._timed = True
            self._last_t = t
        rows: list[Row] = [ChunkRow(self._chunks, t, self._bytes, len(data))]
        self._bytes += len(data)
        if self._json is None and data.strip():
            # A stream starts with a field or a comment, a non-streaming answer with "{".
            self._json = data.lstrip()[:1] == b"{"
        if (self.http_status is not None and self.http_status >= 400) or self._json:
            self._body.append(data)
            self._rows += rows
            return rows
        self._lines.feed(data)
        if self._sse_failed:
            self._rows += rows
            return rows
        try:
            items = self._sse.feed(data)
        except SSEProtocolError as exc:
            # A line or event past the decoder's bounds: say so, keep counting bytes.
            self._sse_failed = True
            self._anomalies.append(Anomaly("sse_limit", f"{exc}; the rest is not decoded", t))
            items = []
        rows.extend(self._item(item, t) for item in items)
        self._rows += rows
        return rows

    def _item(self, item: ServerSentEvent | Comment, t: float | None) -> EventRow:
        if isinstance(item, Comment):
            return self._comment(item, t)
        size = len(item.data.encode("utf-8", "surrogatepass"))
        if self._done and item.data != DONE_DATA:
            self._after_done += 1
            if self._after_done_t is None:
                self._after_done_t = t
        payload = None
        if item.data != DONE_DATA:
            try:
                payload = loads_bounded(item.data)
            except ValueError:
                payload = None
            if self._other_api is None and not self._first_data_seen:
                self._other_api = _other_api(item, payload)
        self._end_keep_alive_run(t)
        self._first_data_seen = True
        self._last_data_t = t
        if self._other_api:
            if item.data != DONE_DATA:
                return EventRow(self._chunks, t, size, item)
            # Another API's stream still ends with [DONE] where it has one.
            done = self._chat.decode_event(item)
            for event in done:
                self._event(event, t)
            return EventRow(self._chunks, t, size, item, tuple(done))
        error: str | None = None
        try:
            events = self._chat.decode_event(item)
        except MalformedChunk as exc:
            events = list(exc.events)
            error = exc.message
            if payload is None:
                found = Anomaly("invalid_json", f"data is not JSON: {_preview(item.data)!r}", t)
            else:
                found = Anomaly("malformed_chunk", exc.message, t)
            self._anomalies.append(found)
        if isinstance(payload, dict) and not self._done:
            self._check_deltas(payload, t)
        for event in events:
            self._event(event, t)
        # Only this item's finishes: a pass over every finished choice per event
        # made a stream of many finishing choices quadratic.
        self._finished_before.update(self._finishing)
        self._finishing.clear()
        return EventRow(self._chunks, t, size, item, tuple(events), error)

    def _comment(self, item: Comment, t: float | None) -> EventRow:
        events: list[ChatEvent] = []
        if not self._other_api:
            events = self._chat.decode_event(item)
            for event in events:
                self._acc.add(event)
        self._keep_alives += 1
        if self._keep_alive_text is None:
            self._keep_alive_text = item.text
        if not self._in_run:
            self._in_run = True
            if self._first_data_seen:
                self._run_start = self._last_data_t
            else:  # the first wait: from the response headers (or the request) on
                self._run_start = self.response_t if self.response_t is not None else 0.0
        return EventRow(self._chunks, t, len(item.text.encode("utf-8")), item, tuple(events))

    def _end_keep_alive_run(self, t: float | None) -> None:
        if self._in_run:
            self._in_run = False
            start = self._run_start
            if t is not None and start is not None:
                best = self._longest_covered
                if best is None or t - start > best[1] - best[0]:
                    self._longest_covered = (start, t)

    def _check_deltas(self, payload: dict[str, Any], t: float | None) -> None:
        choices = payload.get("choices")
        if not isinstance(choices, list) or payload.get("usage") or payload.get("error"):
            return
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("finish_reason") is not None:
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict) or choice.get("error"):
                continue
            index = choice.get("index")
            if delta.get("role") and index not in self._role_seen:
                # The standard first chunk ({"role": "assistant", "content": ""}) opens
                # the choice: nothing to act on.
                self._role_seen.add(index)
                continue
            if not any(delta.get(key) for key in _CONTENT_KEYS):
                self._empty_deltas += 1
                if self._empty_first_t is None:
                    self._empty_first_t = t
                break

    def _event(self, event: ChatEvent, t: float | None) -> None:
        self._acc.add(event)
        if isinstance(event, CONTENT_EVENTS):
            self._content_events += 1
            if is_token(event):
                self._token(t)
                index = event.index
                if index in self._finished_before and index not in self._after_finish:
                    self._after_finish[index] = (self._content_events, t)
        elif isinstance(event, Finish):
            if event.reason is not None:
                self._finishes.setdefault(event.index, []).append((event.reason, t))
                self._finishing.append(event.index)
            if event.reason == "error":
                self._error_finish.append((event.index, event.native_reason, t))
        elif isinstance(event, Usage):
            self._usage_seen = True
        elif isinstance(event, InBandError):
            self._in_band_errors += 1
            # The message is exactly the server's: scripts match on it.
            self._anomalies.append(Anomaly("in_band_error", event.message, t))
        elif isinstance(event, Done):
            self._done = True

    def _token(self, t: float | None) -> None:
        if t is None:
            return
        if self._ttft is None:
            self._ttft = t
        elif self._last_token_t is not None and t - self._last_token_t > self.stall_threshold:
            self._stalls.append((self._last_token_t, t))
        self._last_token_t = t

    # -- the report ----------------------------------------------------------

    def close(
        self, *, end: str | None = "eof", error: str | None = None, t: float | None = None
    ) -> StreamReport:
        """End of body: ``end`` is ``eof``, ``error`` (with ``error``), ``closed`` or ``missing``.

        ``t`` is when the body ended, if known (else the last chunk's time).
        """
        if t is not None:
            self._timed = True
        end_t = t if t is not None else self._last_t
        http_error = self.http_status is not None and self.http_status >= 400
        if self._json and not http_error:
            doc = completion_document(b"".join(self._body))
            if doc is not None:
                return self._close_completion(doc, end, error, end_t)
            # JSON, but not a chat completion: read it as the stream it claims to be.
            self._json = False
            self._lines.feed(b"".join(self._body))
            self._rows += [self._item(item, end_t) for item in self._sse.feed(b"".join(self._body))]
        found = self._anomalies
        self._anomalies = []
        out: list[Anomaly] = []
        if http_error:
            out.append(Anomaly("http_error", self._http_error_message(), self.response_t))
        else:
            if not self._sse_failed:
                self._sse.close()  # dispatches nothing, by the spec's rules
            if not self._other_api:
                for event in self._chat.close():
                    self._event(event, end_t)
            self._end_keep_alive_run(end_t)
            replaced = self._chat.surrogates_replaced
            if replaced:
                found.append(
                    Anomaly(
                        "lone_surrogate",
                        f"{replaced} unpaired UTF-16 surrogate(s) in the text (a \\ud800-\\udfff "
                        "escape with no other half) replaced by U+FFFD",
                        None,
                        replaced,
                    )
                )
        if self._other_api:
            out.append(
                Anomaly(
                    "other_api",
                    f"not a chat-completions stream ({self._other_api}); typed chat events "
                    "are not decoded",
                )
            )
        if not http_error:
            out += self._stream_findings(found, end_t)
        if end == "error":
            out.append(
                Anomaly("stream_cut", f"the body was cut: {error or 'unknown error'}", end_t)
            )
        elif end == "closed":
            out.append(
                Anomaly(
                    "stream_cut",
                    "the client closed the response before the body ended (the rest was "
                    "never read)",
                    end_t,
                )
            )
        elif end == "missing":
            out.append(
                Anomaly("stream_cut", "the recording has no end line: the body was cut", end_t)
            )
        result = self._acc.result()
        # One rule for everyone (``stream_status``); a stream of another API has
        # no [DONE] the chat rule knows, so it is never ``complete`` (``other_api`` says why).
        status = self._acc.status(end, http_error=http_error)
        return self._report(out, result, status, end, error, end_t)

    def _report(
        self,
        anomalies: list[Anomaly],
        result: ChatResult,
        status: ChatStatus,
        end: str | None,
        error: str | None,
        end_t: float | None,
    ) -> StreamReport:
        """The report: the rows and figures gathered, with how the body ended."""
        return StreamReport(
            rows=tuple(self._rows),
            anomalies=tuple(anomalies),
            result=result,
            status=str(status.value),
            end=end,
            end_error=error,
            timed=self._timed,
            ttft=self._ttft,
            last_token=self._last_token_t,
            total=end_t if self._timed else None,
            response_t=self.response_t,
            http_status=self.http_status,
            total_bytes=self._bytes,
            chunks=self._chunks,
            keep_alives=self._keep_alives,
            content_events=self._content_events,
            done=self._done,
            line_ends=dict(self._lines.counts),
            stall_threshold=self.stall_threshold,
        )

    def _close_completion(
        self, doc: dict[str, Any], end: str | None, error: str | None, end_t: float | None
    ) -> StreamReport:
        """The report on a non-streaming answer: its message, read by the chat decoder."""
        out = [a for a in self._anomalies if a.kind == "in_band_error"]
        self._anomalies = []
        for event in ChatDecoder().feed(stream_from_completion(doc)):
            if isinstance(event, Done):
                self._acc.add(event)  # the document is whole, as [DONE] says of a stream
            else:
                self._event(event, end_t)
        out += self._anomalies
        if end in ("error", "closed", "missing"):
            out.append(Anomaly("stream_cut", f"the body was cut: {error or end}", end_t))
        result = self._acc.result()
        errors = bool(result.errors) or any(c.finish_reason == "error" for c in result.choices)
        status = stream_status(done=True, finished=True, usage=True, error=errors, end=end)
        report = self._report(out, result, status, end, error, end_t)
        return dataclasses.replace(report, keep_alives=0, done=False, line_ends={}, streamed=False)

    def _http_error_message(self) -> str:
        body = b"".join(self._body).decode("utf-8", "replace")
        message = body.strip()
        try:
            doc = loads_bounded(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            err = doc["error"]
            if isinstance(err.get("message"), str):
                message = err["message"]
        return f"HTTP {self.http_status}: {_preview(message, 200)}"

    def _stream_findings(self, found: list[Anomaly], end_t: float | None) -> list[Anomaly]:
        out: list[Anomaly] = []
        if self._keep_alives:
            text = _preview(self._keep_alive_text or "")
            message = f"{self._keep_alives} keep-alive comment(s) (': {text}')"
            covered = self._longest_covered
            if covered is not None:
                start, stop = covered
                message += f"; the longest wait they covered: {_fmt_s(stop - start)}"
                message += f" ({_fmt_s(start)} to {_fmt_s(stop)})"
            duration = None if covered is None else covered[1] - covered[0]
            out.append(Anomaly("keep_alive", message, None, self._keep_alives, duration))
        out += found
        for index, native, t in self._error_finish:
            native_text = f" (native {native!r})" if native else ""
            if not self._in_band_errors:
                out.append(
                    Anomaly(
                        "error_finish",
                        f"choice {index} finished with 'error'{native_text} but no error message",
                        t,
                    )
                )
        if self._other_api:
            return out + self._line_findings(end_t)
        if self._empty_deltas:
            out.append(
                Anomaly(
                    "empty_delta",
                    f"{self._empty_deltas} chunk(s) whose delta carries nothing "
                    "(no content, reasoning, tool call, finish reason or usage)",
                    self._empty_first_t,
                    self._empty_deltas,
                )
            )
        for index, finishes in sorted(self._finishes.items()):
            if len(finishes) > 1:
                reasons = ", ".join(repr(r) for r, _ in finishes)
                out.append(
                    Anomaly(
                        "finish_repeated",
                        f"choice {index} got a finish reason {len(finishes)} times ({reasons})",
                        finishes[1][1],
                        len(finishes),
                    )
                )
        for index, (_, t) in sorted(self._after_finish.items()):
            out.append(
                Anomaly(
                    "content_after_finish",
                    f"choice {index} got content after its finish reason",
                    t,
                )
            )
        for start, stop in self._stalls:
            out.append(
                Anomaly(
                    "stall",
                    f"no content for {_fmt_s(stop - start)} ({_fmt_s(start)} to {_fmt_s(stop)}; "
                    f"threshold {self.stall_threshold:g} s)",
                    start,
                    1,
                    stop - start,
                )
            )
        result = self._acc.result()
        for choice in result.choices:
            for call in choice.tool_calls:
                name = call.name or f"#{call.index}"
                if not call.arguments.strip():
                    out.append(
                        Anomaly(
                            "empty_tool_arguments",
                            f"tool call {name} (choice {choice.index}) has empty arguments "
                            "(read as {})",
                        )
                    )
                    continue
                try:
                    loads_bounded(call.arguments, max_depth=_MAX_ARGUMENTS_DEPTH)
                except ValueError as exc:
                    out.append(
                        Anomaly(
                            "invalid_tool_arguments",
                            f"tool call {name} (choice {choice.index}) arguments are not valid "
                            f"JSON: {_preview(call.arguments)!r} ({exc})",
                        )
                    )
        if not self._usage_seen:
            out.append(Anomaly("missing_usage", "no usage (token counts, cost) in the stream"))
        if self._after_done:
            out.append(
                Anomaly(
                    "data_after_done",
                    f"{self._after_done} data event(s) after [DONE] (ignored)",
                    self._after_done_t,
                    self._after_done,
                )
            )
        out += self._line_findings(end_t)
        tail = self._lines.unterminated()
        if not self._done:
            message = "the stream ended without data: [DONE]"
            if tail is not None and tail.rstrip() in (b"data: [DONE]", b"data:[DONE]"):
                message += " (the [DONE] at the end was not terminated)"
            out.append(Anomaly("no_done", message, end_t))
        return out

    def _line_findings(self, end_t: float | None) -> list[Anomaly]:
        out: list[Anomaly] = []
        counts = self._lines.counts
        used = [f"{n} {k.upper()}" for k, n in counts.items() if n]
        if len(used) > 1:
            out.append(Anomaly("mixed_line_ends", "mixed line ends: " + ", ".join(used)))
        tail = self._lines.unterminated()
        if tail is not None:
            text = tail.decode("utf-8", "replace")
            out.append(
                Anomaly(
                    "unterminated_event",
                    f"the body ends inside an event ({_preview(text)!r} has no blank line "
                    "after it), so a spec-compliant parser discards it",
                    end_t,
                )
            )
        return out


def _other_api(item: ServerSentEvent, payload: object) -> str | None:
    """Name the API if the first data event is not a chat-completions chunk."""
    if isinstance(payload, dict):
        if "choices" in payload or payload.get("object") == "chat.completion.chunk":
            return None
        kind = payload.get("type")
        if isinstance(kind, str):
            return f"first event type {kind!r}"
    if item.event != "message":
        return f"first event named {item.event!r}"
    return None


def inspect_stream(
    chunks: bytes | Iterable[bytes] | Iterable[tuple[float | None, bytes]],
    *,
    stall_threshold: float = DEFAULT_STALL_THRESHOLD,
    end: str | None = "eof",
    error: str | None = None,
    http_status: int | None = None,
    response_t: float | None = None,
    end_t: float | None = None,
) -> StreamReport:
    """Analyse a whole body: raw bytes, untimed chunks, or ``(t, bytes)`` pairs.

    ``end``/``error``/``end_t`` say how and when the body ended (``eof``,
    ``error`` with a message, ``closed`` or ``missing``), as a cassette records it.
    """
    inspector = StreamInspector(
        stall_threshold=stall_threshold, http_status=http_status, response_t=response_t
    )
    if isinstance(chunks, bytes | bytearray):
        inspector.feed(bytes(chunks))
    else:
        for chunk in chunks:
            if isinstance(chunk, tuple):
                inspector.feed(chunk[1], chunk[0])
            else:
                inspector.feed(chunk)
    return inspector.close(end=end, error=error, t=end_t)


def inspect_cassette(
    cassette: Cassette, *, stall_threshold: float = DEFAULT_STALL_THRESHOLD
) -> StreamReport:
    """Analyse a recorded exchange (``rawsse.testing.load_cassette(path)``)."""
    return inspect_stream(
        cassette.chunks,
        stall_threshold=stall_threshold,
        end=cassette.end,
        error=cassette.error,
        http_status=cassette.status,
        response_t=cassette.response_t,
        end_t=cassette.end_t,
    )
