"""``rawsse chat MODEL [PROMPT]``: stream one chat completion and show what happened.

``record`` is the same command with ``--output`` required; it registers itself
in ``record.py`` on top of ``add_chat_arguments`` and ``run`` here.  The API key
is never printed: ``--verbose`` shows the headers with it redacted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import httpx

from .._chat_events import Continued
from .._client import Client
from .._constants import (
    API_KEY_ENV,
    OTHER_KEY_ENV,
)
from .._errors import (
    APIError,
    CassetteError,
    RawSSEError,
    StreamInterrupted,
)
from .._metrics_log import MetricsLog
from .._recording import RecordingTransport, TeeStream
from .._resume import Resume
from ._args import Command, count_arg
from ._endpoint import Endpoint, add_base_url_argument
from ._output import (
    ExitCode,
    StreamPrinter,
    Style,
    Summary,
    UsageError,
    broken_pipe,
    error_json,
    header_lines,
    isatty,
    json_line,
    reason,
    redact_url,
    result_json,
    std_streams,
)

if TYPE_CHECKING:
    from .._accumulate import ChatResult
    from .._metrics import StreamMetrics

__all__ = ["COMMAND", "TapTransport", "add_arguments", "add_chat_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``chat``'s arguments."""
    add_chat_arguments(parser)
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="also record the exchange as a cassette: a file (any name; appended to), or a "
        "directory (one file per exchange; a trailing / or no suffix); folders are created",
    )


class TapTransport(httpx.BaseTransport):
    """Shows the request, the response head and every body chunk as it passes."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        on_request: Callable[[httpx.Request], None],
        on_response: Callable[[httpx.Response], None],
        on_chunk: Callable[[bytes], None],
    ) -> None:
        self._inner = inner
        self._on_request = on_request
        self._on_response = on_response
        self._on_chunk = on_chunk

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization", "").strip() == "Bearer":
            # ``api_key=""`` keeps the client from reading $OPENROUTER_API_KEY for a
            # host that is not OpenRouter; the empty credential is not sent either.
            del request.headers["authorization"]
        self._on_request(request)
        response = self._inner.handle_request(request)
        self._on_response(response)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=TeeStream(response.stream, self._on_chunk),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._inner.close()


def _read_prompt(prompt: str | None, stdin: IO[str]) -> str:
    if prompt is None or prompt == "-":
        if prompt is None and isatty(stdin):
            raise UsageError("no prompt: give PROMPT, or pipe it on stdin (PROMPT '-')")
        prompt = stdin.read()
    if not prompt.strip():
        raise UsageError("the prompt is empty")
    return prompt


def _messages(args: argparse.Namespace, prompt: str) -> list[dict[str, str]]:
    messages = []
    if getattr(args, "system", None):
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    return messages


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if getattr(args, "max_tokens", None) is not None:
        params["max_tokens"] = args.max_tokens
    if getattr(args, "reasoning_effort", None):
        params["reasoning"] = {"effort": args.reasoning_effort}
    return params


def run(args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``rawsse chat`` (and ``rawsse record``, which sets ``args.record``)."""
    out, err = std_streams(out, err)
    style = Style.detect(out, err)
    try:
        return _chat(args, out, err, style)
    except UsageError as exc:
        err.write(f"rawsse {args.command}: error: {exc}\n")
        return ExitCode.USAGE
    except BrokenPipeError:
        return broken_pipe()


def _chat(args: argparse.Namespace, out: IO[str], err: IO[str], style: Style) -> int:
    endpoint = Endpoint.from_args(args)
    prompt = _read_prompt(args.prompt, sys.stdin)
    record: str | None = args.record
    metrics_log = _open_metrics_log(getattr(args, "metrics", None))
    raw_out = args.raw
    show_json = args.json
    verbose = args.verbose
    binary = getattr(out, "buffer", None)

    def show_head(mark: str, first: str, headers: httpx.Headers) -> None:
        if verbose:
            err.write(style.dim(f"{mark} {first}") + "\n")
            for line in header_lines(headers.items(), endpoint.secret):
                err.write(style.dim(f"{mark} {line}") + "\n")
            err.flush()

    def on_request(request: httpx.Request) -> None:
        show_head(">", f"{request.method} {redact_url(str(request.url))}", request.headers)

    def on_response(response: httpx.Response) -> None:
        show_head("<", f"HTTP {response.status_code}", response.headers)

    def on_chunk(chunk: bytes) -> None:
        if raw_out:
            if binary is not None:
                out.flush()
                binary.write(chunk)
                binary.flush()
            else:
                out.write(chunk.decode("utf-8", "replace"))
                out.flush()

    inner: httpx.BaseTransport = httpx.HTTPTransport()
    recorder = None
    if record is not None:
        # Any file name (the format is in the content; an existing cassette gets the
        # exchange appended), a directory, or missing folders (created).
        try:
            inner = recorder = RecordingTransport(inner, record)
        except CassetteError as exc:
            raise UsageError(f"cannot record to {record}: {reason(exc)}") from None
    http = httpx.Client(
        transport=TapTransport(inner, on_request, on_response, on_chunk), timeout=None
    )
    try:
        client = endpoint.client(
            Client,
            http_client=http,
            app_title="rawsse CLI",
            retries=args.retries,
            resume=Resume() if getattr(args, "resume", False) else None,
            on_metrics=metrics_log,
        )
    except UsageError:
        http.close()
        if metrics_log is not None:
            metrics_log.close()
        raise
    printer = StreamPrinter(out, style, err)
    live = not raw_out and not show_json
    result: ChatResult | None = None
    metrics: StreamMetrics | None = None
    failure: BaseException | None = None
    interrupted = False
    if live:
        printer.waiting()
    try:
        with client:
            stream = client.stream(
                model=args.model, messages=_messages(args, prompt), **_params(args)
            )
            try:
                with stream:
                    for event in stream:
                        if live:
                            if type(event) is Continued:
                                printer.continued(event)
                            else:
                                printer.event(event)
            finally:
                result = stream.result
                metrics = stream.metrics
    except KeyboardInterrupt:
        interrupted = True
    except (RawSSEError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        failure = exc
        if isinstance(exc, StreamInterrupted) and exc.partial is not None:
            result = exc.partial
    finally:
        http.close()  # ours, not the client's: closes the transports (and the recording)
        if metrics_log is not None:
            metrics_log.close()
    status = "error"
    if interrupted:
        status = "cancelled"
    elif result is not None and failure is None:
        status = str(result.status.value)
    elif result is not None and isinstance(failure, StreamInterrupted):
        status = str(result.status.value)
        if status == "complete":
            status = "error"
    summary = Summary.of_result(result, metrics, status) if result is not None else None
    if live:
        printer.finish()
        if summary is not None and not isinstance(failure, APIError):
            out.write(summary.line(style) + "\n")
    elif show_json:
        doc = result_json(result, summary)
        doc["error"] = None if failure is None else error_json(failure)
        if recorder is not None:
            doc["recorded_to"] = [str(p) for p in recorder.saved]
        out.write(json_line(doc) + "\n")
    elif raw_out and summary is not None and not isinstance(failure, APIError):
        err.write(summary.line(style) + "\n")
    out.flush()
    if recorder is not None and not show_json:
        saved = ", ".join(str(p) for p in recorder.saved)
        err.write(f"recorded to {saved}\n" if saved else "nothing recorded (no response)\n")
    if interrupted:
        err.write("rawsse: interrupted\n")
        return ExitCode.INTERRUPTED
    if failure is not None:
        err.write(style.red("error: ") + reason(failure) + "\n")
        return ExitCode.STREAM
    return ExitCode.OK


def _open_metrics_log(path: str | None) -> MetricsLog | None:
    if path is None:
        return None
    try:
        return MetricsLog(path)
    except OSError as exc:
        raise UsageError(f"cannot open {path}: {exc.strerror or exc}") from None


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments ``chat`` and ``record`` share."""
    parser.add_argument("model", metavar="MODEL", help="model slug, e.g. openai/gpt-4o-mini")
    parser.add_argument(
        "prompt", metavar="PROMPT", nargs="?", help="the user message; '-' or omitted: read stdin"
    )
    add_base_url_argument(parser)
    parser.add_argument("--system", metavar="TEXT", help="a system message")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="max_tokens for the answer")
    parser.add_argument(
        "--metrics",
        metavar="FILE",
        help="append the stream's metrics to FILE (JSON Lines; summarise with `rawsse stats`)",
    )
    parser.add_argument(
        "--retries",
        type=count_arg,
        default=2,
        metavar="N",
        help="retries before the first token (connection errors, 408/429/5xx; default 2)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a stream that breaks (cut, stall, retriable in-band error) in a new "
        "request from the text so far; seams are shown as [continued ...] on stderr",
    )
    parser.add_argument(
        "--reasoning-effort",
        metavar="EFFORT",
        choices=["minimal", "low", "medium", "high", "xhigh", "max", "none"],
        help="reasoning.effort (minimal, low, medium, high, ...)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object at the end instead of the live text",
    )
    mode.add_argument(
        "--raw", action="store_true", help="print the SSE bytes as they arrive (comments included)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show request and response headers (key redacted) on stderr",
    )


COMMAND = Command(
    "chat",
    help="stream one chat completion and show what happened",
    description=(
        "Stream a chat completion: text as it arrives (reasoning dimmed or prefixed, "
        "tool calls as they assemble), then one summary line (TTFT, total, tokens, "
        "tokens/s, cost, provider, finish reason, status). The key comes from "
        f"${API_KEY_ENV} (OpenRouter's URL) or ${OTHER_KEY_ENV} (any other --base-url)."
    ),
    epilog="exit codes: 0 ok, 1 API or stream error, 2 usage error",
)
