"""Where ``chat`` and ``bench`` send their requests, and with which key.

``--base-url`` (else ``$RAWSSE_BASE_URL``, else OpenRouter); OpenRouter's key
(``$OPENROUTER_API_KEY``) goes to OpenRouter only, any other server gets
``$RAWSSE_API_KEY``.  This module imports only the library and ``_output``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, TypeVar

from .._client_config import BaseClient
from .._constants import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, OTHER_KEY_ENV, is_openrouter
from .._errors import ConfigurationError
from ._output import UsageError

__all__ = ["Endpoint", "add_base_url_argument"]

_C = TypeVar("_C", bound=BaseClient[Any, Any, Any])


def add_base_url_argument(parser: argparse.ArgumentParser) -> None:
    """``--base-url URL``."""
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=f"any OpenAI-compatible API (default {DEFAULT_BASE_URL}, or ${BASE_URL_ENV})",
    )


@dataclass(frozen=True)
class Endpoint:
    """A command's server and the key it sends there."""

    base_url: str
    api_key: str | None
    """OpenRouter's key for OpenRouter, ``$RAWSSE_API_KEY`` for any other server."""
    secret: str | None
    """The key kept out of what is shown: the one sent, else OpenRouter's."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Endpoint:
        """The endpoint ``args.base_url`` and the environment name; a ``UsageError``
        when OpenRouter's key is missing (blank counts as missing: the client strips it)."""
        base_url: str = args.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        openrouter_key = os.environ.get(API_KEY_ENV, "").strip() or None
        if is_openrouter(base_url):
            if openrouter_key is None:
                raise UsageError(
                    f"no API key: set the {API_KEY_ENV} environment variable "
                    "(or point --base-url at another server, e.g. one started by `rawsse serve`)"
                )
            return cls(base_url, openrouter_key, openrouter_key)
        api_key = os.environ.get(OTHER_KEY_ENV, "").strip() or None
        return cls(base_url, api_key, api_key or openrouter_key)

    def client(self, client_type: type[_C], **options: Any) -> _C:
        """A ``client_type`` for this endpoint; a key it refuses is a ``UsageError``."""
        try:
            return client_type(api_key=self.api_key or "", base_url=self.base_url, **options)
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
