"""rawsse: stream chat completions from OpenRouter and any OpenAI-compatible endpoint.

Layers, one job each: ``_sse`` (bytes -> SSE events), ``_chat`` (SSE events ->
typed chat events), ``_accumulate`` (chat events -> the final message), and the
I/O shells that alone touch httpx and anyio.
"""

from ._accumulate import ChatAccumulator as ChatAccumulator
from ._accumulate import ChatResult as ChatResult
from ._accumulate import ChatStatus as ChatStatus
from ._accumulate import ChoiceResult as ChoiceResult
from ._accumulate import ToolCall as ToolCall
from ._accumulate import accumulate as accumulate
from ._chat import ChatDecoder as ChatDecoder
from ._chat import parse_chat_stream as parse_chat_stream
from ._chat_events import CONTENT_EVENTS as CONTENT_EVENTS
from ._chat_events import ChatEvent as ChatEvent
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
from ._client import AsyncClient as AsyncClient
from ._client import AsyncStream as AsyncStream
from ._client import Client as Client
from ._client import Stream as Stream
from ._errors import APIConnectionError as APIConnectionError
from ._errors import APIError as APIError
from ._errors import APIStatusError as APIStatusError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import BadGatewayError as BadGatewayError
from ._errors import BadRequestError as BadRequestError
from ._errors import CassetteError as CassetteError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ConnectTimeout as ConnectTimeout
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
from ._inspect import Anomaly as Anomaly
from ._inspect import ChunkRow as ChunkRow
from ._inspect import EventRow as EventRow
from ._inspect import StreamInspector as StreamInspector
from ._inspect import StreamReport as StreamReport
from ._inspect import inspect_cassette as inspect_cassette
from ._inspect import inspect_stream as inspect_stream
from ._metrics import StreamMetrics as StreamMetrics
from ._report_html import render_html_report as render_html_report
from ._server import FixtureServer as FixtureServer
from ._sse import Comment as Comment
from ._sse import ServerSentEvent as ServerSentEvent
from ._sse import SSEDecoder as SSEDecoder
from ._sse import encode_comment as encode_comment
from ._sse import encode_event as encode_event
from ._timeouts import Timeouts as Timeouts
from ._version import __version__ as __version__
