"""The owner's policy for browser requests (sans-I/O): what ``POST /chat`` may ask for.

``Policy.check(body)`` turns the request body into the upstream call's
arguments or raises ``Rejected`` with the HTTP status and a clear message.  The
browser chooses only the model (from the allowlist), the messages and the
parameters the owner allows; the owner's fixed parameters always win, and caps
bound numeric ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_PARAMS", "ChatRequest", "Policy", "Rejected"]

DEFAULT_MAX_BODY = 8 * 1024 * 1024
"""The largest request body accepted, in bytes (413 beyond it)."""

DEFAULT_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "reasoning",
    }
)
"""Request parameters a browser may set unless the owner says otherwise."""

# Keys of the body that are not parameters: the relay itself decides them.
_OWN_KEYS = frozenset({"model", "messages", "stream", "stream_options"})


@dataclass(eq=False)
class Rejected(Exception):
    """A request refused before any upstream call: ``status`` and ``message`` for the JSON
    error, whose ``code`` is ``status`` unless given; ``headers`` go with the answer."""

    status: int
    message: str
    code: int | str | None = field(default=None, kw_only=True)
    headers: Mapping[str, str] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def error_code(self) -> int | str:
        return self.status if self.code is None else self.code


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the relay sends upstream for one browser request."""

    model: str
    messages: list[Any]
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Policy:
    """The owner's rules (see ``RelayApp`` for each)."""

    models: tuple[str, ...]
    params: frozenset[str] = DEFAULT_PARAMS
    fixed: Mapping[str, Any] = field(default_factory=dict)
    caps: Mapping[str, float] = field(default_factory=dict)
    max_body: int = DEFAULT_MAX_BODY

    @classmethod
    def build(
        cls,
        *,
        models: Iterable[str],
        params: Iterable[str] | None,
        fixed: Mapping[str, Any] | None,
        caps: Mapping[str, float] | None,
        max_body: int,
    ) -> Policy:
        names = tuple(models)
        if not names or not all(isinstance(m, str) and m for m in names):
            raise ValueError("models must list at least one model id (non-empty strings)")
        if max_body < 1:
            raise ValueError(f"max_body must be >= 1 byte: {max_body!r}")
        allowed = DEFAULT_PARAMS if params is None else frozenset(params)
        for name in (fixed or {}, caps or {}):
            for key in name:
                if key in _OWN_KEYS:
                    raise ValueError(f"{key!r} is set by the relay, not a parameter")
        return cls(names, allowed, dict(fixed or {}), dict(caps or {}), max_body)

    def check(self, body: bytes) -> ChatRequest:
        """The upstream request for ``body``, or ``Rejected`` (400) saying what is wrong."""
        try:
            request = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise Rejected(400, f"the request body is not valid JSON: {exc}") from None
        if not isinstance(request, dict):
            raise Rejected(400, "the request body must be a JSON object")
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise Rejected(400, "'model' is missing: send one of " + ", ".join(self.models))
        if model not in self.models:
            raise Rejected(
                400, f"model {model!r} is not allowed here; allowed: " + ", ".join(self.models)
            )
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Rejected(400, "'messages' must be a non-empty list of message objects")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise Rejected(400, f"messages[{i}] must be an object with a string 'role'")
        if request.get("stream", True) is not True:
            raise Rejected(400, "'stream' must be true (or left out): the relay always streams")
        params = {k: v for k, v in request.items() if k not in _OWN_KEYS}
        rejected = sorted(k for k in params if k not in self.params and k not in self.caps)
        if rejected:
            allowed = ", ".join(sorted(self.params)) or "none"
            raise Rejected(
                400,
                "parameters not allowed here: " + ", ".join(rejected) + f" (allowed: {allowed})",
                code="param_not_allowed",
            )
        for key, cap in self.caps.items():
            value = params.get(key)
            if value is None:
                params[key] = cap
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Rejected(400, f"{key!r} must be a number")
            elif math.isnan(value) or value > cap:
                params[key] = cap
        params.update(self.fixed)
        return ChatRequest(model, messages, params)
