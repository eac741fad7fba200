"""Per-stream measurements: ``StreamMetrics`` and the ``rawsse.metrics`` log line."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["StreamMetrics", "tokens_per_second"]

logger = logging.getLogger("rawsse.metrics")


@dataclass(frozen=True)
class StreamMetrics:
    """A snapshot of one stream's measurements; times in seconds, None until known.

    ``ttft`` runs from sending the request of the successful attempt to the first
    content event (text, reasoning, tool call or refusal; never a keep-alive);
    ``ttfb`` to its first body byte; ``total`` from the first attempt to the end.
    """

    ttft: float | None = None
    total: float | None = None
    attempts: int = 0
    ttfb: float | None = None
    status: str | None = None
    """The final ``ChatStatus`` value, None while the stream is open."""
    model: str | None = None
    provider: str | None = None
    generation_id: str | None = None
    """The ``X-Generation-Id`` header, else the chunk ``id``."""
    content_events: int = 0
    events: int = 0
    keepalives: int = 0
    reads: int = 0
    """Network reads that delivered body bytes."""
    bytes_received: int = 0
    gap_p50: float | None = None
    """Median gap between consecutive content events."""
    gap_p95: float | None = None
    gap_max: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: float | None = None
    tokens_per_second: float | None = None
    """``completion_tokens`` over the time from the first to the last content event."""
    continuations: int = 0
    """``Continued`` seams: requests that continued the stream (see ``Resume``)."""
    parts: tuple[StreamMetrics, ...] = ()
    """With continuations, each request's own measurements (its ``ttft``, ``attempts``,
    tokens, ...), in order; the fields above add them up."""
    request_model: str | None = None
    """The model the request named (``model`` is the one that answered)."""
    error_type: str | None = None
    """The class name of the error the stream ended with; None when it ended without one."""

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)

    def log_line(self) -> str:
        """One structured line: ``key=value`` pairs, values JSON-encoded, None omitted."""
        parts = []
        for key, value in asdict(self).items():
            if value is None or key == "parts" or (key == "continuations" and not value):
                continue
            if isinstance(value, float):
                value = round(value, 6)
            parts.append(f"{key}={json.dumps(value, ensure_ascii=False)}")
        return " ".join(parts)


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0..1) of a sorted, non-empty list."""
    k = max(0, min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def tokens_per_second(tokens: int | None, seconds: float) -> float | None:
    """``tokens / seconds`` as a finite float, or None (no tokens, no time, or out of range).

    Never raises: a count too large for a float (``10**400``) gives None.
    """
    if not tokens or not seconds > 0:
        return None
    try:
        rate = tokens / seconds
    except OverflowError:
        return None
    return rate if rate < float("inf") else None
