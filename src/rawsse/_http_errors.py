"""Turning an HTTP error answer into the right ``APIStatusError`` subclass."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

from ._errors import (
    APIStatusError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServiceUnavailableError,
)
from ._json import bounded_number, loads_bounded
from ._unicode import mend_surrogates

__all__ = ["parse_retry_after", "status_error"]

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    429: RateLimitError,
    500: InternalServerError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
}

MAX_BODY_CHARS = 64 * 1024  # an error body is kept whole up to this size
MAX_RETRY_AFTER_HINT = 86400.0
"""A body's ``availability.retry_after`` is clamped to this many seconds (a day)."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date.

    Fractional seconds are accepted (some servers send them); a date in the past
    gives 0; anything unparsable gives None.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        wall = time.time() if now is None else now
        return max(0.0, when.timestamp() - wall)
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative, inf
        return None
    return seconds


def status_error(status: int, headers: dict[str, str], body: bytes) -> APIStatusError:
    """The typed error for an HTTP error answer, from OpenRouter's error JSON when present.

    Handles ``{"error": {"code", "message", "metadata"}}``, the availability shape
    (``error_type``, ``http_status``, ``availability`` and no ``code``), extra
    top-level fields such as ``user_id``, and bodies that are not JSON at all.
    """
    text = body[:MAX_BODY_CHARS].decode("utf-8", "replace")
    message = ""
    code: int | str | None = None
    metadata: dict[str, Any] | None = None
    retry_after: float | None = parse_retry_after(headers.get("retry-after"))
    try:
        parsed = loads_bounded(body)
    except ValueError:  # not JSON, or nested too deep to be an error object
        parsed = None
    err = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(err, dict):
        raw_message = err.get("message")
        message = mend_surrogates(raw_message)[0] if isinstance(raw_message, str) else ""
        raw_code = err.get("code")
        if isinstance(raw_code, (int, str)) and not isinstance(raw_code, bool):
            code = raw_code
        elif isinstance(err.get("error_type"), str):
            code = err["error_type"]
        raw_meta = err.get("metadata")
        metadata = dict(raw_meta) if isinstance(raw_meta, dict) else None
        extra = {k: err[k] for k in ("error_type", "availability") if k in err}
        if extra:
            metadata = {**extra, **(metadata or {})}
        availability = err.get("availability")
        if retry_after is None and isinstance(availability, dict):
            hint = bounded_number(
                availability.get("retry_after"), low=-1.0, high=MAX_RETRY_AFTER_HINT
            )
            if hint is not None and hint >= 0:
                retry_after = hint
    elif isinstance(err, str):
        message = mend_surrogates(err)[0]
    if not message:
        message = text.strip()[:200] or f"HTTP {status}"
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "metadata": metadata,
        "body": text,
        "headers": dict(headers),
    }
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, **kwargs)
    error = cls(message, **kwargs)
    return error
