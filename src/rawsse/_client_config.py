"""``BaseClient``: the settings, public methods and request building of ``Client``
and ``AsyncClient``.

Apart from ``_base_client`` (the sans-I/O ``StreamCore`` of one stream) because it
changes for other reasons: the key, the headers and the body of a request, and
which policies a new ``StreamCore`` gets.  The shells add their clock, pool,
stream class and ``_complete``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar
from urllib.parse import urlsplit

import httpx

from ._base_client import InBandErrorMode, StreamCore
from ._body import BodyLimits
from ._constants import API_KEY_ENV, DEFAULT_BASE_URL, is_openrouter
from ._errors import ConfigurationError
from ._httpx_adapter import DEFAULT_LIMITS, httpx_timeout, plain_timeout, translate_error
from ._metrics import StreamMetrics
from ._observe import RequestInfo, StreamObserver
from ._resume import Resume, ResumeCore
from ._timeouts import Timeouts
from ._version import __version__

__all__ = ["BaseClient", "Call", "ResumeArg", "clean_key", "resume_policy"]

ResumeArg: TypeAlias = "Resume | bool | None"
"""A ``Resume`` policy, ``True`` for ``Resume()``, ``False``/``None`` for none."""


def _version() -> str:
    return __version__


def clean_key(key: str | None) -> str | None:
    """``key`` without surrounding whitespace (a file's or a CRLF ``.env``'s line end).

    A key that still holds a control character or a non-ASCII character cannot go
    into a header: ``ConfigurationError``, whose message never shows the key.
    """
    if key is None:
        return None
    key = key.strip()
    bad = next((c for c in key if not " " <= c <= "~"), None)
    if bad is not None:
        kind = "a control character" if bad < " " or bad == "\x7f" else "a non-ASCII character"
        raise ConfigurationError(
            f"the API key contains {kind} (U+{ord(bad):04X}); it cannot be sent in a header"
        )
    return key


def _base_headers(
    app_url: str | None,
    app_title: str | None,
    headers: Mapping[str, str] | None,
    api_key: str | None,
) -> dict[str, str]:
    """The headers of every request (the key last: ``headers`` cannot replace it)."""
    base_headers = {
        "Content-Type": "application/json",
        "User-Agent": f"rawsse/{_version()}",
        # What ``ContentDecoder`` decodes, in bounded steps (httpx would also offer
        # br and zstd when installed, and inflate each read whole).
        "Accept-Encoding": "gzip, deflate",
    }
    if app_url is not None:
        base_headers["HTTP-Referer"] = app_url
    if app_title is not None:
        base_headers["X-OpenRouter-Title"] = app_title
        base_headers["X-Title"] = app_title  # the older name, still read by OpenRouter
    if headers:
        base_headers.update(headers)
    if api_key:  # an empty key sends no Authorization header
        base_headers["Authorization"] = f"Bearer {api_key}"
    return base_headers


@dataclass(frozen=True, slots=True)
class Call:
    """The arguments of one ``stream()`` or ``complete()`` call."""

    model: str
    messages: Any
    timeout: Timeouts | None
    in_band_error: InBandErrorMode | None
    retries: int | None
    extra_headers: Mapping[str, str] | None
    resume: ResumeArg
    params: dict[str, Any]


HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)
StreamT = TypeVar("StreamT")
ResultT = TypeVar("ResultT")


class BaseClient(Generic[HttpT, StreamT, ResultT]):
    """Everything of ``Client`` and ``AsyncClient`` that is not I/O: the settings, the
    requests, the ``StreamCore`` of each.  The shells give the clock (``_now``), their
    pool (``_new_http``), their stream class (``_stream_type``) and ``_complete``;
    ``ResultT`` is ``complete``'s return type (a coroutine for ``AsyncClient``)."""

    _idle_read = True
    """httpx's read timeout is the idle limit (False: the shell's deadline covers it)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        app_url: str | None = None,
        app_title: str | None = None,
        timeout: Timeouts | None = None,
        retries: int = 2,
        http_client: HttpT | None = None,
        headers: Mapping[str, str] | None = None,
        in_band_error: InBandErrorMode = "raise",
        on_metrics: Callable[[StreamMetrics], object] | None = None,
        retry_delay: float = 0.5,
        max_retry_delay: float = 8.0,
        record_to: str | Path | None = None,
        resume: ResumeArg = None,
        body_limits: BodyLimits | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        openrouter = is_openrouter(self.base_url)
        if api_key is None and openrouter:
            # The environment's OpenRouter key goes to OpenRouter only, never to another host.
            api_key = os.environ.get(API_KEY_ENV) or None
        api_key = clean_key(api_key)
        if api_key is None and openrouter:
            raise ConfigurationError(
                f"no API key: pass api_key=... or set the {API_KEY_ENV} environment variable "
                f"(required by {self.base_url})"
            )
        if retries < 0:
            raise ValueError(f"retries must be >= 0: {retries!r}")
        if in_band_error not in ("raise", "yield"):
            raise ValueError(f"in_band_error must be 'raise' or 'yield': {in_band_error!r}")
        if http_client is not None and record_to is not None:
            raise ValueError("record_to cannot wrap a caller's http_client; record with yours")
        if http_client is not None and limits is not None:
            raise ValueError("limits apply to the client's own pool; set them on your http_client")
        self._api_key = api_key
        self.timeout = timeout if timeout is not None else Timeouts()
        self.body_limits = body_limits if body_limits is not None else BodyLimits()
        self.retries = retries
        self.in_band_error: InBandErrorMode = in_band_error
        self.on_metrics = on_metrics
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.resume: Resume | None = resume_policy(resume, None)
        """The resume policy of every stream, unless a call gives its own."""
        self._url = self.base_url + "/chat/completions"
        self.observers: tuple[StreamObserver, ...] = ()
        """What watches every stream (``add_observer``); empty costs nothing."""
        self._headers = _base_headers(app_url, app_title, headers, api_key)
        self._owns_http = http_client is None
        self._http: HttpT = (
            http_client
            if http_client is not None
            else self._new_http(record_to, limits if limits is not None else DEFAULT_LIMITS)
        )

    # -- the shell's part ---------------------------------------------------------------

    _now: Callable[[], float]
    """The shell's clock."""
    _new_http: Callable[[str | Path | None, httpx.Limits], HttpT]
    """The shell's own pool (recording to ``record_to``), within ``limits``."""
    _stream_type: Callable[[HttpT, httpx.Request, StreamCore], StreamT]

    def _complete(self, call: Call, stream: bool) -> ResultT:
        """``complete``: read the whole stream, or (``stream=False``) send one plain request."""
        raise NotImplementedError

    # -- public -------------------------------------------------------------------------

    def stream(
        self,
        *,
        model: str,
        messages: Any,
        timeout: Timeouts | None = None,
        in_band_error: InBandErrorMode | None = None,
        retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        resume: ResumeArg = None,
        **params: Any,
    ) -> StreamT:
        """A stream of typed chat events; use it as a context manager (``async with``
        for ``AsyncClient``).

        ``params`` go into the request body (tools, reasoning, provider, models,
        max_tokens, ...); ``stream_options.include_usage`` is on unless set.
        ``resume`` overrides the client's policy for this stream (False: none).
        """
        call = Call(model, messages, timeout, in_band_error, retries, extra_headers, resume, params)
        core, request = self._prepare(call)
        return self._stream_type(self._http, request, core)

    def complete(
        self,
        *,
        model: str,
        messages: Any,
        stream: bool = True,
        timeout: Timeouts | None = None,
        in_band_error: InBandErrorMode | None = None,
        retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        resume: ResumeArg = None,
        **params: Any,
    ) -> ResultT:
        """The whole answer as a ``ChatResult`` (awaited, for ``AsyncClient``).

        Streams under the hood (with every stream protection) unless
        ``stream=False``, which sends one plain request (for batch work).
        """
        call = Call(model, messages, timeout, in_band_error, retries, extra_headers, resume, params)
        return self._complete(call, stream)

    def _prepare(self, call: Call, stream: bool = True) -> tuple[StreamCore, httpx.Request]:
        """The core and the request of ``call`` (a stream, or with ``stream=False`` a
        plain answer)."""
        core = self._core(
            self._now(),
            call.timeout,
            call.in_band_error,
            call.retries,
            resume=call.resume,
            model=call.model,
            messages=call.messages,
            params=call.params,
            stream=stream,
        )
        t = core.timeouts
        request = self._http.build_request(
            "POST",
            self._url,
            content=self._body(call.model, call.messages, call.params, stream=stream),
            headers=self._request_headers(call.extra_headers, stream=stream),
            timeout=httpx_timeout(t, read=self._idle_read) if stream else plain_timeout(t),
        )
        return core, request

    def __repr__(self) -> str:
        # Never the key: only where requests go and how long they may take.
        return f"{type(self).__name__}(base_url={self.base_url!r}, timeout={self.timeout!r})"

    def _body(self, model: str, messages: Any, params: dict[str, Any], *, stream: bool) -> bytes:
        body: dict[str, Any] = {"model": model, "messages": messages, **params}
        body["stream"] = stream
        if stream:
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, Mapping) else {}
            options.setdefault("include_usage", True)
            body["stream_options"] = options
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _request_headers(self, extra: Mapping[str, str] | None, *, stream: bool) -> dict[str, str]:
        headers = dict(self._headers)
        headers["Accept"] = "text/event-stream" if stream else "application/json"
        if extra:
            headers.update(extra)
        return headers

    def add_observer(self, observer: StreamObserver) -> None:
        """Let ``observer`` watch every stream this client opens from now on
        (``rawsse.otel.instrument`` adds one)."""
        self.observers = (*self.observers, observer)

    def remove_observer(self, observer: StreamObserver) -> None:
        """Stop ``observer`` watching new streams (no-op when it is not watching)."""
        self.observers = tuple(o for o in self.observers if o is not observer)

    def _request_info(
        self, model: str, messages: Any, params: Mapping[str, Any], stream: bool
    ) -> RequestInfo:
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return RequestInfo(
            model=model,
            server_address=parts.hostname or "",
            server_port=port,
            stream=stream,
            params=params,
            messages=messages,
        )

    def _core(
        self,
        now: float,
        timeout: Timeouts | None,
        in_band_error: InBandErrorMode | None,
        retries: int | None,
        *,
        resume: ResumeArg = None,
        model: str | None = None,
        messages: Any = None,
        params: Mapping[str, Any] | None = None,
        stream: bool = True,
    ) -> StreamCore:
        """The core of one request; with ``model``, one that observers watch and,
        for a stream, one that a resume policy continues."""
        observers = self.observers if model is not None else ()
        core = StreamCore(
            timeouts=timeout if timeout is not None else self.timeout,
            now=now,
            retries=self.retries if retries is None else retries,
            in_band_error=in_band_error if in_band_error is not None else self.in_band_error,
            on_metrics=self.on_metrics,
            retry_delay=self.retry_delay,
            max_retry_delay=self.max_retry_delay,
            translate=translate_error,
            request_model=model,
            observers=observers,
            request=self._request_info(model, messages, params or {}, stream)
            if observers and model is not None
            else None,
            body_limits=self.body_limits,
            secret=self._api_key,
        )
        policy = resume_policy(resume, self.resume) if stream else None
        if policy is not None and model is not None:
            name = model

            def body(messages: list[Any], params: dict[str, Any]) -> bytes:
                return self._body(name, messages, params, stream=True)

            core.resume_with(ResumeCore(policy, messages=messages, params=dict(params or {})), body)
        return core


def resume_policy(resume: ResumeArg, default: Resume | None) -> Resume | None:
    """The policy ``resume`` asks for: None means ``default``, True ``Resume()``."""
    if resume is None:
        return default
    if resume is True:
        return Resume()
    if resume is False:
        return None
    if not isinstance(resume, Resume):
        raise TypeError(f"resume must be a Resume, True, False or None: {resume!r}")
    return resume
