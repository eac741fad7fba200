"""rawsse: stream chat completions from OpenRouter and any OpenAI-compatible endpoint.

``import rawsse`` gives the streaming API: clients, events, results, errors, the
SSE decoder and encoder, timeouts and metrics.  Tools live in their own public
modules: ``rawsse.inspect`` (what a stream did, and its HTML report),
``rawsse.testing`` (cassettes, record/replay transports, ``FixtureServer``) and
``rawsse.pytest_plugin``.

Layers, one job each: ``_sse`` (bytes -> SSE events), ``_chat`` (SSE events ->
typed chat events), ``_accumulate`` (chat events -> the final message), and the
I/O shells that alone touch httpx and anyio.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from ._accumulate import ChatAccumulator as ChatAccumulator
from ._accumulate import ChatResult as ChatResult
from ._accumulate import ChoiceResult as ChoiceResult
from ._accumulate import ToolCall as ToolCall
from ._accumulate import accumulate as accumulate
from ._accumulate import stream_status as stream_status
from ._async_client import AsyncClient as AsyncClient
from ._async_client import AsyncStream as AsyncStream
from ._body import BodyLimits as BodyLimits
from ._chat import ChatDecoder as ChatDecoder
from ._chat import parse_chat_stream as parse_chat_stream
from ._chat_events import CONTENT_EVENTS as CONTENT_EVENTS
from ._chat_events import ChatEvent as ChatEvent
from ._chat_events import Continued as Continued
from ._chat_events import Done as Done
from ._chat_events import Extra as Extra
from ._chat_events import Finish as Finish
from ._chat_events import InBandError as InBandError
from ._chat_events import KeepAlive as KeepAlive
from ._chat_events import ReasoningDelta as ReasoningDelta
from ._chat_events import RefusalDelta as RefusalDelta
from ._chat_events import RoleDelta as RoleDelta
from ._chat_events import StreamStart as StreamStart
from ._chat_events import TextDelta as TextDelta
from ._chat_events import ToolCallDelta as ToolCallDelta
from ._chat_events import Usage as Usage
from ._client import Client as Client
from ._client import Stream as Stream
from ._constants import ChatStatus as ChatStatus
from ._errors import APIConnectionError as APIConnectionError
from ._errors import APIError as APIError
from ._errors import APIStatusError as APIStatusError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import BadGatewayError as BadGatewayError
from ._errors import BadRequestError as BadRequestError
from ._errors import BodyError as BodyError
from ._errors import CassetteError as CassetteError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ConnectTimeout as ConnectTimeout
from ._errors import ContinuationError as ContinuationError
from ._errors import FirstTokenTimeout as FirstTokenTimeout
from ._errors import IdleTimeout as IdleTimeout
from ._errors import IncompleteStreamError as IncompleteStreamError
from ._errors import InternalServerError as InternalServerError
from ._errors import MalformedChunk as MalformedChunk
from ._errors import NotFoundError as NotFoundError
from ._errors import PaymentRequiredError as PaymentRequiredError
from ._errors import PermissionDeniedError as PermissionDeniedError
from ._errors import RateLimitError as RateLimitError
from ._errors import RawSSEError as RawSSEError
from ._errors import RequestTimeoutError as RequestTimeoutError
from ._errors import ServiceUnavailableError as ServiceUnavailableError
from ._errors import SSEProtocolError as SSEProtocolError
from ._errors import StallTimeout as StallTimeout
from ._errors import StreamError as StreamError
from ._errors import StreamInterrupted as StreamInterrupted
from ._errors import StreamTimeout as StreamTimeout
from ._errors import TotalTimeout as TotalTimeout
from ._errors import UnexpectedContentType as UnexpectedContentType
from ._metrics import StreamMetrics as StreamMetrics
from ._metrics_log import MetricsLog as MetricsLog
from ._resume import Resume as Resume
from ._sse import Comment as Comment
from ._sse import ServerSentEvent as ServerSentEvent
from ._sse import SSEDecoder as SSEDecoder
from ._sse import encode_comment as encode_comment
from ._sse import encode_event as encode_event
from ._timeouts import Timeouts as Timeouts
from ._version import __version__ as __version__

__all__ = [
    "CONTENT_EVENTS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "BodyError",
    "BodyLimits",
    "CassetteError",
    "ChatAccumulator",
    "ChatDecoder",
    "ChatEvent",
    "ChatResult",
    "ChatStatus",
    "ChoiceResult",
    "Client",
    "Comment",
    "ConfigurationError",
    "ConnectTimeout",
    "ContinuationError",
    "Continued",
    "Done",
    "Extra",
    "Finish",
    "FirstTokenTimeout",
    "IdleTimeout",
    "InBandError",
    "IncompleteStreamError",
    "InternalServerError",
    "KeepAlive",
    "MalformedChunk",
    "MetricsLog",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RawSSEError",
    "ReasoningDelta",
    "RefusalDelta",
    "RequestTimeoutError",
    "Resume",
    "RoleDelta",
    "SSEDecoder",
    "SSEProtocolError",
    "ServerSentEvent",
    "ServiceUnavailableError",
    "StallTimeout",
    "Stream",
    "StreamError",
    "StreamInterrupted",
    "StreamMetrics",
    "StreamStart",
    "StreamTimeout",
    "TextDelta",
    "Timeouts",
    "ToolCall",
    "ToolCallDelta",
    "TotalTimeout",
    "UnexpectedContentType",
    "Usage",
    "accumulate",
    "encode_comment",
    "encode_event",
    "parse_chat_stream",
    "stream_status",
]

# Old homes of names that moved out of the root, importable for one more release.
_MOVED = {
    "Anomaly": "rawsse.inspect",
    "ChunkRow": "rawsse.inspect",
    "EventRow": "rawsse.inspect",
    "StreamInspector": "rawsse.inspect",
    "StreamReport": "rawsse.inspect",
    "inspect_cassette": "rawsse.inspect",
    "inspect_stream": "rawsse.inspect",
    "render_html_report": "rawsse.inspect",
    "FixtureServer": "rawsse.testing",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'rawsse' has no attribute {name!r}")
    warnings.warn(
        f"rawsse.{name} moved to {module}.{name}; the old name goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)
