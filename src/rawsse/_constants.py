"""Names and limits shared by every room: one place for each.

The default endpoint and its key variable, the test for OpenRouter's host (the
only host the environment's OpenRouter key is ever sent to), the ``[DONE]``
marker, how a recorded body ended, the statuses a stream can have, and the
decoders' size limits.
"""

from __future__ import annotations

from enum import Enum
from urllib.parse import urlsplit

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "DONE_DATA",
    "END_CLOSED",
    "END_EOF",
    "END_ERROR",
    "END_MISSING",
    "OTHER_KEY_ENV",
    "ChatStatus",
    "is_openrouter",
]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
"""Where the clients and the CLI go unless told otherwise."""
API_KEY_ENV = "OPENROUTER_API_KEY"
"""The environment variable holding the OpenRouter key (sent to OpenRouter only)."""
OTHER_KEY_ENV = "RAWSSE_API_KEY"
"""The CLI's key variable for any other ``--base-url``."""
BASE_URL_ENV = "RAWSSE_BASE_URL"
"""The CLI's default ``--base-url``."""

DONE_DATA = "[DONE]"
"""The data of the event that ends an OpenAI-style stream."""

END_EOF = "eof"
"""The body ended normally."""
END_ERROR = "error"
"""Reading the body failed (a cut connection); ``error`` says how."""
END_CLOSED = "closed"
"""The consumer closed the response before the body ended; the rest was never read."""
END_MISSING = "missing"
"""The file has no end line (the recorder died): read as cut."""

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest SSE line the decoders accept."""
DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024
"""The most data one SSE event may carry."""


def is_openrouter(base_url: str) -> bool:
    """Whether ``base_url``'s host is OpenRouter's (``openrouter.ai`` or a subdomain)."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


class ChatStatus(str, Enum):
    """How a stream ended; members compare equal to their string values."""

    COMPLETE = "complete"
    """``[DONE]`` arrived, or the bytes ended after every choice finished and usage arrived."""
    TRUNCATED = "truncated"
    """The bytes ended (or have not ended yet) without the stream being complete."""
    ERROR = "error"
    """The server sent an in-band error (or ``finish_reason: "error"``)."""
    CANCELLED = "cancelled"
    """The caller stopped reading (set by the clients)."""
    TIMED_OUT = "timed_out"
    """A timeout fired (set by the clients)."""

    def __str__(self) -> str:
        return self.value
