"""Text every output path can write: ``mend_surrogates``.

JSON's ``\\uXXXX`` escapes can produce UTF-16 surrogates that a Python ``str``
holds but no UTF-8 encoder accepts.  Adjacent halves of a pair are one
character; a lone half is replaced by U+FFFD.
"""

from __future__ import annotations

import re

__all__ = ["has_surrogates", "mend_surrogates"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds any UTF-16 surrogate code point."""
    return _SURROGATE.search(text) is not None


def mend_surrogates(text: str) -> tuple[str, int]:
    """``text`` with surrogate pairs joined and lone surrogates as U+FFFD; and how many were lone.

    Returns ``text`` itself (and 0) when it holds no surrogate: one regex scan.
    """
    if _SURROGATE.search(text) is None:
        return text, 0
    mended = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return mended, mended.count("\ufffd") - text.count("\ufffd")
