"""Keeping secrets out of everything rawsse writes or shows: cassettes, server logs
and the CLI's header lines.

A value is secret by its name (``authorization``, ``x-api-key``, ``key=`` in a
query, ...) or by its look (``sk-...``, ``Bearer ...``); secrets become ``REDACTED``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "looks_like_secret",
    "redact_headers",
    "redact_request",
    "redact_text",
    "redact_url",
]

REDACTED = "REDACTED"

# Header names whose value is always a secret.
_SECRET_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
# Names that smell of a credential: ``x-goog-api-key``, ``x-auth-token``, ``key=`` in a
# query.  ``x-ratelimit-remaining-tokens`` must not match, hence the anchors.
_SECRET_NAME = re.compile(
    r"(?i)(^key$|api[-_]?key|secret|password|passwd|cookie|credential|(^|[-_])(access[-_]?|auth[-_]?)?token$)"
)
# Values that look like a key whatever their name: OpenAI/OpenRouter/Anthropic style
# ``sk-...`` and the common provider prefixes ...
_KEY = (
    r"\b[sr]k-[A-Za-z0-9_\-]{12,}"
    r"|\bsk_[A-Za-z0-9_]{12,}"
    r"|\bAIza[0-9A-Za-z_\-]{20,}"
    r"|\b(gsk|xai|hf|r8|pplx|nvapi|ghp|gho|github_pat)[-_][A-Za-z0-9_\-]{12,}"
)
_KEY_VALUE = re.compile(_KEY)
# ... and, in headers and queries, HTTP auth schemes too (in a body, "token limit" is prose).
_SECRET_VALUE = re.compile(r"(?i)\b(bearer|basic|token)\s+\S{4,}|" + _KEY)


def looks_like_secret(value: str) -> bool:
    """Whether ``value`` looks like an API key or credential (``sk-...``, ``Bearer ...``)."""
    return _SECRET_VALUE.search(value) is not None


def redact_text(text: str) -> str:
    """``text`` with everything that looks like a key replaced by ``REDACTED``."""
    return _SECRET_VALUE.sub(REDACTED, text)


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_NAMES or _SECRET_NAME.search(lowered) is not None


def redact_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """Lower-cased headers with every secret value replaced by ``"REDACTED"``.

    Repeated headers are joined with ``", "`` (HTTP's rule for combining them).
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if _secret_name(key) or looks_like_secret(value):
            value = REDACTED
        out[key] = value if key not in out else f"{out[key]}, {value}"
    return out


def redact_url(url: str) -> str:
    """``url`` with secret query values (and any user:password) replaced by ``REDACTED``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_name(k) or looks_like_secret(v) for k, v in pairs):
            query = urlencode(
                [(k, REDACTED if _secret_name(k) or looks_like_secret(v) else v) for k, v in pairs]
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets_in(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The secret strings inside secret headers or query values, to scrub elsewhere."""
    found: list[str] = []
    for name, value in headers:
        if _secret_name(name) or looks_like_secret(value):
            token = value.split(None, 1)[-1] if " " in value.strip() else value
            found += [v for v in (value.strip(), token.strip()) if len(v) >= 8]
    return found


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return _KEY_VALUE.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def redact_request(
    method: str, url: str, headers: Iterable[tuple[str, str]], body: Any
) -> dict[str, Any]:
    """The cassette's ``request`` object, redacted.

    Secret headers and query values become ``"REDACTED"``; the secrets found there,
    and anything shaped like a key (``sk-...``), are also scrubbed from every
    string in ``body``.
    """
    pairs = list(headers)
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    secrets = sorted(set(_secrets_in([*pairs, *query])), key=len, reverse=True)
    return {
        "method": method,
        "url": redact_url(url),
        "headers": redact_headers(pairs),
        "body": _scrub(body, secrets),
    }
