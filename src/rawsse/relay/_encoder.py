"""Chat events in, the browser's SSE bytes out: ``RelayEncoder`` (sans-I/O).

The encoder takes the clock as an argument (like ``Clocks``), since heartbeats
and coalescing are deadlines: the shell calls ``poll(now)`` when ``deadline()``
comes.  Its output follows the relay event schema (README, "Relay"): data
events ``start``, ``text``, ``reasoning``, ``tool_call``, ``usage``,
``continued``, and exactly one terminal ``done`` or ``error``; each data event
has an ``id:`` (a per-stream sequence number) and one compact JSON object.

Upstream content the schema does not model (``Extra`` events, a role other
than ``assistant``, the provider and creation time, native finish reasons,
unmodelled usage keys, reasoning details, refusals) travels in the ``extras``
object of the next data event sent (the terminal one at the latest): chunk-level
keys as ``{key: [values...]}``, per-choice keys under
``{"choices": {"<index>": {key: [values...]}}}``, values in the order sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .. import _chat_events as chat_events
from .._accumulate import ChatResult, ChatStatus
from .._chat_events import ChatEvent, Done, Extra, KeepAlive, ReasoningDelta, TextDelta
from .._errors import (
    APIStatusError,
    IncompleteStreamError,
    StreamError,
    StreamTimeout,
    UnexpectedContentType,
)

__all__ = ["EVENT_NAMES", "HEARTBEAT", "OPENING", "RelayEncoder"]

EVENT_NAMES = ("start", "text", "reasoning", "tool_call", "usage", "continued", "error", "done")
"""Every event name the relay sends; there are no others."""

OPENING = b": rawsse\n\n"
"""The first bytes of every stream: a comment, so headers and first bytes flush at once."""

HEARTBEAT = b": hb\n\n"
"""A heartbeat comment, sent after ``heartbeat`` seconds of downstream silence."""

_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# The C string encoder behind json.dumps: a JSON string literal for one str, fast.
_string: Any = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "cost")
_TEXT = 0
_REASONING = 1


def _usage_data(usage: chat_events.Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cached_tokens": usage.cached_tokens,
        "cost": usage.cost,
    }


def _error_status(error: BaseException) -> ChatStatus:
    if isinstance(error, StreamTimeout):
        return ChatStatus.TIMED_OUT
    if isinstance(error, IncompleteStreamError):
        return ChatStatus.TRUNCATED
    if not isinstance(error, Exception):  # cancellation
        return ChatStatus.CANCELLED
    return ChatStatus.ERROR


class RelayEncoder:
    """Encodes one chat stream for the browser; see the module docstring for the format.

    ``now`` is the stream's start on the shell's clock (``ttft`` counts from it);
    ``heartbeat`` is the downstream silence in seconds after which a heartbeat
    comment is due (None: never); ``coalesce`` the window in seconds that text and
    reasoning deltas of one choice are gathered into one event (0: every delta is
    sent as it comes); ``stream_id`` goes into the ``start`` event; ``retry``, when
    given, is sent as ``retry:`` (milliseconds) in the first data event; ``next_id``
    is the first event's ``id``.
    """

    __slots__ = (
        "_buffers",
        "_closed",
        "_coalesce",
        "_coalesce_at",
        "_extras",
        "_heartbeat",
        "_in_band",
        "_last_write",
        "_next_id",
        "_opened",
        "_retry",
        "_start",
        "_started",
        "_stream_id",
        "_text_length",
        "_tool_index",
        "_ttft",
    )

    def __init__(
        self,
        now: float,
        *,
        heartbeat: float | None = 15.0,
        coalesce: float = 0.0,
        stream_id: str | None = None,
        retry: int | None = None,
        next_id: int = 1,
    ) -> None:
        if heartbeat is not None and not heartbeat > 0:
            raise ValueError(f"heartbeat must be > 0 seconds or None: {heartbeat!r}")
        if not coalesce >= 0:
            raise ValueError(f"coalesce must be >= 0 seconds: {coalesce!r}")
        self._start = now
        self._heartbeat = heartbeat
        self._coalesce = coalesce
        self._stream_id = stream_id
        self._retry = retry
        self._next_id = next_id
        self._last_write = now
        self._opened = False
        self._started = False
        self._closed = False
        self._ttft: float | None = None
        self._coalesce_at: float | None = None
        # (kind, choice) -> fragments, in order of the first fragment of each
        self._buffers: dict[tuple[int, int], list[str]] = {}
        self._extras: dict[str, Any] = {}
        self._tool_index: dict[int, tuple[int, str | None]] = {}
        self._in_band: chat_events.InBandError | None = None
        self._text_length = 0

    # -- state ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the terminal event was produced."""
        return self._closed

    @property
    def last_id(self) -> int:
        """The ``id`` of the last data event produced (``next_id - 1`` before any)."""
        return self._next_id - 1

    def deadline(self) -> float | None:
        """When ``poll`` has something to send (a coalesced flush or a heartbeat), or None."""
        if self._closed:
            return None
        beat = None if self._heartbeat is None else self._last_write + self._heartbeat
        flush = self._coalesce_at
        if flush is None or (beat is not None and beat < flush):
            return beat
        return flush

    # -- input ---------------------------------------------------------------------

    def open(self, now: float) -> bytes:
        """The opening comment (once; ``feed``, ``poll`` and ``close`` send it if needed)."""
        if self._opened:
            return b""
        self._opened = True
        self._last_write = now
        return OPENING

    def feed(self, event: ChatEvent, now: float) -> bytes:
        """The bytes to send for one chat event (often b"" while coalescing)."""
        return self.feed_many((event,), now)

    def feed_many(self, events: Iterable[ChatEvent], now: float) -> bytes:
        """The bytes to send for several events, joined (one write for one upstream read)."""
        if self._closed:
            raise RuntimeError("the relay stream is closed: no events after its terminal event")
        out: list[bytes] = []
        if not self._opened:
            out.append(self.open(now))
        for event in events:
            # the frequent kinds by identity against names bound at import (no attribute
            # lookup per event); the rest by class pattern in ``_other``
            kind = type(event)
            if kind is TextDelta or kind is ReasoningDelta:
                index: int = event[0]  # fields by position: a tuple read, no descriptor
                text: str = event[1]
                if self._ttft is None:
                    self._ttft = now - self._start
                if kind is ReasoningDelta and event[2]:
                    self._add_extra(index, "reasoning_details", list(event[2]))
                if self._coalesce:
                    key = (_TEXT if kind is TextDelta else _REASONING, index)
                    buffer = self._buffers.get(key)
                    if buffer is None:
                        self._buffers[key] = [text]
                        if self._coalesce_at is None:
                            self._coalesce_at = now + self._coalesce
                    else:
                        buffer.append(text)
                    continue
                if kind is TextDelta:
                    if index == 0:
                        self._text_length += len(text)
                    out.append(self._delta(_TEXT, index, text))
                else:
                    out.append(self._delta(_REASONING, index, text))
            elif kind is Extra:
                assert isinstance(event, Extra)
                for name, value in event.fields.items():
                    self._add_extra(event.index, name, value)
            elif kind is KeepAlive or kind is Done:
                pass  # heartbeats are our own; the end is decided by close()
            else:
                self._flush(out)
                self._other(event, now, out)
        if self._coalesce_at is not None and now >= self._coalesce_at:
            self._flush(out)
        if out:
            self._last_write = now
            return out[0] if len(out) == 1 else b"".join(out)
        return b""

    def poll(self, now: float) -> bytes:
        """The bytes due at ``now``: a coalesced flush and/or a heartbeat (often b"")."""
        if self._closed:
            return b""
        out: list[bytes] = []
        if not self._opened:
            out.append(self.open(now))
        if self._coalesce_at is not None and now >= self._coalesce_at:
            self._flush(out)
        if not out and self._heartbeat is not None and now >= self._last_write + self._heartbeat:
            out.append(HEARTBEAT)
        if out:
            self._last_write = now
        return b"".join(out)

    def continued(self, reason: str, attempt: int, now: float) -> bytes:
        """A ``continued`` event: a recovery seam (text before and after joins exactly)."""
        out: list[bytes] = []
        if not self._opened:
            out.append(self.open(now))
        self._flush(out)
        out.append(self._emit("continued", {"reason": reason, "attempt": attempt}))
        self._last_write = now
        return b"".join(out)

    def close(self, result: ChatResult, now: float | None = None) -> bytes:
        """The end of a stream that finished: pending text, then the terminal event.

        ``done`` with the result's status, or ``error`` when the status is
        ``error`` (an in-band error or ``finish_reason: "error"``).  Once closed,
        further calls return b"": there is exactly one terminal event.
        """
        if self._closed:
            return b""
        out = self._ending(now)
        if result.status is ChatStatus.ERROR:
            error = self._in_band if self._in_band is not None else result.error
            message = "the stream ended with finish_reason 'error'"
            code: int | str | None = None
            if error is not None:
                message = error.message
                code = error.code
                if error.metadata is not None:
                    self._add_extra(None, "metadata", error.metadata)
            out.append(self._error_event(ChatStatus.ERROR, message, code, None, result))
        else:
            out.append(self._done_event(result))
        return self._finish_bytes(out, now)

    def fail(self, error: BaseException, now: float | None = None) -> bytes:
        """The end of a stream that broke: pending text, then one ``error`` event.

        ``error`` is a rawsse error (its ``partial`` gives the text so far), any
        other exception, or a cancellation (status ``cancelled``).
        """
        if self._closed:
            return b""
        out = self._ending(now)
        partial: ChatResult | None = getattr(error, "partial", None)
        code = getattr(error, "code", None)
        http_status: int | None = None
        if isinstance(error, (APIStatusError, UnexpectedContentType)):
            http_status = error.status
        if isinstance(error, StreamError) and error.metadata is not None:
            self._add_extra(None, "metadata", error.metadata)
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        if not isinstance(code, (int, str)) or isinstance(code, bool):
            code = None
        out.append(self._error_event(_error_status(error), message, code, http_status, partial))
        return self._finish_bytes(out, now)

    def cancel(
        self,
        now: float | None = None,
        *,
        partial: ChatResult | None = None,
        message: str = "the stream was cancelled",
    ) -> bytes:
        """The end of a stream stopped on purpose: pending text, then an ``error`` event
        with status ``cancelled`` (``partial``: the result so far, for its text)."""
        if self._closed:
            return b""
        out = self._ending(now)
        out.append(self._error_event(ChatStatus.CANCELLED, message, None, None, partial))
        return self._finish_bytes(out, now)

    # -- output --------------------------------------------------------------------

    def _emit(self, name: str, data: dict[str, Any]) -> bytes:
        prefix = b""
        if not self._started:
            self._started = True
            prefix = self._emit("start", {"stream_id": self._stream_id, "model": None, "id": None})
        if self._extras:
            data["extras"] = self._extras
            self._extras = {}
        event_id = self._next_id
        self._next_id = event_id + 1
        head = b"id: %d\nevent: %s\ndata: " % (event_id, name.encode())
        if self._retry is not None:
            head = b"retry: %d\n" % self._retry + head
            self._retry = None
        return prefix + head + _json(data).encode() + b"\n\n"

    def _delta(self, kind: int, choice: int, text: str) -> bytes:
        name = "text" if kind == _TEXT else "reasoning"
        if self._extras or not self._started or self._retry is not None:
            return self._emit(name, {"choice": choice, "text": text})
        # The hot path: no dict and no JSON encoder call for the most frequent event
        # (and an f-string, encoded once, formats faster than bytes' ``%``).
        event_id = self._next_id
        self._next_id = event_id + 1
        data = _string(text)
        return (
            f'id: {event_id}\nevent: {name}\ndata: {{"choice":{choice},"text":{data}}}\n\n'.encode()
        )

    def _content(self, now: float) -> None:
        if self._ttft is None:
            self._ttft = now - self._start

    def _flush(self, out: list[bytes]) -> None:
        buffers = self._buffers
        if buffers:
            self._buffers = {}
            for (kind, choice), parts in buffers.items():
                text = "".join(parts)
                if kind == _TEXT and choice == 0:
                    self._text_length += len(text)
                out.append(self._delta(kind, choice, text))
        self._coalesce_at = None

    def _add_extra(self, choice: int | None, name: str, value: Any) -> None:
        if choice is None:
            self._extras.setdefault(name, []).append(value)
            return
        choices = self._extras.setdefault("choices", {})
        choices.setdefault(str(choice), {}).setdefault(name, []).append(value)

    def _other(self, event: ChatEvent, now: float, out: list[bytes]) -> None:
        match event:
            case chat_events.StreamStart():
                if event.provider is not None:
                    self._add_extra(None, "provider", event.provider)
                if event.created is not None:
                    self._add_extra(None, "created", event.created)
                if not self._started:
                    self._started = True
                    data = {"stream_id": self._stream_id, "model": event.model, "id": event.id}
                    out.append(self._emit("start", data))
            case chat_events.ToolCallDelta():
                self._content(now)
                out.append(self._emit("tool_call", self._tool_call(event)))
            case chat_events.RefusalDelta():
                self._content(now)
                self._add_extra(None, "refusal", event.text)
                out.append(self._emit("text", {"choice": event.index, "text": ""}))
            case chat_events.Usage():
                for name, value in event.raw.items():
                    if name not in _USAGE_KEYS:
                        self._add_extra(None, name, value)
                out.append(self._emit("usage", _usage_data(event)))
            case chat_events.Finish():
                if event.native_reason is not None and event.native_reason != event.reason:
                    self._add_extra(event.index, "native_finish_reason", event.native_reason)
            case chat_events.RoleDelta():
                if event.role != "assistant":
                    self._add_extra(event.index, "role", event.role)
            case chat_events.InBandError():
                if self._in_band is None:
                    self._in_band = event
            case chat_events.Continued():
                # A resume policy's seam; the text coalesced before it was flushed above.
                if event.index:
                    self._add_extra(event.index, "continued", event.reason)
                seam: dict[str, Any] = {"reason": event.reason, "attempt": event.attempt}
                out.append(self._emit("continued", seam))
            case _:
                raise TypeError(f"not a chat event: {event!r}")

    def _tool_call(self, event: chat_events.ToolCallDelta) -> dict[str, Any]:
        # A fragment without an index continues the choice's last call, unless it
        # names a new id (then it is the next call): the accumulator's rule.
        last = self._tool_index.get(event.index)
        index = event.tool_index
        if index is None:
            if last is None:
                index = 0
            elif event.id and last[1] is not None and event.id != last[1]:
                index = last[0] + 1
            else:
                index = last[0]
        call_id = event.id or None
        if call_id is None and last is not None and last[0] == index:
            self._tool_index[event.index] = (index, last[1])
        else:
            self._tool_index[event.index] = (index, call_id)
        return {
            "choice": event.index,
            "index": index,
            "id": call_id,
            "type": event.type,
            "name": event.name or None,
            "arguments": event.arguments,
        }

    def _ending(self, now: float | None) -> list[bytes]:
        out: list[bytes] = []
        if not self._opened:
            out.append(self.open(self._last_write if now is None else now))
        self._flush(out)
        return out

    def _finish_bytes(self, out: list[bytes], now: float | None) -> bytes:
        self._closed = True
        self._coalesce_at = None
        if now is not None:
            self._last_write = now
        return b"".join(out)

    def _done_event(self, result: ChatResult) -> bytes:
        usage = result.usage
        reasons: dict[str, str] = {}
        for choice in result.choices:
            if choice.finish_reason is not None:
                reasons[str(choice.index)] = choice.finish_reason
        data = {
            "status": result.status.value,
            "finish_reason": reasons.get("0"),
            "finish_reasons": reasons,
            "usage": None if usage is None else _usage_data(usage),
            "cost": None if usage is None else usage.cost,
            "ttft": self._ttft,
        }
        return self._emit("done", data)

    def _error_event(
        self,
        status: ChatStatus,
        message: str,
        code: int | str | None,
        http_status: int | None,
        partial: ChatResult | None,
    ) -> bytes:
        text = "" if partial is None else partial.text
        data = {
            "status": status.value,
            "message": message,
            "code": code,
            "http_status": http_status,
            "partial_text_length": len(text) if partial is not None else self._text_length,
            "text": text,
        }
        return self._emit("error", data)
