"""Typed chat-completion events: what ``ChatDecoder`` makes of each chunk.

Every event is an immutable ``Frozen`` with value equality.  Events that belong
to one choice carry its ``index``, so ``n > 1`` works everywhere.  ``ChatEvent``
is the union of all of them, for ``match`` with ``assert_never``.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from ._frozen import Frozen

__all__ = [
    "CONTENT_EVENTS",
    "ChatEvent",
    "Continued",
    "Done",
    "Extra",
    "Finish",
    "InBandError",
    "KeepAlive",
    "ReasoningDelta",
    "RefusalDelta",
    "RoleDelta",
    "StreamStart",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "is_token",
]


class StreamStart(Frozen):
    """The stream's metadata, once, from the first chunk that has an ``id`` or ``model``."""

    __slots__ = ()
    id: str | None
    """The completion id (``gen-…`` on OpenRouter)."""
    model: str | None
    """The model that served the request (may differ from the one requested)."""
    provider: str | None
    """OpenRouter's upstream provider name, where sent."""
    created: int | None
    """Unix time of creation, as sent."""


class RoleDelta(Frozen):
    """The role of choice ``index``: sent when it first appears or changes, not when repeated."""

    __slots__ = ()
    index: int  # type: ignore[assignment]  # shadows tuple.index
    role: str


class TextDelta(Frozen):
    """A non-empty fragment of choice ``index``'s content.

    ``delta.content`` is a string, or (Mistral) an array of parts: each ``text``
    part gives one ``TextDelta``, each ``thinking`` part a ``ReasoningDelta``, and
    parts of any other type go to the delta's ``Extra`` under ``content``.
    """

    __slots__ = ()
    index: int  # type: ignore[assignment]  # shadows tuple.index
    text: str


class ReasoningDelta(Frozen):
    """Reasoning of choice ``index``, from any of the shapes providers send.

    ``text`` is readable text only, from one source per delta, as OpenRouter's own
    AI SDK provider reads it: the ``text``/``summary`` of a non-empty
    ``reasoning_details`` (the structured field is the source; encrypted entries
    give none), else ``delta.reasoning``, else ``delta.reasoning_content``, else
    the text of a Mistral ``thinking`` content part.  So when ``reasoning`` and
    ``reasoning_details`` disagree, ``reasoning_details`` wins.  ``details`` are
    the delta's ``reasoning_details`` entries, verbatim (signatures, encrypted data).
    """

    __slots__ = ()
    index: int  # type: ignore[assignment]  # shadows tuple.index
    text: str
    details: tuple[dict[str, Any], ...] = ()


class ToolCallDelta(Frozen):
    """One tool-call fragment of choice ``index``.

    ``tool_index`` is the fragment's ``index`` (None when the provider sent none);
    ``arguments`` is the fragment's piece of the JSON arguments ("" when absent).
    An OpenAI custom tool call (``{"type": "custom", "custom": {"name", "input"}}``)
    gives ``type="custom"``, ``name`` from ``custom.name`` and its streamed
    ``custom.input`` (free text, not JSON) in ``arguments``.
    """

    __slots__ = ()
    index: int  # type: ignore[assignment]  # shadows tuple.index
    tool_index: int | None
    id: str | None
    name: str | None
    arguments: str
    type: str | None = None


class RefusalDelta(Frozen):
    """A non-empty fragment of choice ``index``'s refusal."""

    __slots__ = ()
    index: int  # type: ignore[assignment]  # shadows tuple.index
    text: str


class Finish(Frozen):
    """A finish reason of choice ``index``: one per chunk that carries one (providers repeat it)."""

    __slots__ = ()
    index: int  # type: ignore[assignment]  # shadows tuple.index
    reason: str | None
    """The normalized ``finish_reason`` (``stop``, ``length``, ``tool_calls``, …)."""
    native_reason: str | None
    """The provider's own ``native_finish_reason``, where sent."""


class Usage(Frozen):
    """Token counts and cost; the last ``Usage`` of a stream is the one that counts."""

    __slots__ = ()
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    reasoning_tokens: int | None
    """``completion_tokens_details.reasoning_tokens``, else a top-level ``reasoning_tokens``."""
    cached_tokens: int | None
    """``prompt_tokens_details.cached_tokens``, else a top-level ``cached_tokens``."""
    cost: float | None
    """OpenRouter's cost in credits, as a float."""
    raw: dict[str, Any]
    """The whole ``usage`` object as sent."""


class KeepAlive(Frozen):
    """An SSE comment, such as OpenRouter's ``: OPENROUTER PROCESSING``."""

    __slots__ = ()
    text: str


class InBandError(Frozen):
    """An error sent inside the stream after HTTP 200.

    ``index`` is None for a top-level ``error`` and the choice index for a
    ``choices[].error``.  ``raw`` is the whole chunk.
    """

    __slots__ = ()
    index: int | None  # type: ignore[assignment]  # shadows tuple.index
    code: int | str | None
    """``error.code`` (a number on OpenRouter, a string elsewhere), else ``error.http_status``."""
    message: str
    metadata: dict[str, Any] | None
    raw: dict[str, Any]


class Extra(Frozen):
    """Fields the typed events do not model, so that nothing sent is lost.

    ``scope`` says where they were: ``"chunk"`` (then ``index`` is None),
    ``"choice"`` (``logprobs``, …) or ``"delta"`` (``annotations``, ``images``,
    ``audio``, …).  Keys whose value is ``null`` are left out: they carry
    nothing, and ``logprobs: null`` or ``usage: null`` on every chunk would
    otherwise double the events.  ``object`` is not reported (it is the constant
    ``chat.completion.chunk``).  A delta whose ``tool_calls`` entries carry
    unmodelled keys (Gemini's ``extra_content``) also reports the whole
    ``tool_calls`` list here.
    """

    __slots__ = ()
    index: int | None  # type: ignore[assignment]  # shadows tuple.index
    fields: dict[str, Any]
    scope: str = "delta"


class Done(Frozen):
    """``data: [DONE]``: the stream's end marker."""

    __slots__ = ()


class Continued(Frozen):
    """A seam: choice ``index`` goes on in a new request (see ``Resume``).

    Not sent by any server: the clients emit it when a resume policy continues a
    stream, before the first event of the continuation.  Only new deltas follow;
    the accumulator ignores it.
    """

    __slots__ = ()
    index: int  # type: ignore[assignment]  # shadows tuple.index
    reason: str
    """Why: ``"cut"`` (no ``[DONE]``), ``"timeout"`` (idle, stall or first-token
    clock after content), ``"error"`` (a retriable in-band error) or ``"length"``."""
    attempt: int
    """Which continuation of this choice it is: 1 for the first."""
    detail: str = ""
    """The failure that caused it, as its message says it."""


ChatEvent: TypeAlias = (
    StreamStart
    | RoleDelta
    | TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | RefusalDelta
    | Finish
    | Usage
    | KeepAlive
    | InBandError
    | Extra
    | Done
    | Continued
)
"""Every event ``ChatDecoder`` produces, and the clients' ``Continued``."""

CONTENT_EVENTS: tuple[type[ChatEvent], ...] = (
    TextDelta,
    ReasoningDelta,
    ToolCallDelta,
    RefusalDelta,
)
"""The events that count as a token (for time-to-first-token and stall timers)."""


def is_token(event: ChatEvent) -> bool:
    """A content event that carries something (what TTFT and stalls measure)."""
    if isinstance(event, TextDelta | RefusalDelta):
        return bool(event.text)
    if isinstance(event, ReasoningDelta):
        return bool(event.text or event.details)
    if isinstance(event, ToolCallDelta):
        return bool(event.arguments or event.name or event.id)
    return False
