"""``Resume``: continue a broken stream in a new request; ``ResumeCore`` decides how.

Sans-I/O.  ``ResumeCore`` sits between the events of each HTTP request (a
*part*) and the caller, who sees one stream: it joins every continuation to what
was delivered (``_seam``), holds back what a part could still take back (tool
calls, usage, ``[DONE]``, a ``length`` finish), and at the end of each part
returns the decision the I/O shells follow: ``Continue`` with this request, or
``Stop`` (with the error to raise, if any).

What happens at a cut, per choice and per field:

* Text delivered (non-whitespace): the next request is the same one plus an
  assistant message with the text so far, trailing whitespace removed (Anthropic
  rejects a prefill that ends in whitespace; the model writes it again and the
  overlap rule drops it).  ``n`` becomes 1: one request continues one choice,
  and its choice 0 becomes the continued choice.  A user's own trailing
  assistant message is extended, not duplicated.
* No text delivered yet (only reasoning, or nothing), or ``mode="restart"``:
  the request is sent again as it was, and the same choice of the new answer is
  replayed against what was delivered: text must reproduce the delivered text
  exactly (else ``ContinuationError``), reasoning that differs is delivered as a
  new block of thought after the ``Continued`` event.
* Reasoning is never prefilled (no provider accepts an unsigned partial thought):
  a prefill continuation's reasoning is a new block.  Its ``reasoning_details``
  indexes are moved past the ones already delivered, so no accumulator merges two
  generations' blocks (their signatures would no longer match).
* Tool calls are held until their choice finishes and then delivered whole, so
  a call's arguments always come from one generation; calls in flight at a cut
  are dropped and the continuation makes them again.
* ``usage`` is held and delivered once at the end, summed over all requests;
  ``[DONE]`` is delivered only at the very end; the continuations' own
  ``StreamStart`` and repeated ``RoleDelta`` are dropped.
* A ``finish_reason: "error"`` is held until it is known whether a retriable
  in-band error follows it (the chunk that carries both sends the finish first).
* A cut after every choice finished (before usage or ``[DONE]``) is not
  continued: there is nothing left to generate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from . import _chat_events as chat_events
from ._accumulate import ChatAccumulator, ChatResult, ChatStatus
from ._errors import (
    ContinuationError,
    FirstTokenTimeout,
    IdleTimeout,
    IncompleteStreamError,
    MalformedChunk,
    RawSSEError,
    StallTimeout,
    StreamError,
    StreamInterrupted,
    StreamTimeout,
)
from ._resume_totals import sum_usage
from ._seam import DEFAULT_MAX_OVERLAP, OverlapJoiner, ReplayJoiner, SeamJoiner

__all__ = [
    "DEFAULT_MAX_CONTINUATIONS",
    "RETRIABLE_ERROR_CODES",
    "RETRIABLE_ERROR_TYPES",
    "Continue",
    "Resume",
    "ResumeCore",
    "Stop",
]

DEFAULT_MAX_CONTINUATIONS = 3

RETRIABLE_ERROR_CODES: frozenset[int] = frozenset({408, 502, 503, 504, 524, 529})
"""In-band ``error.code`` (or ``http_status``) values worth a continuation: 408 and
504 (upstream timeout), 502 (provider down or invalid upstream answer), 503
(provider unavailable), 524 (Cloudflare: the origin timed out), 529 (overloaded).
Not 429 (the same limit still holds), not 500 (masked, often deterministic),
not 4xx request errors."""

RETRIABLE_ERROR_TYPES: frozenset[str] = frozenset(
    {"provider_overloaded", "provider_unavailable", "timeout", "overloaded_error"}
)
"""In-band error types worth a continuation, from ``error.metadata.error_type``,
``error.error_type``, ``error.type`` or a string ``error.code``: OpenRouter's
``provider_overloaded``, ``provider_unavailable`` and ``timeout``, Anthropic's
``overloaded_error``.  Messages are never matched (OpenRouter masks them)."""

Reason = Literal["cut", "timeout", "error", "length"]
Mode = Literal["prefill", "restart"]
_FIELDS = ("text", "reasoning", "refusal")


@dataclass(frozen=True)
class Resume:
    """When and how to continue a stream that broke, in a new request.

    ``Resume()`` continues after a cut (no ``[DONE]``), after the idle, stall or
    first-token clock fired once content had arrived, and after a retriable
    in-band error; by assistant prefill; at most ``DEFAULT_MAX_CONTINUATIONS``
    (3) times per choice.  A ``finish_reason: "length"`` is continued only with
    ``length=True``.
    """

    max_continuations: int = DEFAULT_MAX_CONTINUATIONS
    """Continuations per choice; beyond it the failure is raised as it is."""
    cut: bool = True
    """Continue when the connection ends or breaks before the stream finished."""
    timeout: bool = True
    """Continue when the idle, stall or first-token clock fires after content
    arrived (before any content, ``retries`` decide; ``total`` is never continued)."""
    error: bool = True
    """Continue after an in-band error with a code in ``error_codes`` or a type in
    ``error_types``."""
    length: bool = False
    """Continue a choice that stopped with ``finish_reason: "length"``."""
    mode: Mode = "prefill"
    """``"prefill"``: send the text so far as a trailing assistant message (Anthropic,
    DeepSeek, Mistral, most of OpenRouter); ``"restart"``: send the request again
    and drop what the new answer repeats (endpoints without prefill; the new
    answer must reproduce the delivered text, so use a deterministic setting)."""
    prefix: bool = False
    """Mark the prefill message ``"prefix": true`` (DeepSeek's and Mistral's own APIs)."""
    max_overlap: int = DEFAULT_MAX_OVERLAP
    """The longest repeat of the delivered text removed at a prefill seam."""
    error_codes: frozenset[int] = RETRIABLE_ERROR_CODES
    error_types: frozenset[str] = RETRIABLE_ERROR_TYPES

    def __post_init__(self) -> None:
        for name in ("max_continuations", "max_overlap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Resume.{name} must be an int >= 0: {value!r}")
        if self.mode not in ("prefill", "restart"):
            raise ValueError(f"Resume.mode must be 'prefill' or 'restart': {self.mode!r}")
        object.__setattr__(self, "error_codes", frozenset(self.error_codes))
        object.__setattr__(self, "error_types", frozenset(self.error_types))

    def retriable(self, code: int | str | None, metadata: Any, raw: Any) -> bool:
        """Whether an in-band error (code, ``metadata``, the whole chunk) is worth a
        continuation under this policy."""
        if not self.error:
            return False
        if isinstance(code, int) and not isinstance(code, bool) and code in self.error_codes:
            return True
        types: set[object] = set()
        if isinstance(code, str):
            types.add(code)
        if isinstance(metadata, Mapping):
            types.add(metadata.get("error_type"))
        error = raw.get("error") if isinstance(raw, Mapping) else None
        if isinstance(error, Mapping):
            types.update((error.get("error_type"), error.get("type")))
            status = error.get("http_status")
            if isinstance(status, int) and status in self.error_codes:
                return True
        return not self.error_types.isdisjoint(types)

    def reason_for(self, err: BaseException, *, content: bool) -> Reason | None:
        """The trigger ``err`` is under this policy, or None when it is not one.

        ``content``: whether any content arrived (in any request) before it.
        """
        if isinstance(err, IncompleteStreamError):
            return "cut" if self.cut else None
        if isinstance(err, StallTimeout | IdleTimeout | FirstTokenTimeout):
            return "timeout" if self.timeout and content else None
        if isinstance(err, StreamError):
            return "error" if self.retriable(err.code, err.metadata, err.raw) else None
        return None


@dataclass(frozen=True)
class Continue:
    """Send this request next; emit ``event`` before its first event."""

    messages: list[Any]
    params: dict[str, Any]
    """The request's other body fields (``n`` set to 1 for a prefill of n > 1)."""
    event: chat_events.Continued


@dataclass(frozen=True)
class Stop:
    """The stream is over: deliver ``events``, then raise ``error`` if there is one."""

    error: RawSSEError | None = None
    events: list[chat_events.ChatEvent] = dataclasses.field(default_factory=list)


class _Part:
    """One HTTP request's view: which choices it carries, and its seam joiners."""

    __slots__ = ("choices", "detail_shift", "joiners", "mapping", "strict")

    def __init__(self, mapping: dict[int, int] | None, choices: set[int] | None) -> None:
        self.mapping = mapping
        """The part's choice index -> the caller's (None: the same)."""
        self.choices = choices
        """The caller's choices this part continues (None: all of them)."""
        self.joiners: dict[tuple[int, str], SeamJoiner] = {}
        self.strict: set[tuple[int, str]] = set()
        """Joiners whose divergence is an error (text and refusal replays)."""
        self.detail_shift: dict[int, int] = {}


class ResumeCore:
    """The sans-I/O state of one resumable stream.

    The shell creates it with the request's ``messages`` and other body fields
    (``params``), passes each request's events through ``feed``, calls
    ``end_part`` when a request's stream ended cleanly, and ``decide`` after
    each request (with its failure, or None) to learn what to do next.
    ``pending`` is an error found in ``feed`` (a retriable in-band error, a seam
    that cannot be joined): the shell closes the request and calls ``decide``
    with it.
    """

    def __init__(self, policy: Resume, *, messages: Sequence[Any], params: Mapping[str, Any]):
        self.policy = policy
        self._messages = list(messages)
        self._params = dict(params)
        n = params.get("n")
        self._n = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
        self._acc = ChatAccumulator()
        self._delivered: dict[tuple[int, str], list[str]] = {}
        self._roles: dict[int, str] = {}
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._length: dict[int, list[chat_events.Finish]] = {}
        self._errored: dict[int, chat_events.Finish] = {}
        """``finish_reason: "error"`` held: a retriable error after it is continued."""
        self._tools: dict[int, list[chat_events.ToolCallDelta]] = {}
        self._details_top: dict[int, int] = {}
        self._usages: list[chat_events.Usage] = []
        self._part_usage: chat_events.Usage | None = None
        self._done = False
        self._started = False
        self._queue: list[tuple[int, Reason, RawSSEError | None]] = []
        """Choices waiting for a continuation: why, and the failure (None for length)."""
        self.continuations: dict[int, int] = {}
        """Continuations so far, per choice."""
        self.seams = 0
        """``Continued`` events emitted."""
        self.content = False
        """Whether any content event arrived, in any request."""
        self.pending: RawSSEError | None = None
        self._part = _Part(None, None)

    # -- events ---------------------------------------------------------------

    def feed(self, events: Sequence[chat_events.ChatEvent]) -> list[chat_events.ChatEvent]:
        """The events of the current request to deliver (``pending`` may be set)."""
        out: list[chat_events.ChatEvent] = []
        for event in events:
            if self.pending is not None:
                break
            match event:
                case chat_events.TextDelta():
                    index = self._index(event.index)
                    if index is not None:
                        self._text(out, _at(event, index), index, "text")
                case chat_events.RefusalDelta():
                    index = self._index(event.index)
                    if index is not None:
                        self._text(out, _at(event, index), index, "refusal")
                case chat_events.ReasoningDelta():
                    index = self._index(event.index)
                    if index is not None:
                        event = _at(event, index)
                        if event.details:
                            event = event._replace(details=self._details(index, event.details))
                        self._text(out, event, index, "reasoning")
                case chat_events.KeepAlive():
                    out.append(event)
                case chat_events.Extra():
                    index = self._index(event.index)
                    if event.index is None or index is not None:
                        out.append(event if index is None else _at(event, index))
                case chat_events.ToolCallDelta():
                    index = self._index(event.index)
                    if index is not None:
                        self.content = True
                        self._seen.add(index)
                        self._tools.setdefault(index, []).append(_at(event, index))
                case chat_events.Finish():
                    index = self._index(event.index)
                    if index is not None:
                        self._seen.add(index)
                        self._finish(out, _at(event, index), index)
                case chat_events.RoleDelta():
                    index = self._index(event.index)
                    if index is not None:
                        self._seen.add(index)
                        if self._roles.get(index) != event.role:
                            self._roles[index] = event.role
                            out.append(_at(event, index))
                case chat_events.Usage():
                    self._part_usage = event
                case chat_events.StreamStart():
                    if not self._started:
                        self._started = True
                        out.append(event)
                case chat_events.InBandError():
                    index = self._index(event.index)
                    if event.index is not None and index is None:
                        continue
                    if self.policy.retriable(event.code, event.metadata, event.raw):
                        self._errored.clear()
                        self.pending = StreamError(
                            f"the server sent an error in the stream: {event.message}"
                            + (f" (code {event.code})" if event.code is not None else ""),
                            code=event.code,
                            metadata=event.metadata,
                            raw=event.raw,
                        )
                    else:
                        self._release_errored(out)
                        out.append(event if index is None else _at(event, index))
                case chat_events.Done():
                    self._done = True
                case chat_events.Continued():
                    out.append(event)
                case _:
                    raise TypeError(f"not a chat event: {event!r}")
        for event in out:
            self._acc.add(event)
        return out

    def _index(self, index: int | None) -> int | None:
        """The caller's choice index for the current request's ``index``, or None when
        this request does not continue that choice."""
        if index is None:
            return None
        part = self._part
        if part.mapping is not None:
            mapped = part.mapping.get(index)
            if mapped is None:
                return None
            index = mapped
        if part.choices is not None and index not in part.choices:
            return None
        return index

    def _text(
        self,
        out: list[chat_events.ChatEvent],
        event: chat_events.TextDelta | chat_events.RefusalDelta | chat_events.ReasoningDelta,
        index: int,
        field: str,
    ) -> None:
        text = event.text
        self.content = True
        self._seen.add(index)
        key = (index, field)
        joiner = self._part.joiners.get(key)
        if joiner is not None and text:
            new = joiner.feed(text)
            if joiner.diverged and key in self._part.strict:
                self.pending = self._diverged(index, field)
                return
            if new != text:
                if not new and not (type(event) is chat_events.ReasoningDelta and event.details):
                    return
                event = event._replace(text=new)
            text = new
        if text:
            self._delivered.setdefault(key, []).append(text)
        out.append(event)

    def _details(
        self, index: int, details: tuple[dict[str, Any], ...]
    ) -> tuple[dict[str, Any], ...]:
        shift = self._part.detail_shift.get(index, 0)
        moved = []
        top = self._details_top.get(index, -1)
        for entry in details:
            position = entry.get("index")
            if type(position) is int:
                if shift:
                    entry = {**entry, "index": position + shift}
                top = max(top, position + shift)
            moved.append(entry)
        self._details_top[index] = top
        return tuple(moved)

    def _finish(
        self, out: list[chat_events.ChatEvent], event: chat_events.Finish, index: int
    ) -> None:
        if event.reason is None:
            out.append(event)
            return
        self._close_joiners(out, index)
        if self.pending is not None:
            return
        if event.reason == "error":  # delivered unless a retriable error follows
            self._errored[index] = event
            return
        if event.reason == "length" and self.policy.length:
            self._length.setdefault(index, []).append(event)
            self._tools.pop(index, None)  # cut short: the continuation makes them again
            return
        if index in self._length:  # a repeated finish settles it
            del self._length[index]
        out.extend(self._tools.pop(index, ()))
        self._finished.add(index)
        out.append(event)

    def _release_errored(self, out: list[chat_events.ChatEvent]) -> None:
        for index in sorted(self._errored):
            out.extend(self._tools.pop(index, ()))
            out.append(self._errored[index])
            self._finished.add(index)
        self._errored.clear()

    def _close_joiners(self, out: list[chat_events.ChatEvent], index: int) -> None:
        part = self._part
        for field in _FIELDS:
            key = (index, field)
            joiner = part.joiners.pop(key, None)
            if joiner is None:
                continue
            rest = joiner.close()
            if joiner.diverged and key in part.strict:
                self.pending = self._diverged(index, field)
                return
            if rest:
                self._delivered.setdefault(key, []).append(rest)
                event: chat_events.ChatEvent
                if field == "text":
                    event = chat_events.TextDelta(index, rest)
                elif field == "refusal":
                    event = chat_events.RefusalDelta(index, rest)
                else:
                    event = chat_events.ReasoningDelta(index, rest)
                out.append(event)

    def _diverged(self, index: int, field: str) -> ContinuationError:
        name = "content" if field == "text" else field
        return ContinuationError(
            f"the regenerated answer of choice {index} differs from the {name} already "
            "delivered, so it cannot be continued (mode 'restart' needs a deterministic "
            "answer; use mode 'prefill' where the endpoint supports it)"
        )

    def end_part(self) -> list[chat_events.ChatEvent]:
        """The current request's stream ended cleanly: the held events it settles."""
        out: list[chat_events.ChatEvent] = []
        for index in sorted({i for i, _ in self._part.joiners}):
            self._close_joiners(out, index)
            if self.pending is not None:
                break
        else:
            self._release_errored(out)
            for index in sorted(self._tools):
                if index not in self._length:
                    out.extend(self._tools.pop(index))
        for event in out:
            self._acc.add(event)
        return out

    # -- decisions ------------------------------------------------------------

    def decide(
        self,
        failure: RawSSEError | None,
        *,
        now: float | None = None,
        deadline: float | None = None,
    ) -> Continue | Stop:
        """What to do after the current request: with its ``failure``, or None when
        it ended cleanly (after ``end_part``).  ``deadline`` is the ``total`` limit
        in the clock of ``now``; no continuation starts after it."""
        self.pending = None
        if self._part_usage is not None:
            self._usages.append(self._part_usage)
            self._part_usage = None
        part_choices = self._part.choices
        self._part = _Part(None, set())  # nothing more is taken from this request
        self._tools = {i: calls for i, calls in self._tools.items() if i in self._length}
        if failure is None:
            self._enqueue([(i, "length", None) for i in sorted(self._length)])
        else:
            reason = self.policy.reason_for(failure, content=self.content)
            if reason is None:
                return self._give_up(failure)
            choices = set(range(self._n)) | self._seen
            if part_choices is not None:
                choices &= part_choices
            self._errored.clear()  # the continuation finishes these choices again
            self._enqueue([(i, reason, failure) for i in sorted(choices - self._finished)])
        if not self._queue:
            return self._stop(failure)
        index, reason, cause = self._queue[0]
        attempt = self.continuations.get(index, 0) + 1
        late = deadline is not None and now is not None and now >= deadline
        if late or attempt > self.policy.max_continuations:
            return self._stop(failure)
        del self._queue[0]
        self.continuations[index] = attempt
        self._length.pop(index, None)
        self._tools.pop(index, None)
        self._done = False
        self.seams += 1
        detail = 'finish_reason "length"' if cause is None else str(cause)
        event = chat_events.Continued(index, reason, attempt, detail)
        self._acc.add(event)
        messages, params = self._next_request(index)
        return Continue(messages, params, event)

    def _enqueue(self, items: list[tuple[int, Reason, RawSSEError | None]]) -> None:
        # The newest first: a continuation that broke is continued again at once.
        new = {index for index, _, _ in items}
        self._queue = items + [item for item in self._queue if item[0] not in new]

    def _stop(self, failure: RawSSEError | None) -> Stop:
        """No (more) continuation: finish, or give up with the failure that is owed."""
        if failure is None:
            failure = next((cause for _, _, cause in self._queue if cause is not None), None)
        self._queue.clear()
        return self._finish_all() if failure is None else self._give_up(failure)

    def _next_request(self, index: int) -> tuple[list[Any], dict[str, Any]]:
        text = "".join(self._delivered.get((index, "text"), ()))
        messages = list(self._messages)
        params = dict(self._params)
        part: _Part
        if self.policy.mode == "prefill" and text.strip():
            base = ""
            last = messages[-1] if messages else None
            if isinstance(last, Mapping) and last.get("role") == "assistant":
                content = last.get("content")
                if isinstance(content, str):  # the caller's own prefill goes on
                    base = content
                    messages.pop()
            prefill: dict[str, Any] = {"role": "assistant", "content": (base + text).rstrip()}
            if self.policy.prefix:
                prefill["prefix"] = True
            messages.append(prefill)
            if "n" in params:
                params["n"] = 1
            part = _Part({0: index}, {index})
            part.joiners[(index, "text")] = OverlapJoiner(text, max_overlap=self.policy.max_overlap)
        else:
            part = _Part(None, {index})
            for field in _FIELDS:
                delivered = "".join(self._delivered.get((index, field), ()))
                if delivered:
                    key = (index, field)
                    strict = field != "reasoning"
                    part.joiners[key] = ReplayJoiner(delivered, keep_on_divergence=not strict)
                    if strict:
                        part.strict.add(key)
        top = self._details_top.get(index)
        if top is not None:
            part.detail_shift[index] = top + 1
        self._part = part
        return messages, params

    def _finish_all(self) -> Stop:
        events: list[chat_events.ChatEvent] = []
        for index in sorted(self._length):
            events.extend(self._tools.pop(index, ()))
            events.extend(self._length[index])
            self._finished.add(index)
        self._length.clear()
        usage = sum_usage(self._usages)
        if usage is not None:
            events.append(usage)
        if self._done:
            events.append(chat_events.Done())
        for event in events:
            self._acc.add(event)
        return Stop(None, events)

    def _give_up(self, failure: RawSSEError) -> Stop:
        self._queue.clear()
        held: list[chat_events.ChatEvent] = []
        self._release_errored(held)  # in the partial result, though never delivered
        for event in held:
            self._acc.add(event)
        status = _status_of(failure)
        partial = self.result(status)
        if isinstance(failure, StreamInterrupted | MalformedChunk):
            failure.partial = partial
            return Stop(failure)
        if not self.content and not self.seams:
            return Stop(failure)  # nothing was delivered: the error as it is today
        err = ContinuationError(f"the stream could not be continued: {failure}", partial=partial)
        err.__cause__ = failure
        return Stop(err)

    # -- views ----------------------------------------------------------------

    def delivered(self, index: int = 0, field: str = "text") -> str:
        """The text of one field of one choice delivered so far."""
        return "".join(self._delivered.get((index, field), ()))

    def result(self, status: ChatStatus | None = None) -> ChatResult:
        """The joined result so far: what was delivered, usage summed over requests."""
        result = self._acc.result()
        usage = sum_usage([*self._usages, *([self._part_usage] if self._part_usage else [])])
        changes: dict[str, Any] = {}
        if usage is not None and usage != result.usage:
            changes["usage"] = usage
        if status is not None and status != result.status:
            changes["status"] = status
        return dataclasses.replace(result, **changes) if changes else result


_E = TypeVar(
    "_E",
    chat_events.TextDelta,
    chat_events.RefusalDelta,
    chat_events.ReasoningDelta,
    chat_events.ToolCallDelta,
    chat_events.Finish,
    chat_events.RoleDelta,
    chat_events.Extra,
    chat_events.InBandError,
)


def _at(event: _E, index: int) -> _E:
    """``event`` as choice ``index`` (itself when it already is)."""
    return event if event.index == index else event._replace(index=index)


def _status_of(err: RawSSEError) -> ChatStatus:
    if isinstance(err, StreamTimeout):
        return ChatStatus.TIMED_OUT
    if isinstance(err, IncompleteStreamError):
        return ChatStatus.TRUNCATED
    return ChatStatus.ERROR
