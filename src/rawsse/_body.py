"""Response bodies under bounds: ``BodyLimits`` and a step-wise ``ContentDecoder``.

httpx inflates a whole network read at once (a 64 KiB read of a gzip bomb is
64 MiB) and only after reading a whole body does anything look at its size.
The clients therefore read raw bytes and decode ``Content-Encoding`` here, at
most ``STEP`` decoded bytes at a time, so memory stays bounded, the clocks are
checked between steps, and a body that inflates past ``BodyLimits.inflation``
is refused.  Pure: no I/O.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ._errors import BodyError

__all__ = ["STEP", "BodyLimits", "ContentDecoder"]

STEP = 64 * 1024
"""The most decoded bytes ``ContentDecoder.read`` returns at once."""
INFLATION_SLACK = 1024 * 1024
"""Decoded bytes allowed on top of ``inflation`` times the compressed size."""


@dataclass(frozen=True)
class BodyLimits:
    """How much of a response body the clients read; ``None`` disables a bound.

    Every count is of decoded bytes (after ``Content-Encoding``), so a small
    compressed body cannot grow past it.
    """

    error_body: int = 64 * 1024
    """An HTTP error answer, or a 2xx answer that is not an event stream: this much is
    read for the error's message and ``body``, then the connection is closed."""
    completion_body: int = 64 * 1024 * 1024
    """A ``stream=False`` answer larger than this is a ``BodyError`` (the same bound as
    the data of one SSE event)."""
    inflation: float | None = 100.0
    """A compressed body may inflate to ``inflation`` times its compressed size plus
    1 MiB; beyond that it is a ``BodyError``.  Real streams compress about 5 to 20 times
    (one flush per chunk); a body of repeated blank lines, 1,000 times."""

    def __post_init__(self) -> None:
        for name in ("error_body", "completion_body"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BodyLimits.{name} must be a positive int: {value!r}")
        value = self.inflation
        if value is not None and (isinstance(value, bool) or not value >= 1):
            raise ValueError(f"BodyLimits.inflation must be a number >= 1 or None: {value!r}")


class ContentDecoder:
    """Decodes one body's ``Content-Encoding`` (identity, gzip, deflate) step by step.

    ``feed(data)`` stores compressed bytes; ``read()`` returns up to ``STEP``
    decoded bytes, ``b""`` once everything fed is decoded (``backlog`` says whether
    more is waiting).  Damaged data, an encoding it does not know and inflation past
    the bound raise ``BodyError``.
    """

    __slots__ = (
        "_first",
        "_full",
        "_inflater",
        "_inflation",
        "_input",
        "_name",
        "consumed",
        "produced",
    )

    def __init__(self, content_encoding: str, *, inflation: float | None) -> None:
        name = content_encoding.strip().lower()
        self._name = name
        self._inflation = inflation
        self._first = True
        self._full = False  # the last read filled its limit: the inflater may hold more
        self._input = b""
        self.consumed = 0
        """Compressed bytes fed."""
        self.produced = 0
        """Decoded bytes returned."""
        if name in ("", "identity"):
            self._inflater = None
        elif name in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif name == "deflate":
            self._inflater = zlib.decompressobj()
        else:
            raise BodyError(
                f"the body's Content-Encoding {name[:40]!r} is not one rawsse decodes "
                "(it asks for gzip or deflate)"
            )

    @property
    def identity(self) -> bool:
        return self._inflater is None

    @property
    def backlog(self) -> bool:
        """Whether fed bytes are still waiting to be decoded."""
        return bool(self._input) or self._full

    def feed(self, data: bytes) -> None:
        self.consumed += len(data)
        self._input = self._input + data if self._input else data

    def read(self, max_bytes: int = STEP) -> bytes:
        """Up to ``max_bytes`` decoded bytes of what was fed (``b""``: nothing waiting)."""
        data = self._input
        if not data and not self._full:
            return b""
        inflater = self._inflater
        if inflater is None:
            out, self._input = data[:max_bytes], data[max_bytes:]
            self.produced += len(out)
            return out
        try:
            out = inflater.decompress(data, max_bytes)
        except zlib.error as exc:
            if not (self._first and self._name == "deflate"):
                self._input = b""
                raise BodyError(f"the body's {self._name} data is damaged ({exc})") from None
            # Some servers send raw deflate without the zlib header, as browsers accept.
            self._first = False
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.read(max_bytes)
        self._first = False
        self._input = b"" if inflater.eof else inflater.unconsumed_tail
        # A long match can leave output in the inflater with all input consumed.
        self._full = len(out) == max_bytes and not inflater.eof
        self.produced += len(out)
        inflation = self._inflation
        if inflation is not None and self.produced > inflation * self.consumed + INFLATION_SLACK:
            self._input = b""
            raise BodyError(
                f"the {self._name} body inflated past {inflation:g} times its size "
                f"({self.consumed} bytes became more than {self.produced}); "
                "see BodyLimits.inflation"
            )
        return out

    def flush(self) -> bytes:
        """At the end of the body: what the inflater still holds (at most its window)."""
        if self._inflater is None:
            return b""
        try:
            out = self._inflater.flush()
        except zlib.error as exc:  # pragma: no cover - flush reports damage as decompress does
            raise BodyError(f"the body's {self._name} data is damaged ({exc})") from None
        self.produced += len(out)
        return out
