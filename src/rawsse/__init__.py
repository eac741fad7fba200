"""rawsse: stream chat completions from OpenRouter and any OpenAI-compatible endpoint.

Layers, one job each: ``_sse`` (bytes -> SSE events), ``_chat`` (SSE events ->
typed chat events), ``_accumulate`` (chat events -> the final message), and the
I/O shells that alone touch httpx and anyio.
"""

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
from ._sse import Comment as Comment
from ._sse import ServerSentEvent as ServerSentEvent
from ._sse import SSEDecoder as SSEDecoder
from ._sse import encode_comment as encode_comment
from ._sse import encode_event as encode_event

# --- chat layer (issue: typed chat events) ---
# --- end chat layer ---

# --- clients (issue: streaming clients) ---
# --- end clients ---

__version__ = "0.1.0"
