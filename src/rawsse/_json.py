"""JSON from untrusted sources, parsed with bounds: ``loads_bounded`` and ``bounded_number``.

``json.loads`` alone lets three things through that break code further on: a
value nested thousands deep (``RecursionError`` in the parser, or later in
``json.dumps``, ``repr`` or ``==``), the non-JSON literals ``NaN`` and
``Infinity``, and numbers no float can hold (``1e400`` reads as ``inf``,
``10**400`` stays an int that ``float()`` refuses).  ``loads_bounded`` raises
only ``ValueError`` (so ``except ValueError`` is enough), refuses nesting
deeper than ``max_depth`` and the non-JSON literals; ``bounded_number`` turns a
parsed value into a finite float in a range, or None.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "JSONLimitError",
    "bounded_number",
    "loads_bounded",
    "nested_deeper_than",
]

DEFAULT_MAX_DEPTH = 64
"""Arrays and objects nested deeper than this are refused (real payloads nest < 10)."""

# A string (skipped whole, escapes included; an unterminated one runs to the end,
# so no position is scanned twice) or one bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


class JSONLimitError(ValueError):
    """JSON that is valid but beyond a bound (too deep), or not JSON (``NaN``, ``Infinity``)."""


def _refuse_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not JSON")


# Built once: json.loads with any keyword builds a new decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_decode = _DECODER.decode
# The scanner alone parses the same grammar without decode()'s two regex matches;
# whatever it does not settle goes through decode(), for json's own messages.
_scan: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _depth_exceeds(text: str, max_depth: int) -> bool:
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match[0]
        if token == "[" or token == "{":
            depth += 1
            if depth > max_depth:
                return True
        elif token == "]" or token == "}":
            depth -= 1
    return False


def loads_bounded(data: str | bytes | bytearray, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """``json.loads`` that raises only ``ValueError`` and refuses what breaks later code.

    Nesting deeper than ``max_depth`` and the literals ``NaN``, ``Infinity`` and
    ``-Infinity`` raise ``JSONLimitError`` (a ``ValueError``); so do bytes that
    do not decode (``UnicodeDecodeError`` is a ``ValueError`` too).  The depth is
    checked before parsing, in one linear scan, only when the text holds more
    brackets than ``max_depth``: a small payload costs two counts.
    """
    if isinstance(data, str):
        text = data
    else:
        text = bytes(data).decode(json.detect_encoding(data), "surrogatepass")
    if text.count("[") + text.count("{") > max_depth and _depth_exceeds(text, max_depth):
        raise JSONLimitError(f"JSON nested deeper than {max_depth} levels")
    try:
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            end = -1
        if end == len(text):
            return value
        return _decode(text)
    except RecursionError:
        # Only reachable when the caller's own stack is nearly full.
        raise JSONLimitError("JSON nested too deep for the interpreter's stack") from None


def bounded_number(value: object, *, low: float, high: float) -> float | None:
    """``value`` as a float clamped to ``[low, high]``; None when it is not a real number.

    Booleans, NaN and non-numbers give None; ints too large for a float and
    infinities clamp to the nearer bound.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        if value >= high:
            return float(high)
        if value <= low:
            return float(low)
        return float(value)
    if math.isnan(value):
        return None
    return float(min(max(value, low), high))


def nested_deeper_than(value: object, max_depth: int = DEFAULT_MAX_DEPTH) -> bool:
    """Whether a parsed value nests lists and dicts deeper than ``max_depth`` (no recursion)."""
    level: list[object] = [value]
    for _ in range(max_depth + 1):
        level = [
            item
            for container in level
            if isinstance(container, (list, dict))
            for item in (container.values() if isinstance(container, dict) else container)
        ]
        if not level:
            return False
    return any(isinstance(item, (list, dict)) for item in level)
