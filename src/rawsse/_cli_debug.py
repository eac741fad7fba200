"""The protocol-debugging subcommands: ``chat``, ``record``, ``inspect`` and ``replay``.

``add_parsers(subparsers)`` registers them on the ``rawsse`` entry point; each
handler takes the parsed arguments and returns the exit code: 0 success, 1 an
API or stream error (after the partial text and a one-line reason with the
server's own message), 2 a usage error (bad arguments, no key, unreadable file).
Expected errors never print a traceback.

Output is plain when stdout is not a terminal; colour (and the live "waiting"
line) only on a terminal, never with ``NO_COLOR`` set.  The API key is never
printed: ``--verbose`` shows the request headers with it redacted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from ._chat_events import (
    ChatEvent,
    KeepAlive,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
)
from ._errors import (
    APIError,
    APIStatusError,
    CassetteError,
    ConfigurationError,
    RawSSEError,
    StreamError,
    StreamInterrupted,
)
from ._inspect import (
    DEFAULT_STALL_THRESHOLD,
    ChunkRow,
    EventRow,
    StreamInspector,
    StreamReport,
    sse_lines,
)
from ._sse import Comment

if TYPE_CHECKING:
    from ._accumulate import ChatResult
    from ._metrics import StreamMetrics

__all__ = [
    "EXIT_OK",
    "EXIT_STREAM",
    "EXIT_USAGE",
    "StreamPrinter",
    "Style",
    "Summary",
    "add_parsers",
    "format_cost",
]

EXIT_OK = 0
EXIT_STREAM = 1
EXIT_USAGE = 2

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
KEY_ENV = "OPENROUTER_API_KEY"
_DASH = "\u2013"


class UsageError(Exception):
    """A usage problem found after parsing (no key, no prompt, unreadable file): exit 2."""


# -- terminal style --------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """ANSI styling, or none: colour only on a terminal and without ``NO_COLOR``."""

    colour: bool = False
    live: bool = False
    """Whether a live progress line may be drawn (stderr is a terminal)."""

    @classmethod
    def detect(cls, out: IO[str], err: IO[str]) -> Style:
        no_colour = "NO_COLOR" in os.environ and os.environ["NO_COLOR"] != ""
        colour = _isatty(out) and not no_colour and os.environ.get("TERM") != "dumb"
        return cls(colour=colour, live=_isatty(err) and os.environ.get("TERM") != "dumb")

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def status(self, status: str) -> str:
        if status == "complete":
            return self.green(status)
        if status in ("error", "timed_out"):
            return self.red(status)
        return self.yellow(status)


def format_cost(cost: float | None) -> str:
    """Credits as plain decimals (``0.0000042``, never ``4.2e-06``)."""
    if cost is None:
        return _DASH
    text = f"{cost:.10f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- the live stream printer (chat, record, replay) ----------------------------------------


class StreamPrinter:
    """Writes choice 0 of a stream as a person reads it.

    Text as it comes; reasoning dimmed on a terminal, else each line prefixed
    ``[reasoning] ``; tool calls as ``[tool call #0 name] `` and the argument
    fragments as they arrive (``…`` marks a call continued after another one
    interleaved); refusals prefixed ``[refusal] ``.
    """

    def __init__(self, out: IO[str], style: Style, err: IO[str] | None = None) -> None:
        self.out = out
        self.err = err
        self.style = style
        self._mode: str | None = None
        self._line_start = True
        self._tool: int | None = None
        self._tools: dict[int, str] = {}
        self._waiting = False
        self._keep_alives = 0
        self._started = time.monotonic()

    def event(self, event: ChatEvent) -> None:
        if isinstance(event, KeepAlive):
            self._keep_alives += 1
            self._progress()
            return
        if not isinstance(event, TextDelta | ReasoningDelta | ToolCallDelta | RefusalDelta):
            return
        if event.index != 0:
            return
        self._clear_progress()
        if isinstance(event, TextDelta):
            self._switch("text")
            self._write(event.text)
        elif isinstance(event, ReasoningDelta):
            if event.text:
                self._switch("reasoning")
                if self.style.colour:
                    self._write(event.text, self.style.dim)
                else:
                    self._write(event.text, prefix="[reasoning] ")
        elif isinstance(event, RefusalDelta):
            self._switch("refusal")
            self._write(event.text, prefix="[refusal] ")
        else:
            self._tool_call(event)
        self.out.flush()

    def _tool_call(self, event: ToolCallDelta) -> None:
        key = event.tool_index
        if key is None:  # no index: a fragment with an id starts a call, the rest continue it
            key = len(self._tools) if event.id is not None or self._tool is None else self._tool
        if self._mode != "tool" or key != self._tool:
            self._switch(None)
            self._mode = "tool"
            self._tool = key
            if key in self._tools:
                header = f"[tool call #{key} {self._tools[key]}] \u2026"
            else:
                self._tools[key] = event.name or "?"
                header = f"[tool call #{key} {self._tools[key]}] "
            self._write(self.style.cyan(header))
        if event.arguments:
            self._write(event.arguments)

    def _switch(self, mode: str | None) -> None:
        if self._mode == mode:
            return
        if self._mode is not None and not self._line_start:
            self._write("\n")
        self._mode = mode

    def _write(
        self, text: str, paint: Callable[[str], str] | None = None, prefix: str = ""
    ) -> None:
        if prefix:
            pieces = []
            for line in text.splitlines(keepends=True):
                if self._line_start:
                    pieces.append(prefix)
                pieces.append(line)
                self._line_start = line.endswith(("\n", "\r"))
            self.out.write("".join(pieces))
            return
        self.out.write(paint(text) if paint else text)
        if text:
            self._line_start = text.endswith("\n")

    def waiting(self) -> None:
        """Draw the live "waiting for the first token" line (on a terminal only)."""
        self._progress()

    def _progress(self) -> None:
        if self.err is None or not self.style.live or self._mode is not None:
            return
        waited = time.monotonic() - self._started
        self.err.write(
            f"\r\x1b[Kwaiting for the first token: {waited:.1f} s, "
            f"{self._keep_alives} keep-alive(s)"
        )
        self.err.flush()
        self._waiting = True

    def _clear_progress(self) -> None:
        if self._waiting and self.err is not None:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._waiting = False

    def finish(self) -> None:
        """End the output: close an open tool call and end the line."""
        self._clear_progress()
        self._switch(None)
        if not self._line_start:
            self._write("\n")
        self.out.flush()


# -- summary line --------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The figures of the one summary line."""

    ttft: float | None
    total: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    tokens_per_second: float | None
    cost: float | None
    provider: str | None
    finish_reason: str | None
    status: str
    model: str | None = None

    def line(self, style: Style) -> str:
        def sec(v: float | None) -> str:
            return _DASH if v is None else f"{v:.3f} s"

        def num(v: int | None) -> str:
            return _DASH if v is None else str(v)

        parts = [
            f"ttft {sec(self.ttft)}",
            f"total {sec(self.total)}",
            f"tokens {num(self.prompt_tokens)} in / {num(self.completion_tokens)} out",
            f"{_DASH if self.tokens_per_second is None else f'{self.tokens_per_second:.1f}'} tok/s",
            f"cost {format_cost(self.cost)}",
            f"provider {self.provider or _DASH}",
            f"finish {self.finish_reason or _DASH}",
            f"status {style.status(self.status)}",
        ]
        return style.dim("-- ") + " | ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ttft": self.ttft,
            "total": self.total,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_per_second": self.tokens_per_second,
            "cost": self.cost,
            "provider": self.provider,
            "finish_reason": self.finish_reason,
            "status": self.status,
        }


def _summary_from(result: ChatResult, metrics: StreamMetrics | None, status: str) -> Summary:
    usage = result.usage
    choice = result.choices[0] if result.choices else None
    return Summary(
        ttft=metrics.ttft if metrics else None,
        total=metrics.total if metrics else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        tokens_per_second=metrics.tokens_per_second if metrics else None,
        cost=usage.cost if usage else None,
        provider=result.provider,
        finish_reason=choice.finish_reason if choice else None,
        status=status,
        model=result.model,
    )


def _result_json(result: ChatResult | None, summary: Summary | None) -> dict[str, Any]:
    if result is None:
        return {"status": "error", "text": "", "reasoning": "", "tool_calls": []}
    choice = result.choices[0] if result.choices else None
    doc: dict[str, Any] = {
        "status": summary.status if summary else str(result.status.value),
        "id": result.id,
        "model": result.model,
        "provider": result.provider,
        "text": result.text,
        "reasoning": choice.reasoning if choice else "",
        "refusal": choice.refusal if choice else None,
        "tool_calls": [
            {
                "index": c.index,
                "id": c.id,
                "type": c.type,
                "name": c.name,
                "arguments": c.arguments,
            }
            for c in (choice.tool_calls if choice else ())
        ],
        "finish_reason": choice.finish_reason if choice else None,
        "native_finish_reason": choice.native_finish_reason if choice else None,
        "usage": None if result.usage is None else dict(result.usage.raw),
        "choices": len(result.choices),
    }
    if summary is not None:
        doc["metrics"] = summary.as_dict()
    return doc


def _error_json(exc: BaseException) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": type(exc).__name__, "message": _reason(exc)}
    if isinstance(exc, APIStatusError):
        doc["http_status"] = exc.status
        doc["code"] = exc.code
        doc["server_message"] = exc.message
    elif isinstance(exc, StreamError):
        doc["code"] = exc.code
        error = exc.raw.get("error") if isinstance(exc.raw, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            doc["server_message"] = error["message"]
    return doc


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # one line, whatever the server sent


# -- chat and record -----------------------------------------------------------------


class _TapStream(httpx.SyncByteStream):
    """Wraps a response byte stream: calls ``on_chunk`` with each chunk as it passes."""

    def __init__(self, inner: Any, on_chunk: Callable[[bytes], None]) -> None:
        self._inner = inner
        self._on_chunk = on_chunk

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._on_chunk(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


def _tap_transport(
    inner: httpx.BaseTransport,
    on_request: Callable[[httpx.Request], None],
    on_response: Callable[[httpx.Response], None],
    on_chunk: Callable[[bytes], None],
) -> httpx.BaseTransport:
    class TapTransport(httpx.BaseTransport):
        """Shows the request, the response head and every body chunk as it passes."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.headers.get("authorization", "").strip() == "Bearer":
                # ``api_key=""`` keeps the client from reading $OPENROUTER_API_KEY for a
                # host that is not OpenRouter; the empty credential is not sent either.
                del request.headers["authorization"]
            on_request(request)
            response = inner.handle_request(request)
            on_response(response)
            stream: Any = _TapStream(response.stream, on_chunk)
            return httpx.Response(
                status_code=response.status_code,
                headers=response.headers,
                stream=stream,
                extensions=response.extensions,
                request=request,
            )

        def close(self) -> None:
            inner.close()

    return TapTransport()


def redact_headers(headers: Sequence[tuple[str, str]], secret: str | None) -> list[str]:
    """``name: value`` lines with credentials redacted (the cassette writer's rules),
    and any value holding ``secret`` too."""
    from ._cassette import REDACTED
    from ._cassette import redact_headers as redact

    lines = []
    for name, value in redact(headers).items():
        if secret and secret in value:
            value = REDACTED
        lines.append(f"{name}: {value}")
    return lines


def _is_openrouter(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def _read_prompt(prompt: str | None, stdin: IO[str]) -> str:
    if prompt is None or prompt == "-":
        if prompt is None and _isatty(stdin):
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


def run_chat(
    args: argparse.Namespace,
    *,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    stdin: IO[str] | None = None,
) -> int:
    """``rawsse chat`` (and ``rawsse record``, which sets ``args.record``)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    stdin = stdin if stdin is not None else sys.stdin
    style = Style.detect(out, err)
    try:
        return _chat(args, out, err, stdin, style)
    except UsageError as exc:
        err.write(f"rawsse {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        return _broken_pipe()


def _chat(
    args: argparse.Namespace, out: IO[str], err: IO[str], stdin: IO[str], style: Style
) -> int:
    from ._client import Client

    base_url: str = args.base_url or os.environ.get("RAWSSE_BASE_URL") or DEFAULT_BASE_URL
    key = os.environ.get(KEY_ENV) or None
    if key is None and _is_openrouter(base_url):
        raise UsageError(
            f"no API key: set the {KEY_ENV} environment variable "
            f"(or point --base-url at another server, e.g. one started by `rawsse serve`)"
        )
    prompt = _read_prompt(args.prompt, stdin)
    record: str | None = args.record
    if record is not None:
        target = Path(record)
        if not target.is_dir():
            if target.suffix != ".jsonl":
                raise UsageError(f"cannot record to {record}: a cassette file ends in .jsonl")
            if not target.resolve().parent.is_dir():
                raise UsageError(f"cannot record to {record}: no directory {target.parent}")
    raw_out = args.raw
    show_json = args.json
    verbose = args.verbose
    binary = getattr(out, "buffer", None)

    def on_request(request: httpx.Request) -> None:
        if verbose:
            err.write(style.dim(f"> {request.method} {request.url}") + "\n")
            for line in redact_headers(list(request.headers.items()), key):
                err.write(style.dim(f"> {line}") + "\n")
            err.flush()

    def on_response(response: httpx.Response) -> None:
        if verbose:
            err.write(style.dim(f"< HTTP {response.status_code}") + "\n")
            for line in redact_headers(list(response.headers.items()), key):
                err.write(style.dim(f"< {line}") + "\n")
            err.flush()

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
        from ._recording import RecordingTransport

        inner = recorder = RecordingTransport(inner, record)
    http = httpx.Client(
        transport=_tap_transport(inner, on_request, on_response, on_chunk), timeout=None
    )
    # The key goes only where it belongs: OpenRouter's key is not sent to other hosts
    # unless the user points ``--base-url`` at OpenRouter itself.
    api_key = key if _is_openrouter(base_url) else os.environ.get("RAWSSE_API_KEY") or None
    try:
        client = Client(
            api_key=api_key or "",
            base_url=base_url,
            http_client=http,
            app_title="rawsse CLI",
            retries=args.retries,
        )
    except ConfigurationError as exc:
        http.close()
        raise UsageError(str(exc)) from None
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
    status = "error"
    if interrupted:
        status = "cancelled"
    elif result is not None and failure is None:
        status = str(result.status.value)
    elif result is not None and isinstance(failure, StreamInterrupted):
        status = str(result.status.value)
        if status == "complete":
            status = "error"
    summary = _summary_from(result, metrics, status) if result is not None else None
    if live:
        printer.finish()
        if summary is not None and not isinstance(failure, APIError):
            out.write(summary.line(style) + "\n")
    elif show_json:
        doc = _result_json(result, summary)
        doc["error"] = None if failure is None else _error_json(failure)
        if recorder is not None:
            doc["recorded_to"] = [str(p) for p in recorder.saved]
        out.write(json.dumps(doc, ensure_ascii=False) + "\n")
    elif raw_out and summary is not None and not isinstance(failure, APIError):
        err.write(summary.line(style) + "\n")
    out.flush()
    if recorder is not None and not show_json:
        saved = ", ".join(str(p) for p in recorder.saved)
        err.write(f"recorded to {saved}\n" if saved else "nothing recorded (no response)\n")
    if interrupted:
        err.write("rawsse: interrupted\n")
        return 130
    if failure is not None:
        err.write(style.red("error: ") + _reason(failure) + "\n")
        return EXIT_STREAM
    return EXIT_OK


def _broken_pipe() -> int:
    # The reader went away (``| head``): stop quietly, and keep Python from
    # complaining again when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_STREAM


# -- reading files (inspect, replay) ---------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """A stream read from disk: a cassette (timed) or a raw ``.sse`` body (untimed)."""

    path: str
    kind: str
    """``cassette`` or ``sse``."""
    chunks: list[tuple[float | None, bytes]]
    end: str | None
    end_error: str | None
    end_t: float | None
    http_status: int | None
    response_t: float | None
    request: dict[str, Any] | None
    recorded_at: str | None = None


def read_recording(path: str) -> Recording:
    """Read ``path``: JSON Lines is a cassette, anything else a raw SSE body.

    Raises ``UsageError`` with a one-line reason when the file cannot be read.
    """
    if path == "-":
        return _read_stdin()
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{path}: is a directory, not a cassette or .sse file")
    if not p.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        with p.open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if p.suffix == ".jsonl" or head.lstrip().startswith(b'{"format"'):
        return _read_cassette(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return Recording(
        path, "sse", [(None, data)] if data else [], "eof", None, None, None, None, None
    )


def _read_stdin() -> Recording:
    """A raw SSE body from stdin, each read stamped with its arrival time.

    So ``curl -sN ... | rawsse inspect -`` shows the timing of any endpoint
    (times count from the start of ``rawsse``, not from the request).
    """
    start = time.monotonic()
    fd = sys.stdin.fileno()
    chunks: list[tuple[float | None, bytes]] = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append((round(time.monotonic() - start, 6), data))
    end_t = round(time.monotonic() - start, 6)
    return Recording("-", "stdin", chunks, "eof", None, end_t, None, None, None)


def _read_cassette(path: str) -> Recording:
    from ._cassette import load_cassette

    try:
        cassette = load_cassette(path)
    except CassetteError as exc:
        raise UsageError(f"not a usable cassette: {_reason(exc)}") from None
    chunks: list[tuple[float | None, bytes]] = [(t, data) for t, data in cassette.chunks]
    return Recording(
        path=path,
        kind="cassette",
        chunks=chunks,
        end=cassette.end,
        end_error=cassette.error,
        end_t=cassette.end_t,
        http_status=cassette.status,
        response_t=cassette.response_t,
        request=dict(cassette.request),
        recorded_at=cassette.recorded_at,
    )


def analyse(recording: Recording, stall_threshold: float) -> StreamReport:
    """Run the inspector over a recording."""
    inspector = StreamInspector(
        stall_threshold=stall_threshold,
        http_status=recording.http_status,
        response_t=recording.response_t,
    )
    for t, data in recording.chunks:
        inspector.feed(data, t)
    return inspector.close(end=recording.end, error=recording.end_error, t=recording.end_t)


# -- inspect -----------------------------------------------------------------------------


def _clip(text: str, width: int) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if width and len(text) > width:
        return text[: width - 1] + "\u2026"
    return text


def event_text(event: ChatEvent) -> str:
    """A typed event as one readable line: its repr without the bulky raw copies.

    ``raw`` (the whole usage object or chunk) is left out and ``details`` shown
    as a count; ``--json`` has them in full.
    """
    parts = []
    for name, value in event._asdict().items():
        if name == "raw":
            continue
        if name == "details" and isinstance(value, tuple):
            if value:
                parts.append(f"details=[{len(value)} entr{'y' if len(value) == 1 else 'ies'}]")
            continue
        parts.append(f"{name}={value!r}")
    return f"{type(event).__name__}({', '.join(parts)})"


_ENVELOPE = re.compile(
    r'"(?:id|object|created|model|provider|system_fingerprint)":(?:"(?:[^"\\]|\\.)*"|-?\d+),?'
)


def _compact(data: str) -> str:
    """The data with the chunk envelope (id, object, created, model, provider) shown as ``…``.

    Only keys before ``"choices"`` go (the typed ``StreamStart`` row shows them), so
    an ``error`` or ``usage`` is never hidden.
    """
    head, sep, tail = data.partition('"choices"')
    if not sep or not head.startswith("{"):
        return data
    short = _ENVELOPE.sub("", head)
    return data if short == head else "{\u2026" + short[1:] + sep + tail


def run_inspect(
    args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None
) -> int:
    """``rawsse inspect``: rows, anomalies and status; ``--json``; ``--html``."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    style = Style.detect(out, err)
    try:
        if args.stall_threshold <= 0:
            raise UsageError("--stall-threshold must be positive")
        recording = read_recording(args.file)
        report = analyse(recording, args.stall_threshold)
        if args.html:
            _write_html(report, recording, args.html)
    except UsageError as exc:
        err.write(f"rawsse inspect: error: {exc}\n")
        return EXIT_USAGE
    if args.json:
        doc = report.to_dict()
        doc = {"file": recording.path, "kind": recording.kind, **doc}
        if recording.request is not None:
            doc["request"] = _request_summary(recording.request)
        out.write(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    else:
        write_inspect_text(report, recording, out, style, width=args.width, rows=not args.summary)
    if args.html and not args.json:
        err.write(f"wrote {args.html}\n")
    return EXIT_OK


def _write_html(report: StreamReport, recording: Recording, path: str) -> None:
    from ._report_html import render_html_report

    page = render_html_report(report, title=f"rawsse inspect: {Path(recording.path).name}")
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _request_summary(request: dict[str, Any]) -> dict[str, Any]:
    body = request.get("body")
    model = body.get("model") if isinstance(body, dict) else None
    return {"method": request.get("method"), "url": request.get("url"), "model": model}


def write_inspect_text(
    report: StreamReport,
    recording: Recording,
    out: IO[str],
    style: Style,
    *,
    width: int = 120,
    rows: bool = True,
) -> None:
    """The human-readable inspect report."""
    w = out.write
    what = {
        "cassette": "cassette",
        "stdin": "raw SSE from stdin, timed on arrival",
    }.get(recording.kind, "raw SSE body, no timing")
    w(style.bold(f"{recording.path}") + f" ({what})\n")
    if recording.request is not None:
        req = _request_summary(recording.request)
        w(f"request: {req['method']} {req['url']} model={req['model']}\n")
    if recording.http_status is not None:
        after = "" if report.response_t is None else f" after {report.response_t:.3f} s"
        w(f"response: HTTP {recording.http_status}{after}\n")
    if rows:
        w("\n" + style.dim(f"{'t (s)':>8} {'chunk':>5} {'bytes':>7}  row") + "\n")
        pad = " " * 24
        for row in report.rows:
            t = f"{row.t:8.3f}" if row.t is not None else f"{_DASH:>8}"
            if isinstance(row, ChunkRow):
                w(style.dim(f"{t} {row.number:>5} {row.size:>7}  chunk @{row.offset}") + "\n")
                continue
            assert isinstance(row, EventRow)
            item = row.item
            if isinstance(item, Comment):
                text = _clip(": " + item.text, width)
                w(f"{t} {row.chunk:>5} {row.size:>7}  {style.yellow(text)}\n")
            else:
                lines = sse_lines(item._replace(data=_compact(item.data)))
                w(f"{t} {row.chunk:>5} {row.size:>7}  {_clip(lines[0], width)}\n")
                for line in lines[1:]:
                    w(f"{pad}{_clip(line, width)}\n")
            for event in row.events:
                if isinstance(event, KeepAlive):
                    continue
                w(f"{pad}  {style.cyan(_clip(event_text(event), width))}\n")
            if row.error is not None:
                w(f"{pad}  {style.red(_clip('malformed: ' + row.error, width))}\n")
        w("\n")
    w(style.bold(f"anomalies ({len(report.anomalies)})") + "\n")
    if not report.anomalies:
        w("  none\n")
    for a in report.anomalies:
        when = "" if a.t is None else style.dim(f" [at {a.t:.3f} s]")
        paint = (
            style.red if a.kind in ("in_band_error", "stream_cut", "http_error") else style.yellow
        )
        w(f"  {paint(f'{a.kind:<22}')} {a.message}{when}\n")
    w(_report_status_line(report, style) + "\n")


def _report_status_line(report: StreamReport, style: Style) -> str:
    result = report.result
    choice = result.choices[0] if result.choices else None
    usage = result.usage

    def sec(v: float | None) -> str:
        return _DASH if v is None else f"{v:.3f} s"

    parts = [
        f"status {style.status(report.status)}",
        f"model {result.model or _DASH}",
        f"provider {result.provider or _DASH}",
        f"finish {(choice.finish_reason if choice else None) or _DASH}",
        f"ttft {sec(report.ttft)}",
        f"total {sec(report.total)}",
        f"{report.total_bytes} bytes in {report.chunks} chunk(s)",
        f"{report.content_events} content event(s)",
    ]
    if usage is not None:
        parts.append(f"tokens {usage.prompt_tokens} in / {usage.completion_tokens} out")
        parts.append(f"cost {format_cost(usage.cost)}")
    return " | ".join(parts)


# -- replay ------------------------------------------------------------------------------


def run_replay(
    args: argparse.Namespace,
    *,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``rawsse replay``: the stream as it was seen, with its timing scaled by ``--speed``."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    style = Style.detect(out, err)
    try:
        if args.speed < 0:
            raise UsageError("--speed must be >= 0 (0 = no waiting)")
        recording = read_recording(args.file)
    except UsageError as exc:
        err.write(f"rawsse replay: error: {exc}\n")
        return EXIT_USAGE
    inspector = StreamInspector(http_status=recording.http_status, response_t=recording.response_t)
    printer = StreamPrinter(out, style, err)
    clock = 0.0
    try:
        for t, data in recording.chunks:
            if t is not None and args.speed > 0 and t > clock:
                sleep((t - clock) / args.speed)
                clock = t
            for row in inspector.feed(data, t):
                if not isinstance(row, EventRow):
                    continue
                for event in row.events:
                    if args.events:
                        stamp = f"{row.t:8.3f}" if row.t is not None else f"{_DASH:>8}"
                        out.write(f"{stamp}  {event_text(event)}\n")
                    else:
                        printer.event(event)
                if args.events and row.error is not None:
                    out.write(f"{'':>8}  malformed: {row.error}\n")
            out.flush()
    except KeyboardInterrupt:
        printer.finish()
        err.write("rawsse: interrupted\n")
        return 130
    report = inspector.close(end=recording.end, error=recording.end_error, t=recording.end_t)
    if not args.events:
        printer.finish()
    summary = _report_summary(report)
    out.write(summary.line(style) + "\n")
    reason = _failure_reason(report)
    if reason is not None:
        err.write(style.red("error: ") + reason + "\n")
        return EXIT_STREAM
    return EXIT_OK


def _report_summary(report: StreamReport) -> Summary:
    result = report.result
    usage = result.usage
    choice = result.choices[0] if result.choices else None
    tps = None
    if usage is not None and usage.completion_tokens and report.ttft is not None:
        last = report.last_token
        if last is not None and last > report.ttft:
            tps = usage.completion_tokens / (last - report.ttft)
    return Summary(
        ttft=report.ttft,
        total=report.total,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        tokens_per_second=tps,
        cost=usage.cost if usage else None,
        provider=result.provider,
        finish_reason=choice.finish_reason if choice else None,
        status=report.status,
        model=result.model,
    )


def _failure_reason(report: StreamReport) -> str | None:
    """The one-line reason a replayed stream failed, or None when it did not."""
    if report.status == "complete":
        return None
    for kind in ("http_error", "in_band_error", "error_finish", "stream_cut", "no_done"):
        for a in report.anomalies:
            if a.kind == kind:
                if kind == "in_band_error":
                    return f"the server sent an error in the stream: {a.message}"
                return a.message
    return f"the stream ended with status {report.status}"


# -- argument parsing ------------------------------------------------------------------


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def add_parsers(subparsers: Any) -> None:
    """Register ``chat``, ``record``, ``inspect`` and ``replay`` on an argparse subparsers object.

    Each subparser sets ``handler`` (``args -> exit code``) through ``set_defaults``.
    """
    chat = subparsers.add_parser(
        "chat",
        help="stream one chat completion and show what happened",
        description=(
            "Stream a chat completion: text as it arrives (reasoning dimmed or prefixed, "
            "tool calls as they assemble), then one summary line (TTFT, total, tokens, "
            "tokens/s, cost, provider, finish reason, status). The key comes from "
            f"${KEY_ENV} (OpenRouter's URL) or $RAWSSE_API_KEY (any other --base-url)."
        ),
        epilog="exit codes: 0 ok, 1 API or stream error, 2 usage error",
    )
    _chat_arguments(chat)
    chat.add_argument("--record", metavar="FILE", help="also record the exchange as a cassette")
    chat.set_defaults(handler=run_chat, command="chat")

    record = subparsers.add_parser(
        "record",
        help="stream one chat completion and record it as a cassette",
        description="Like `rawsse chat`, and record the exchange (format v1 cassette) to FILE.",
        epilog="exit codes: 0 ok, 1 API or stream error (the cassette is still written), 2 usage",
    )
    _chat_arguments(record)
    record.add_argument(
        "-o",
        "--output",
        dest="record",
        metavar="FILE",
        required=True,
        help="the cassette to write (.jsonl)",
    )
    record.set_defaults(handler=run_chat, command="record")

    inspect = subparsers.add_parser(
        "inspect",
        help="show a recorded stream chunk by chunk, with an anomaly report",
        description=(
            "Read a cassette (.jsonl) or a raw SSE body (.sse, no timing) and show one row "
            "per network chunk and per SSE event (time, bytes, SSE fields, typed chat events), "
            "then the anomalies (keep-alives, repeated finish, in-band error, no [DONE], "
            "mixed line ends, stalls, invalid tool arguments, ...) and the final status."
        ),
        epilog="exit codes: 0 the file was read (even with anomalies), 2 bad file or usage",
    )
    inspect.add_argument(
        "file",
        metavar="FILE",
        help="a cassette (.jsonl), a raw .sse body, or '-': SSE on stdin, timed as it arrives",
    )
    inspect.add_argument(
        "--json", action="store_true", help="one JSON document: status, events, anomalies, ..."
    )
    inspect.add_argument("--html", metavar="REPORT", help="also write a self-contained HTML page")
    inspect.add_argument(
        "--stall-threshold",
        type=_number,
        metavar="S",
        default=DEFAULT_STALL_THRESHOLD,
        help=f"seconds without content that count as a stall (default {DEFAULT_STALL_THRESHOLD:g})",
    )
    inspect.add_argument(
        "--width",
        type=int,
        default=120,
        metavar="N",
        help="clip long rows to N characters (0: never; default 120)",
    )
    inspect.add_argument(
        "--summary", action="store_true", help="only the anomalies and the status, no rows"
    )
    inspect.set_defaults(handler=run_inspect, command="inspect")

    replay = subparsers.add_parser(
        "replay",
        help="replay a recorded stream as it was seen, with its timing",
        description=(
            "Print a recorded stream as the user saw it, with the recorded timing scaled by "
            "--speed (0: at once), then the summary line; --events prints the typed events, "
            "one per line, with their times."
        ),
        epilog="exit codes: 0 complete, 1 the recording ends in an error or cut, 2 bad file",
    )
    replay.add_argument("file", metavar="FILE", help="a cassette (.jsonl) or a raw .sse body")
    replay.add_argument(
        "--speed",
        type=_number,
        default=1.0,
        metavar="X",
        help="time scale: 2 = twice as fast, 0 = no waiting (default 1)",
    )
    replay.add_argument(
        "--events", action="store_true", help="print the typed chat events, one per line"
    )
    replay.set_defaults(handler=run_replay, command="replay")


def _chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model slug, e.g. openai/gpt-4o-mini")
    parser.add_argument(
        "prompt", metavar="PROMPT", nargs="?", help="the user message; '-' or omitted: read stdin"
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=f"any OpenAI-compatible API (default {DEFAULT_BASE_URL}, or $RAWSSE_BASE_URL)",
    )
    parser.add_argument("--system", metavar="TEXT", help="a system message")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="max_tokens for the answer")
    parser.add_argument(
        "--retries",
        type=_count,
        default=2,
        metavar="N",
        help="retries before the first token (connection errors, 408/429/5xx; default 2)",
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
