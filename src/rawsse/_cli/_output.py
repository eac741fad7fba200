"""What every command prints: exit codes, terminal style, the live stream printer,
the summary line, JSON documents and one-line reasons.

Commands import from here; this module imports only the library.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from functools import partialmethod
from typing import IO, TYPE_CHECKING, Any

from .._chat_events import (
    ChatEvent,
    Continued,
    KeepAlive,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
)
from .._errors import APIStatusError, StreamError
from .._redact import REDACTED, redact_headers

if TYPE_CHECKING:
    from .._accumulate import ChatResult
    from .._metrics import StreamMetrics
    from ..inspect import StreamReport

__all__ = [
    "DASH",
    "ExitCode",
    "StreamPrinter",
    "Style",
    "Summary",
    "UsageError",
    "broken_pipe",
    "clip",
    "error_json",
    "event_text",
    "format_cost",
    "header_lines",
    "isatty",
    "json_line",
    "reason",
    "redact_url",
    "result_json",
    "std_streams",
    "writable_streams",
]


class ExitCode(IntEnum):
    """What every command exits with."""

    OK = 0
    STREAM = 1
    """An API or stream error (or the reader went away)."""
    USAGE = 2
    INTERRUPTED = 130
    """Ctrl-C."""


DASH = "\u2013"


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
        colour = isatty(out) and not no_colour and os.environ.get("TERM") != "dumb"
        return cls(colour=colour, live=isatty(err) and os.environ.get("TERM") != "dumb")

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text

    # Each takes the text and returns it painted (SGR codes).
    dim = partialmethod(_wrap, "2")
    bold = partialmethod(_wrap, "1")
    red = partialmethod(_wrap, "31")
    yellow = partialmethod(_wrap, "33")
    green = partialmethod(_wrap, "32")
    cyan = partialmethod(_wrap, "36")

    def status(self, status: str) -> str:
        if status == "complete":
            return self.green(status)
        if status in ("error", "timed_out"):
            return self.red(status)
        return self.yellow(status)


def format_cost(cost: float | None) -> str:
    """Credits as plain decimals (``0.0000042``, never ``4.2e-06``)."""
    if cost is None:
        return DASH
    text = f"{cost:.10f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- the live stream printer (chat, record, replay, demo) ---------------------------------


_Content = TextDelta | ReasoningDelta | ToolCallDelta | RefusalDelta


class StreamPrinter:
    """Writes every choice of a stream as a person reads it.

    Text as it comes; reasoning dimmed on a terminal, else each line prefixed
    ``[reasoning] ``; tool calls as ``[tool call #0 name] `` and the argument
    fragments as they arrive (``…`` marks a call continued after another one
    interleaved); refusals prefixed ``[refusal] ``.

    The first choice to arrive (choice 0) is written live; the others (``n > 1``)
    are kept and written by ``finish()``, each under a ``[choice N]`` line, so
    interleaved choices never mix.  With ``labels`` (the caller knows there are
    several) the live choice gets its ``[choice 0]`` line too.
    """

    def __init__(
        self, out: IO[str], style: Style, err: IO[str] | None = None, *, labels: bool = False
    ) -> None:
        self.out = out
        self.err = err
        self.style = style
        self._labels = labels
        self._live: int | None = None  # the choice written as it arrives
        self._later: dict[int, list[_Content]] = {}  # the other choices, written at the end
        self._labelled = False
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
        if self._live is None:
            # Known to be several: choice 0 goes first, whatever arrives first.
            self._live = 0 if self._labels else event.index
        if event.index != self._live:
            self._later.setdefault(event.index, []).append(event)
            return
        self._clear_progress()
        if self._labels and not self._labelled:
            self._labelled = True
            self._label(event.index)
        self._render(event)
        self.out.flush()

    def _label(self, index: int) -> None:
        self._write(self.style.cyan(f"[choice {index}]") + "\n")

    def _render(self, event: _Content) -> None:
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

    def continued(self, event: Continued) -> None:
        """A seam: a marker on stderr (stdout keeps only the answer)."""
        if self.err is None:
            return
        self._clear_progress()
        self.out.flush()
        self.err.write(self.style.dim(f" [continued after {event.reason}, #{event.attempt}] "))
        self.err.flush()

    def finish(self) -> None:
        """End the output: close an open tool call and end the line; then write the
        choices kept for the end, each under its ``[choice N]`` line."""
        self._clear_progress()
        self._end_choice()
        if self._later and not self._labelled and self._live is not None:
            self._write(self.style.dim(f"(the text above is choice {self._live})") + "\n")
        later, self._later = self._later, {}
        for index in sorted(later):
            self._mode, self._tool, self._tools = None, None, {}
            self._label(index)
            for event in later[index]:
                self._render(event)
            self._end_choice()
        self.out.flush()

    def _end_choice(self) -> None:
        self._switch(None)
        if not self._line_start:
            self._write("\n")


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
    continuations: int = 0
    """Requests that continued the stream (``--resume``)."""

    def line(self, style: Style) -> str:
        def sec(v: float | None) -> str:
            return DASH if v is None else f"{v:.3f} s"

        def num(v: int | None) -> str:
            return DASH if v is None else str(v)

        parts = [
            f"ttft {sec(self.ttft)}",
            f"total {sec(self.total)}",
            f"tokens {num(self.prompt_tokens)} in / {num(self.completion_tokens)} out",
            f"{DASH if self.tokens_per_second is None else f'{self.tokens_per_second:.1f}'} tok/s",
            f"cost {format_cost(self.cost)}",
            f"provider {self.provider or DASH}",
            f"finish {self.finish_reason or DASH}",
            f"status {style.status(self.status)}",
        ]
        if self.continuations:
            parts.insert(-1, f"continued {self.continuations}x")
        return style.dim("-- ") + " | ".join(parts)

    @classmethod
    def of_result(cls, result: ChatResult, metrics: StreamMetrics | None, status: str) -> Summary:
        """The figures of a stream the client read (``metrics`` from the stream)."""
        usage = result.usage
        choice = result.choices[0] if result.choices else None
        return cls(
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
            continuations=metrics.continuations if metrics else 0,
        )

    @classmethod
    def of_report(cls, report: StreamReport) -> Summary:
        """The figures of a recorded stream, from the inspector's report."""
        usage = report.result.usage
        tps = None
        if usage is not None and usage.completion_tokens and report.ttft is not None:
            last = report.last_token
            if last is not None and last > report.ttft:
                tps = usage.completion_tokens / (last - report.ttft)
        summary = cls.of_result(report.result, None, report.status)
        return dataclasses.replace(
            summary, ttft=report.ttft, total=report.total, tokens_per_second=tps
        )

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


def result_json(result: ChatResult | None, summary: Summary | None) -> dict[str, Any]:
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
        # Every choice (n > 1), each as the fields above give choice 0.
        "choice_results": [
            {
                "index": c.index,
                "text": c.content,
                "reasoning": c.reasoning,
                "refusal": c.refusal,
                "tool_calls": [
                    {
                        "index": t.index,
                        "id": t.id,
                        "type": t.type,
                        "name": t.name,
                        "arguments": t.arguments,
                    }
                    for t in c.tool_calls
                ],
                "finish_reason": c.finish_reason,
                "native_finish_reason": c.native_finish_reason,
            }
            for c in result.choices
        ],
    }
    if summary is not None:
        doc["metrics"] = summary.as_dict()
    return doc


def error_json(exc: BaseException) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": type(exc).__name__, "message": reason(exc)}
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


def reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # one line, whatever the server sent


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_line(doc: Any) -> str:
    """``doc`` as one line of JSON, non-ASCII as is, that any UTF-8 output can take.

    A lone surrogate (kept verbatim in ``Extra`` fields and ``raw`` dicts) is
    written as its ``\\uXXXX`` escape, which is exactly what the JSON meant.
    """
    text = json.dumps(doc, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def writable_streams() -> None:
    """Let stdout and stderr write any ``str``: what their encoding cannot take (a lone
    surrogate) is written as a backslash escape instead of raising mid-output."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def redact_url(url: str) -> str:
    """``url`` with its ``user:password@`` part shown as ``***@``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"


def header_lines(headers: Iterable[tuple[str, str]], secret: str | None) -> list[str]:
    """``name: value`` lines with credentials redacted by the cassette writer's rules
    (``rawsse.testing.redact_headers``), and any value holding ``secret`` too."""
    lines = []
    for name, value in redact_headers(headers).items():
        lines.append(f"{name}: {REDACTED if secret and secret in value else value}")
    return lines


def clip(text: str, width: int) -> str:
    """``text`` on one line (CR and LF escaped), cut to ``width`` characters (0: never)."""
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


def std_streams(out: IO[str] | None, err: IO[str] | None) -> tuple[IO[str], IO[str]]:
    """``out`` and ``err``, with the process's stdout and stderr for those not given."""
    return (out if out is not None else sys.stdout, err if err is not None else sys.stderr)


def broken_pipe() -> int:
    """The reader went away (``| head``): stop quietly, exit 1."""
    # Keep Python from complaining again when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return ExitCode.STREAM
