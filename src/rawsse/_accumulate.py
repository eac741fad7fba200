"""Chat events in, the final message out: ``ChatAccumulator`` and ``accumulate``.

The accumulator knows only chat events.  Text is kept as lists of fragments and
joined when a result is asked for (then the list keeps the joined string), so
adding is O(1) and nothing is re-parsed per delta.  A choice's content is also
joined ``JOIN_EVERY`` fragments at a time (a fragment costs some 60 bytes more
than its characters, and a relay holds thousands of answers).  ``result()`` is a
snapshot valid at any moment: it shares no mutable state with the accumulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._chat_events import (
    ChatEvent,
    Continued,
    Done,
    Extra,
    Finish,
    InBandError,
    KeepAlive,
    ReasoningDelta,
    RefusalDelta,
    RoleDelta,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from ._constants import END_CLOSED, END_ERROR, END_MISSING, ChatStatus
from ._errors import MalformedChunk
from ._unicode import mend_surrogates

__all__ = [
    "ChatAccumulator",
    "ChatResult",
    "ChatStatus",
    "ChoiceResult",
    "ToolCall",
    "accumulate",
    "stream_status",
]


@dataclass(frozen=True)
class ToolCall:
    """One assembled tool call."""

    index: int
    """The tool-call ``index`` it was sent under (its position when none was sent)."""
    id: str | None
    type: str | None
    name: str | None
    arguments: str
    """The argument fragments joined; "" when every fragment was empty.  For a custom
    tool call (``type == "custom"``) the streamed ``input``: free text, not JSON."""

    def parsed_arguments(self) -> Any:
        """The arguments as JSON ("" gives ``{}``); ``MalformedChunk`` when not valid JSON.

        A custom tool call's input is free text: it is returned as it is.
        """
        if self.type == "custom":
            return self.arguments
        if not self.arguments.strip():
            return {}
        try:
            return json.loads(self.arguments)
        except (ValueError, RecursionError) as exc:
            raise MalformedChunk(
                f"tool call {self.index} ({self.name!r}, id {self.id!r}): arguments are not "
                f"valid JSON ({exc}): {self.arguments[:200]!r}",
                payload=self.arguments,
            ) from None


@dataclass(frozen=True)
class ChoiceResult:
    """One assembled choice; finish reasons are the last non-null values sent."""

    index: int
    role: str | None = None
    content: str = ""
    reasoning: str = ""
    """Readable reasoning text only (see ``ReasoningDelta``); never encrypted data."""
    reasoning_details: list[dict[str, Any]] = field(default_factory=list)
    """The ``reasoning_details`` entries merged by ``index`` (and type): ``text`` and
    ``summary`` joined, other keys from the latest fragment that has a non-empty
    value (so a late ``signature`` is kept).  Entries without an ``index`` stay
    separate.  Encrypted entries are included: send them back on the next turn."""
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    extras: dict[str, list[Any]] = field(default_factory=dict)
    """Unmodelled choice and delta keys (``logprobs``, ``annotations``, ``images``, …):
    every non-null value sent, in order."""


@dataclass(frozen=True)
class ChatResult:
    """The message assembled from a stream (or the part of it received so far)."""

    id: str | None = None
    model: str | None = None
    provider: str | None = None
    created: int | None = None
    choices: tuple[ChoiceResult, ...] = ()
    """Ordered by choice index."""
    usage: Usage | None = None
    """The last ``Usage`` sent (never a sum), or None."""
    status: ChatStatus = ChatStatus.TRUNCATED
    error: InBandError | None = None
    """The first in-band error, if any."""
    errors: tuple[InBandError, ...] = ()
    """Every in-band error, in order."""
    extras: dict[str, list[Any]] = field(default_factory=dict)
    """Unmodelled chunk-level keys (``system_fingerprint``, ``service_tier``, …):
    every non-null value sent, in order."""
    done: bool = False
    """Whether ``[DONE]`` arrived."""

    @property
    def text(self) -> str:
        """Choice 0's content, or "" when there is no choice 0."""
        for choice in self.choices:
            if choice.index == 0:
                return choice.content
        return ""


JOIN_EVERY = 64
"""Content fragments of one choice kept apart before they are joined into one piece."""


def _joined(parts: list[str]) -> str:
    if len(parts) > 1:
        parts[:] = ["".join(parts)]  # later snapshots start from the joined string
    return parts[0] if parts else ""


_KEY_TYPES = (str, int, float, bool, type(None))


class _Detail:
    """A ``reasoning_details`` entry being merged."""

    __slots__ = ("fields", "summary", "text")

    def __init__(self, entry: dict[str, Any]) -> None:
        self.fields = dict(entry)
        self.text: list[str] = []
        self.summary: list[str] = []
        self.merge(entry)

    def merge(self, entry: dict[str, Any]) -> None:
        fields = self.fields
        for key, value in entry.items():
            if key == "text" or key == "summary":
                fields.setdefault(key, "")
                if type(value) is str and value:
                    (self.text if key == "text" else self.summary).append(value)
            elif (value is not None and value != "") or key not in fields:
                fields[key] = value  # a later non-empty value wins (a late signature)

    def snapshot(self) -> dict[str, Any]:
        # Entries are verbatim JSON, so a fragment may end in half a surrogate pair:
        # the joined text is mended (pairs joined, lone halves U+FFFD).
        out = dict(self.fields)
        if "text" in out:
            out["text"] = mend_surrogates(_joined(self.text))[0]
        if "summary" in out:
            out["summary"] = mend_surrogates(_joined(self.summary))[0]
        return out


class _Call:
    __slots__ = ("arguments", "id", "index", "name", "type")

    def __init__(self, index: int, id_: str | None, name: str | None, type_: str | None) -> None:
        self.index = index
        self.id = id_
        self.name = name
        self.type = type_
        self.arguments: list[str] = []

    def snapshot(self) -> ToolCall:
        return ToolCall(self.index, self.id, self.type, self.name, _joined(self.arguments))


class _Choice:
    __slots__ = (
        "by_tool_index",
        "calls",
        "content",
        "content_pieces",
        "details",
        "details_by_key",
        "extras",
        "finish_reason",
        "index",
        "last_call",
        "native_finish_reason",
        "reasoning",
        "refusal",
        "role",
        "tool_calls",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.role: str | None = None
        self.content: list[str] = []  # the latest fragments, fewer than JOIN_EVERY
        self.content_pieces: list[str] = []  # the text before them, joined
        self.reasoning: list[str] = []
        self.refusal: list[str] | None = None
        self.details: list[_Detail] = []
        self.details_by_key: dict[tuple[object, object], _Detail] = {}
        self.calls: list[_Call] = []
        self.by_tool_index: dict[int, _Call] = {}
        self.last_call: _Call | None = None
        self.finish_reason: str | None = None
        self.native_finish_reason: str | None = None
        self.extras: dict[str, list[Any]] = {}
        # The last snapshot of the tool calls (immutable, so shared between
        # snapshots); None once a call changed.
        self.tool_calls: tuple[ToolCall, ...] | None = ()

    def add_details(self, entries: tuple[dict[str, Any], ...]) -> None:
        for entry in entries:
            key_index = entry.get("index")
            kind = entry.get("type")
            if type(key_index) is not int or type(kind) not in _KEY_TYPES:
                # No index, or a type that cannot be a key (``[1]``): nothing to merge with.
                self.details.append(_Detail(entry))
                continue
            key = (key_index, kind)
            detail = self.details_by_key.get(key)
            if detail is None:
                detail = self.details_by_key[key] = _Detail(entry)
                self.details.append(detail)
            else:
                detail.merge(entry)

    def add_call(self, event: ToolCallDelta) -> None:
        self.tool_calls = None
        tool_index = event.tool_index
        id_ = event.id or None
        name = event.name or None
        call = self.last_call if tool_index is None else self.by_tool_index.get(tool_index)
        if call is not None and (
            (id_ is not None and call.id is not None and id_ != call.id)
            or (name is not None and call.name is not None and name != call.name)
        ):
            call = None  # a new id or name under a used index: a new call
        if call is None:
            position = len(self.calls) if tool_index is None else tool_index
            call = _Call(position, id_, name, event.type)
            self.calls.append(call)
            if tool_index is not None:
                self.by_tool_index[tool_index] = call
        else:
            if call.id is None:
                call.id = id_
            if call.name is None:
                call.name = name
            if event.type is not None:
                call.type = event.type
        if event.arguments:
            call.arguments.append(event.arguments)
        self.last_call = call

    def _tool_calls(self) -> tuple[ToolCall, ...]:
        calls = self.tool_calls
        if calls is None:
            calls = self.tool_calls = tuple(c.snapshot() for c in self.calls)
        return calls

    def add_content(self, text: str) -> None:
        content = self.content
        content.append(text)
        if len(content) >= JOIN_EVERY:
            self.content_pieces.append("".join(content))
            content.clear()

    def _content(self) -> str:
        pieces = self.content_pieces
        pieces += self.content
        self.content.clear()
        return _joined(pieces)  # kept joined: later fragments are never joined with it

    def snapshot(self) -> ChoiceResult:
        return ChoiceResult(
            index=self.index,
            role=self.role,
            content=self._content(),
            reasoning=_joined(self.reasoning),
            reasoning_details=[d.snapshot() for d in self.details],
            tool_calls=self._tool_calls(),
            refusal=None if self.refusal is None else _joined(self.refusal),
            finish_reason=self.finish_reason,
            native_finish_reason=self.native_finish_reason,
            extras={k: list(v) for k, v in self.extras.items()},
        )


def stream_status(
    *,
    done: bool,
    finished: bool,
    usage: bool,
    error: bool = False,
    end: str | None = None,
) -> ChatStatus:
    """The one rule for a stream's status, used by the accumulator, the clients,
    ``rawsse.inspect`` and ``rawsse replay``.

    ``done``: ``data: [DONE]`` arrived; ``finished``: there is a choice and every
    choice has a finish reason; ``usage``: a usage chunk arrived; ``error``: an
    in-band error, ``finish_reason: "error"`` or an HTTP error status; ``end``:
    how the body ended, when known (``eof``, ``error``, ``closed``, ``missing``).

    - ``error`` whenever the server reported an error;
    - ``complete`` after ``[DONE]``, however the body ended after it (the
      clients close it a short grace after ``[DONE]``: nothing is lost);
    - ``cancelled`` when the consumer closed the body first;
    - ``truncated`` when the body was cut (``error``, ``missing``);
    - ``complete`` when every choice finished *and* usage
      arrived: OpenAI-style servers send usage last, right before ``[DONE]``, so
      a body that stops after the finish reason but before usage and ``[DONE]``
      was cut before its end (its token counts and cost are lost) and is
      ``truncated``, never ``complete``;
    - ``truncated`` otherwise.
    """
    if error:
        return ChatStatus.ERROR
    if done:
        return ChatStatus.COMPLETE
    if end == END_CLOSED:
        return ChatStatus.CANCELLED
    if end in (END_ERROR, END_MISSING):
        return ChatStatus.TRUNCATED
    if finished and usage:
        return ChatStatus.COMPLETE
    return ChatStatus.TRUNCATED


class ChatAccumulator:
    """Incremental assembly: ``add(event)`` for each event, ``result()`` at any moment."""

    __slots__ = ("_choices", "_done", "_errors", "_extras", "_finish_error", "_start", "_usage")

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._start: StreamStart | None = None
        self._usage: Usage | None = None
        self._errors: list[InBandError] = []
        self._finish_error = False
        self._done = False
        self._extras: dict[str, list[Any]] = {}

    def _choice(self, index: int) -> _Choice:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice(index)
        return choice

    def add(self, event: ChatEvent) -> None:
        """Apply one event."""
        if type(event) is TextDelta:  # most events: no class-pattern dispatch, no call
            choice = self._choices.get(event[0])
            if choice is not None:
                content = choice.content
                content.append(event[1])
                if len(content) >= JOIN_EVERY:
                    choice.content_pieces.append("".join(content))
                    content.clear()
                return
        match event:  # most frequent first
            case TextDelta():
                self._choice(event.index).add_content(event.text)
            case Extra():
                extras = self._extras if event.index is None else self._choice(event.index).extras
                for key, value in event.fields.items():
                    extras.setdefault(key, []).append(value)
            case ReasoningDelta():
                choice = self._choice(event.index)
                if event.text:
                    choice.reasoning.append(event.text)
                if event.details:
                    choice.add_details(event.details)
            case ToolCallDelta():
                self._choice(event.index).add_call(event)
            case RoleDelta():
                self._choice(event.index).role = event.role
            case Finish():
                choice = self._choice(event.index)
                if event.reason is not None:
                    choice.finish_reason = event.reason
                    if event.reason == "error":
                        self._finish_error = True
                if event.native_reason is not None:
                    choice.native_finish_reason = event.native_reason
            case KeepAlive():
                pass
            case Usage():
                self._usage = event
            case RefusalDelta():
                choice = self._choice(event.index)
                if choice.refusal is None:
                    choice.refusal = []
                choice.refusal.append(event.text)
            case StreamStart():
                if self._start is None:
                    self._start = event
            case InBandError():
                if event.index is not None:
                    self._choice(event.index)
                self._errors.append(event)
            case Done():
                self._done = True
            case Continued():
                pass  # a seam marker: the deltas around it are the answer
            case _:
                raise TypeError(f"not a chat event: {event!r}")

    def status(self, end: str | None = None, *, http_error: bool = False) -> ChatStatus:
        """The stream's status by ``stream_status``, the body having ended as ``end``."""
        choices = self._choices.values()
        return stream_status(
            done=self._done,
            finished=bool(choices) and all(c.finish_reason is not None for c in choices),
            usage=self._usage is not None,
            error=bool(self._errors) or self._finish_error or http_error,
            end=end,
        )

    def result(self) -> ChatResult:
        """The result so far (a snapshot: later ``add`` calls do not change it).

        Cost: a text (content, reasoning, refusal, arguments) that grew since the
        previous call is joined into one string, so it is copied whole; an
        unchanged one costs nothing (the same string is returned), and while no
        tool call of a choice changes, its ``tool_calls`` tuple is reused.
        Lists and dicts (extras, reasoning details) are copied, so no snapshot
        shares mutable state.  Calling ``result()`` after every delta is therefore
        quadratic in the text's length: display the deltas themselves, and take a
        snapshot when one is needed.
        """
        choices = tuple(self._choices[i].snapshot() for i in sorted(self._choices))
        status = self.status()
        start = self._start
        return ChatResult(
            id=None if start is None else start.id,
            model=None if start is None else start.model,
            provider=None if start is None else start.provider,
            created=None if start is None else start.created,
            choices=choices,
            usage=self._usage,
            status=status,
            error=self._errors[0] if self._errors else None,
            errors=tuple(self._errors),
            extras={k: list(v) for k, v in self._extras.items()},
            done=self._done,
        )


def accumulate(events: Iterable[ChatEvent]) -> ChatResult:
    """Assemble a whole list (or iterable) of events into a ``ChatResult``."""
    accumulator = ChatAccumulator()
    add = accumulator.add
    for event in events:
        add(event)
    return accumulator.result()
