"""Which web pages may read the fixture server's answers: ``CorsPolicy``.

A browser sends any page's requests to a server on loopback; CORS decides
whether the page may read the answer.  By default only pages served from
loopback (``http://localhost:*``, ``http://127.0.0.1:*``, ``http://[::1]:*``, any
port) may, so a website a developer happens to visit cannot read local
recordings.  More origins are added by name (``http://host:port``, or
``http://host:*`` for any port; ``null`` for ``file://`` pages), or every
origin with ``any_origin``.  The allowed request headers are a fixed list,
never the ones a preflight asks for, and ``Access-Control-Allow-Private-Network``
is sent only to an origin added by name or with ``any_origin``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ALLOWED_HEADERS", "LOOPBACK_ORIGINS", "CorsPolicy"]

LOOPBACK_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")
"""The origins allowed by default: pages served from this machine, on any port."""

ALLOWED_HEADERS = (
    "authorization, content-type, accept, http-referer, x-title, "
    "x-rawsse-cassette, x-rawsse-cut-after, x-rawsse-stall, x-rawsse-speed, "
    "x-rawsse-keepalive, x-rawsse-seam, x-rawsse-length-after, x-rawsse-error-at, x-rawsse-once, "
    # What the openai JavaScript SDK sends from a browser.
    "x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
    "x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, "
    "x-stainless-timeout"
)
"""The request headers a preflight allows (a fixed list: requested names are not echoed)."""

_ORIGIN = re.compile(r"(?:null|[a-z][a-z0-9+.-]*://(?:\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::[0-9]+)?)")
_WILDCARD_PORT = ":*"
_PORT = re.compile(r"[0-9]{1,5}")


def _normal(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


@dataclass(frozen=True)
class CorsPolicy:
    """The origins allowed to read answers; see the module docstring."""

    origins: tuple[str, ...] = ()
    """Origins added to the loopback ones (``http://host:port``, ``http://host:*``, ``null``)."""
    any_origin: bool = False
    """Every origin may read answers (``Access-Control-Allow-Origin: *``)."""

    @classmethod
    def build(cls, origins: Iterable[str] = (), *, any_origin: bool = False) -> CorsPolicy:
        """A policy; ``ValueError`` for an origin that is not ``scheme://host[:port|:*]``."""
        checked = []
        for origin in origins:
            text = _normal(origin)
            bare = text.removesuffix(_WILDCARD_PORT)
            if not _ORIGIN.fullmatch(bare) or (bare == "null" and text != bare):
                raise ValueError(
                    f"not an origin: {origin!r} (scheme://host, scheme://host:port, "
                    "scheme://host:* or null)"
                )
            checked.append(text)
        return cls(tuple(checked), any_origin)

    def allows(self, origin: str) -> bool:
        """Whether a page from ``origin`` may read the answers."""
        return self.any_origin or self._loopback(origin) or self._added(origin)

    def _loopback(self, origin: str) -> bool:
        return _matches(_normal(origin), LOOPBACK_ORIGINS)

    def _added(self, origin: str) -> bool:
        return _matches(_normal(origin), self.origins)

    def response_headers(self, request: dict[str, str]) -> list[tuple[str, str]]:
        """The CORS headers of an answer to ``request`` (none for a disallowed origin)."""
        origin = request.get("origin")
        if self.any_origin:
            return [("access-control-allow-origin", "*"), ("access-control-expose-headers", "*")]
        if origin is None or not self.allows(origin):
            return [("vary", "origin")]
        return [
            ("access-control-allow-origin", origin),
            ("access-control-expose-headers", "*"),
            ("vary", "origin"),
        ]

    def preflight_headers(self, request: dict[str, str]) -> list[tuple[str, str]]:
        """The headers of the answer to an ``OPTIONS`` preflight."""
        headers = self.response_headers(request)
        origin = request.get("origin")
        if origin is None or not self.allows(origin):
            return headers
        headers += [
            ("access-control-allow-methods", "GET, POST, OPTIONS"),
            ("access-control-allow-headers", ALLOWED_HEADERS),
            ("access-control-max-age", "600"),
        ]
        opened = self.any_origin or self._added(origin)
        if opened and request.get("access-control-request-private-network") == "true":
            headers.append(("access-control-allow-private-network", "true"))
        return headers


def _matches(origin: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith(_WILDCARD_PORT):
            base = pattern[: -len(_WILDCARD_PORT)]
            if origin == base or (
                origin.startswith(base + ":") and _PORT.fullmatch(origin[len(base) + 1 :])
            ):
                return True
        elif origin == pattern:
            return True
    return False
