"""Usage and metrics summed over the parts of a resumed stream.

Pure functions of finished values, kept apart from ``ResumeCore``'s state machine:
``sum_usage`` (what ``ResumeCore`` delivers once at the end) and ``join_metrics``
(what ``StreamCore`` reports for the whole stream).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ._chat_events import Usage
from ._metrics import StreamMetrics

__all__ = ["join_metrics", "sum_usage"]


def sum_usage(usages: Sequence[Usage]) -> Usage | None:
    """One ``Usage`` for several requests: counts and cost added, ``raw`` merged
    with its numbers added (other values from the last request)."""
    if not usages:
        return None
    if len(usages) == 1:
        return usages[0]
    raw: dict[str, Any] = {}
    for usage in usages:
        raw = _add_raw(raw, usage.raw)
    return Usage(
        prompt_tokens=_add(u.prompt_tokens for u in usages),
        completion_tokens=_add(u.completion_tokens for u in usages),
        total_tokens=_add(u.total_tokens for u in usages),
        reasoning_tokens=_add(u.reasoning_tokens for u in usages),
        cached_tokens=_add(u.cached_tokens for u in usages),
        cost=_add(u.cost for u in usages),
        raw=raw,
    )


def _add(values: Any) -> Any:
    total = None
    for value in values:
        if value is not None:
            total = value if total is None else total + value
    return total


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _add_raw(into: dict[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for key, value in more.items():
        have = out.get(key)
        if _is_number(value) and _is_number(have):
            out[key] = have + value
        elif isinstance(value, Mapping) and isinstance(have, dict):
            out[key] = _add_raw(have, value)
        elif value is not None or key not in out:
            out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def join_metrics(parts: Sequence[StreamMetrics]) -> StreamMetrics:
    """The measurements of a resumed stream from those of its requests.

    Counts, tokens and cost are added; ``ttft``/``ttfb``, the model and the
    generation id are the first request's; ``status`` the last one's; ``total``
    the longest (every request's clock starts with the stream); the gaps are the
    worst of the requests' (their median is not recoverable from the parts).
    """
    first, last = parts[0], parts[-1]
    if len(parts) == 1:
        return first
    completion = _add(p.completion_tokens for p in parts)
    return dataclasses.replace(
        first,
        total=max((p.total for p in parts if p.total is not None), default=None),
        attempts=sum(p.attempts for p in parts),
        status=last.status,
        content_events=sum(p.content_events for p in parts),
        events=sum(p.events for p in parts),
        keepalives=sum(p.keepalives for p in parts),
        reads=sum(p.reads for p in parts),
        bytes_received=sum(p.bytes_received for p in parts),
        gap_p50=max((p.gap_p50 for p in parts if p.gap_p50 is not None), default=None),
        gap_p95=max((p.gap_p95 for p in parts if p.gap_p95 is not None), default=None),
        gap_max=max((p.gap_max for p in parts if p.gap_max is not None), default=None),
        prompt_tokens=_add(p.prompt_tokens for p in parts),
        completion_tokens=completion,
        reasoning_tokens=_add(p.reasoning_tokens for p in parts),
        cost=_add(p.cost for p in parts),
        tokens_per_second=None,
    )
