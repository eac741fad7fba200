"""``StreamCore``: the sans-I/O state machine of one stream, shared by both clients.

It decodes the body (``Content-Encoding`` in bounded steps, ``_body``) through
``ChatDecoder`` into ``ChatAccumulator``, runs the clocks, decides after each
failure whether to retry or give up (``decide``, the one place for that; the
rules are ``_retry``'s) and produces the metrics.  It never touches httpx
(``_httpx_adapter`` does); the shells in ``_client`` and ``_async_client`` send,
read, sleep and close; ``_client_config`` builds requests.
"""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ._accumulate import ChatAccumulator, ChatResult, ChatStatus
from ._body import BodyLimits, ContentDecoder
from ._chat import ChatDecoder
from ._chat_events import CONTENT_EVENTS, ChatEvent, Done, InBandError, KeepAlive
from ._completion import result_from_completion, unexpected_content
from ._constants import END_EOF
from ._errors import (
    BodyError,
    DecodeError,
    IdleTimeout,
    IncompleteStreamError,
    RawSSEError,
    StreamError,
    StreamInterrupted,
    StreamTimeout,
    TotalTimeout,
)
from ._http_errors import status_error
from ._metrics import StreamMetrics, logger, percentile, tokens_per_second
from ._observe import RequestInfo, StreamObservation, StreamObserver, StreamOutcome
from ._resume import Continue, ResumeCore, Stop
from ._resume_totals import join_metrics
from ._retry import Decision, GiveUp, Retry, retry_delay, status_of, timeout_error
from ._timeouts import Clocks, Timeouts

__all__ = ["Decision", "GiveUp", "InBandErrorMode", "Retry", "StreamCore", "Translate"]

InBandErrorMode = Literal["raise", "yield"]

Translate = Callable[[Exception, "StreamCore", float], "RawSSEError | None"]
"""Turns a transport's exception into rawsse's error (None: foreign, re-raised as is)."""


_CONTENT = frozenset(CONTENT_EVENTS)

PIECES_PER_FEED = 4
"""Decoded steps (``STEP`` bytes each) one ``StreamCore.feed`` handles: 256 KiB (a
quarter of a second for blank lines, the slowest input), so a compressed read is
decoded over several calls, with the clocks checked between."""

DONE_GRACE = 0.25
"""Seconds the shells read on after ``[DONE]``: long enough for a server's prompt
close (the body then ends ``eof``, and a recording keeps every byte), short enough
that a server holding the connection open is not waited for.  The stream is
complete either way; the connection is then closed."""


def _is_event_stream(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


class StreamCore:
    """The sans-I/O state of one streaming request: clocks, decoding, result, metrics.

    The shell calls ``begin_attempt`` before each HTTP attempt, ``check_head`` on
    the response head, ``feed`` with each body chunk, ``end_of_body`` at EOF and
    ``fail`` / ``cancel`` when it stops early.  ``pending`` is an error to raise
    once the events returned before it were yielded; ``backlog`` says compressed
    bytes are still to decode (``feed(b"", now)`` before reading on); ``overdue``
    is asked between the events of one read.

    Observers hear of the stream here, so both shells report alike: ``start`` with
    the first attempt, ``retry`` from ``decide``, ``end`` once from ``_stop``.
    """

    # Slots: a relay holds one core per open stream, and 42 attributes are past
    # CPython's shared-key dictionaries (about 2 KiB each as a plain dict).
    # fmt: off
    __slots__ = (
        "_build", "_bytes", "_content_events", "_end", "_events", "_final", "_gaps",
        "_keepalives", "_metrics_sent", "_next_body", "_observations", "_observers",
        "_part_first_attempt", "_parts", "_reads", "_request", "_translate", "_ttfb", "_ttft",
        "accumulator", "announce", "attempts", "body_limits", "clocks", "content",
        "content_seen", "decoder", "done_at", "error", "finished", "generation_id",
        "max_retry_delay", "on_metrics", "pending", "raise_in_band", "request_model",
        "response_started", "resume", "retries", "retry_delay", "secret", "timeouts",
    )
    # fmt: on

    def __init__(
        self,
        *,
        timeouts: Timeouts,
        now: float,
        retries: int,
        in_band_error: InBandErrorMode,
        on_metrics: Callable[[StreamMetrics], object] | None,
        retry_delay: float,
        max_retry_delay: float,
        translate: Translate,
        request_model: str | None = None,
        observers: tuple[StreamObserver, ...] = (),
        request: RequestInfo | None = None,
        body_limits: BodyLimits | None = None,
        secret: str | None = None,
    ) -> None:
        self.clocks = Clocks(timeouts, now)
        self.timeouts = timeouts
        self.request_model = request_model
        self._observers = observers
        self._request = request
        self._observations: tuple[StreamObservation, ...] = ()
        self.body_limits = body_limits if body_limits is not None else BodyLimits()
        self.secret = secret or None
        """The API key: ``translate`` scrubs it from every message it builds."""
        self._translate = translate
        self.retries = retries
        self.raise_in_band = in_band_error == "raise"
        self.on_metrics = on_metrics
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.attempts = 0
        self.finished = False
        self.pending: RawSSEError | None = None
        """An error that ends the stream, raised after the events before it."""
        self.error: BaseException | None = None
        """The error the stream ended with, raised again by ``final()``."""
        self.response_started = False
        self.generation_id: str | None = None
        self._final: ChatResult | None = None
        self._end: float | None = None
        self._metrics_sent = False
        self.resume: ResumeCore | None = None
        """The resume policy's state, when the stream has one."""
        self.announce: list[ChatEvent] = []
        """``Continued`` events to deliver before the next request's events."""
        self._build: Callable[[list[Any], dict[str, Any]], bytes] | None = None
        self._next_body: bytes | None = None
        self._part_first_attempt = 1
        self._parts: list[StreamMetrics] = []
        self._reset(now)

    def resume_with(
        self, resume: ResumeCore, build: Callable[[list[Any], dict[str, Any]], bytes]
    ) -> None:
        """Continue this stream as ``resume`` decides; ``build`` makes a request body
        from messages and the other body fields."""
        self.resume = resume
        self._build = build

    def take_body(self) -> bytes | None:
        """The body of the next request when it is a continuation (else None: the same)."""
        body, self._next_body = self._next_body, None
        return body

    def take_announce(self) -> list[ChatEvent]:
        events, self.announce = self.announce, []
        return events

    def _reset(self, now: float) -> None:
        self.decoder = ChatDecoder()
        self.accumulator = ChatAccumulator()
        self.content: ContentDecoder | None = None
        self.content_seen = False
        self.response_started = False
        self._ttfb: float | None = None
        self._ttft: float | None = None
        self._gaps = array("d")  # 8 bytes a gap; a float in a list costs 32
        self._content_events = 0
        self._events = 0
        self._keepalives = 0
        self._reads = 0
        self._bytes = 0
        self.done_at: float | None = None
        """When ``[DONE]`` arrived: the body is then read only until ``DONE_GRACE`` later."""

    # -- attempts -------------------------------------------------------------

    def begin_attempt(self, now: float) -> None:
        self.attempts += 1
        if self.attempts > 1:
            self._reset(now)
        elif self._observers and self._request is not None:
            started = (o.start(self._request) for o in self._observers)
            self._observations = tuple(o for o in started if o is not None)
        self.clocks.begin_attempt(now)

    def check_head(
        self, status: int, headers: Mapping[str, str], encoding: str | None = None
    ) -> bool:
        """True when the answer is a stream to read; False when it is an error whose body
        the shell must read and pass to ``head_error``.  ``encoding``: the body's
        ``Content-Encoding`` still to decode (default: the header's)."""
        if 200 <= status < 300 and _is_event_stream(headers.get("content-type", "")):
            if encoding is None:
                encoding = headers.get("content-encoding", "")
            if encoding:
                self.content = ContentDecoder(encoding, inflation=self.body_limits.inflation)
            self.response_started = True
            self.generation_id = headers.get("x-generation-id")
            return True
        return False

    def head_error(self, status: int, headers: Mapping[str, str], body: bytes) -> RawSSEError:
        if 200 <= status < 300:
            return unexpected_content("a text/event-stream answer", status, headers, body)
        return status_error(status, dict(headers.items()), body)

    def plain_result(
        self, status: int, headers: Mapping[str, str], body: bytes, now: float
    ) -> ChatResult:
        """The result of a ``stream=False`` answer (its body read up to one byte past
        ``completion_body``); an error status raises its error."""
        if not 200 <= status < 300:
            raise self.head_error(status, headers, body)
        cap = self.body_limits.completion_body
        if len(body) > cap:
            raise BodyError(
                f"the answer is longer than {cap} bytes; see BodyLimits.completion_body"
            )
        result = result_from_completion(status, headers, body)
        self.plain_end(now, result)
        return result

    def total_overdue(self, now: float) -> TotalTimeout | None:
        """For a ``stream=False`` request: ``TotalTimeout`` once ``total`` has passed."""
        total = self.timeouts.total
        if total is None or now < self.clocks.start + total:
            return None
        return TotalTimeout(f"the request took longer than {total} s", timeout=total)

    def retry_after(self, err: RawSSEError, now: float) -> float | None:
        """Seconds to wait before the next attempt, or None when ``err`` is final.

        Retries happen only before the first content event, within ``retries``
        and ``total``, for the errors ``retry_delay`` retries.
        """
        if self.content_seen or self.attempts - self._part_first_attempt >= self.retries:
            return None
        tries = self.attempts - self._part_first_attempt
        delay = retry_delay(err, tries, self.retry_delay, self.max_retry_delay)
        if delay is None:
            return None
        total = self.timeouts.total
        if total is not None and now + delay >= self.clocks.start + total:
            return None
        return delay

    # -- body -----------------------------------------------------------------

    @property
    def backlog(self) -> bool:
        """Compressed bytes are still waiting: call ``feed(b"", now)`` before reading more."""
        body = self.content
        return body is not None and body.backlog and self.done_at is None

    def feed(self, chunk: bytes, now: float) -> list[ChatEvent]:
        """Decode one body chunk; return the events to yield (``pending`` may be set).

        A compressed chunk is decoded 1 MiB at a time (``backlog``).  A passed
        ``total``, ``first_token`` or ``stall`` deadline sets ``pending`` to the
        timeout, however fast bytes arrive.
        """
        clocks = self.clocks
        if chunk:
            self._reads += 1
            self._bytes += len(chunk)
        if self._ttfb is None:
            self._ttfb = now - clocks.attempt_start
        if self.done_at is not None:  # bytes after [DONE]: counted, never decoded
            return []
        events: list[ChatEvent] = []
        try:
            body = self.content
            if body is None:
                events = self.decoder.feed(chunk)
            else:
                body.feed(chunk)
                for _ in range(PIECES_PER_FEED):
                    piece = body.read()
                    if not piece:
                        break
                    events += self.decoder.feed(piece)
        except DecodeError as exc:
            events += exc.events
            self.pending = exc
        except BodyError as exc:
            self.pending = exc
        if self.decoder.done:
            self.done_at = now
        if not events:
            if self.pending is None:
                self._check_clocks(now)
            if self.pending is not None and self.resume is None:
                self._stop(status_of(self.pending), now)
            return events
        add = self.accumulator.add
        content = _CONTENT
        n_content = 0
        in_band = False
        for event in events:
            add(event)
            kind = type(event)
            if kind in content:
                n_content += 1
            elif kind is KeepAlive:
                self._keepalives += 1
            elif kind is InBandError:
                in_band = True
        self._events += len(events)
        if n_content:
            self._content_events += n_content
            if clocks.first_content is None:
                clocks.first_content = now
                self._ttft = now - clocks.attempt_start
                self.content_seen = True
            else:
                self._gaps.append(now - clocks.last_content)
            clocks.last_content = now
        if in_band and self.raise_in_band:  # the events before the first are delivered
            cut = next(i for i, event in enumerate(events) if type(event) is InBandError)
            error = events[cut]
            assert isinstance(error, InBandError)
            self.pending = StreamError.from_event(error)
            events = events[:cut]
        if self.pending is None and events and type(events[-1]) is not Done:
            self._check_clocks(now)
        if self.resume is not None:
            return self._resumed(events)
        if self.pending is not None:
            self._stop(status_of(self.pending), now)
        return events

    def _resumed(self, events: list[ChatEvent]) -> list[ChatEvent]:
        """``events`` as the resume policy delivers them (it may set ``pending``)."""
        resume = self.resume
        assert resume is not None
        events = resume.feed(events)
        if resume.pending is not None and self.pending is None:
            self.pending = resume.pending
        return events

    def take(self, chunk: bytes | None, now: float) -> list[ChatEvent]:
        """The events of one read: ``chunk`` (``b""`` drains the ``backlog``), or None
        at the end of the body."""
        return self.end_of_body(now) if chunk is None else self.feed(chunk, now)

    def read_deadline(self, now: float) -> float | None:
        """The shell begins a read at ``now``: the moment it must end (``DONE_GRACE``
        after ``[DONE]``; else the clocks' deadline)."""
        self.clocks.read_start = now
        if self.done_at is not None:
            return self.done_at + DONE_GRACE
        return self.clocks.deadline()

    def ends_body(self, exc: BaseException) -> bool:
        """True when a failed read ends the body instead: after ``[DONE]``, the grace's
        timeout or a broken connection (not a cancellation) is its end."""
        return self.done_at is not None and isinstance(exc, Exception)

    def _check_clocks(self, now: float) -> None:
        clocks = self.clocks
        due = clocks.event_deadline()  # once per read: the usual answer, "not yet", in one call
        if due is not None and now >= due:
            found = clocks.expired(now, idle=False)
            if found is not None:
                self.pending = self._timeout(found)

    def overdue(self, now: float) -> StreamTimeout | None:
        """Between events: the timeout that has fired (the stream then ends with it).

        Under a resume policy the timeout becomes ``pending`` instead: the events of
        this read, already counted as delivered, are still handed out, and ``decide``
        then continues the stream after them."""
        if self.resume is not None and self.pending is not None:
            return None
        found = self.clocks.expired(now, idle=False)
        if found is None:
            return None
        err = self._timeout(found)
        if self.resume is not None:
            self.pending = err
            return None
        self.fail(err, now)
        return err

    def end_of_body(self, now: float) -> list[ChatEvent]:
        """The body ended cleanly; return the last events (``pending`` may be set)."""
        events: list[ChatEvent] = []
        try:
            content = self.content
            if content is not None and self.done_at is None:
                # ``backlog`` is empty here: the shells drain it before reading on.
                events += self.decoder.feed(content.read() + content.flush())
            events += self.decoder.close()
        except DecodeError as exc:
            events += exc.events
            self.pending = exc
        except BodyError as exc:
            self.pending = exc
        for event in events:
            self.accumulator.add(event)
        if self.resume is not None:
            return self._resumed_end(events, now)
        if self.pending is not None:
            self._stop(status_of(self.pending), now)
            return events
        # ``stream_status``: [DONE], or every choice finished and usage arrived
        # (some OpenAI-compatible servers end without [DONE], or with an unterminated one).
        status = self.accumulator.status(END_EOF)
        if status is ChatStatus.COMPLETE or status is ChatStatus.ERROR:
            self._stop(status, now)
        else:
            self.pending = IncompleteStreamError(
                "the connection closed before the stream finished (no [DONE])"
            )
            self._stop(ChatStatus.TRUNCATED, now)
        return events

    def _resumed_end(self, events: list[ChatEvent], now: float) -> list[ChatEvent]:
        """``end_of_body`` under a resume policy: a failure stays ``pending`` for
        ``decide``; a clean end may still continue (``length``, another choice)."""
        resume = self.resume
        assert resume is not None
        events = self._resumed(events)
        if self.pending is not None:
            return events
        status = self.accumulator.status(END_EOF)
        if status is not ChatStatus.COMPLETE and status is not ChatStatus.ERROR:
            self.pending = IncompleteStreamError(
                "the connection closed before the stream finished (no [DONE])"
            )
            return events
        events += resume.end_part()
        if resume.pending is not None:
            self.pending = resume.pending
            return events
        decision = resume.decide(None, now=now, deadline=self._deadline())
        if isinstance(decision, Continue):
            self._continue(decision, now, status)
            return events
        if decision.error is not None:  # a continuation owed but not possible
            self.fail(decision.error, now)
            self.pending = decision.error
            return events
        events += decision.events
        self._stop(status, now)
        return events

    def _deadline(self) -> float | None:
        total = self.timeouts.total
        return None if total is None else self.clocks.start + total

    def _continue(
        self, decision: Continue, now: float, status: ChatStatus, err: BaseException | None = None
    ) -> None:
        """Start a continuation: the next request's body, the seam event, the metrics
        of the request that ends here."""
        assert self._build is not None
        part = dataclasses.replace(
            self._part_metrics(now), status=str(status.value), total=now - self.clocks.start
        )
        self._parts.append(part)
        # The next attempt's clocks start now: the Continued event and the rest of
        # this read are handed out before it connects, and the deadlines checked
        # between them must not see the old request's stall.
        self.clocks.begin_attempt(now)
        self._next_body = self._build(decision.messages, decision.params)
        self.announce.append(decision.event)
        self._part_first_attempt = self.attempts + 1
        for observation in self._observations:
            observation.continuation(len(self._parts), err)

    # -- failure --------------------------------------------------------------

    def decide(self, exc: BaseException, now: float, *, finish: bool = True) -> Decision:
        """The one decision after a failed attempt: ``Retry(delay)`` or ``GiveUp(error)``.

        Foreign exceptions are translated (``translate``, given by the client);
        ``retry_after`` says whether and when to try again.  With ``finish`` (a
        stream), giving up also ends the stream: its status, ``partial`` and
        metrics.  The shells only sleep or raise.

        Under a resume policy a trigger (a cut, a timeout after content, a
        retriable in-band error) is continued instead: ``Retry(0)`` with the new
        request body in ``take_body`` and the ``Continued`` event in ``announce``;
        any other final error carries the joined answer as its ``partial``.
        """
        if not isinstance(exc, Exception):  # KeyboardInterrupt, cancellation...
            if finish:
                self.cancel(now)
            return GiveUp(exc)
        if finish and self.finished and exc is self.error:
            return GiveUp(exc)  # the stream already ended with it
        err = exc if isinstance(exc, RawSSEError) else self._translate(exc, self, now)
        if err is None:
            if finish:
                self.fail(exc, now)
            return GiveUp(exc)
        resume = self.resume if finish and not self.finished else None
        if resume is not None and resume.policy.reason_for(err, content=resume.content):
            decision = resume.decide(err, now=now, deadline=self._deadline())
            if isinstance(decision, Continue):
                self._continue(decision, now, status_of(err), err)
                return Retry(0.0)
            return self._give_up(decision.error, exc, now)
        delay = self.retry_after(err, now)
        if delay is not None:
            for observation in self._observations:
                observation.retry(self.attempts, err, delay)
            return Retry(delay)
        if resume is not None:  # no trigger: the error, with the answer so far
            stop = resume.decide(err, now=now)
            assert isinstance(stop, Stop)
            return self._give_up(stop.error, exc, now)
        if finish:
            self.fail(err, now)
        return GiveUp(err, None if err is exc else exc)

    def backoff(self, exc: BaseException, now: float, *, finish: bool = True) -> float:
        """``decide`` for a shell: the seconds to sleep before the next attempt; a
        ``GiveUp`` is raised here (``raise error from cause``)."""
        decision = self.decide(exc, now, finish=finish)
        if isinstance(decision, GiveUp):
            raise decision.error from decision.cause
        return decision.delay

    def _give_up(self, err: RawSSEError | None, exc: BaseException, now: float) -> GiveUp:
        assert err is not None
        self.fail(err, now)
        if err is exc:
            return GiveUp(err)
        return GiveUp(err, err.__cause__ if err.__cause__ is not None else exc)

    def timeout_error(self, now: float) -> StreamTimeout:
        """The typed timeout for a deadline that fired at ``now``."""
        found = self.clocks.expired(now)
        return self._timeout(found if found is not None else (IdleTimeout, self.timeouts.idle))

    def _timeout(self, found: tuple[type[StreamTimeout], float | None]) -> StreamTimeout:
        return timeout_error(*found)

    def fail(self, err: BaseException, now: float) -> None:
        """End the stream with ``err``; set its ``partial`` and the final status."""
        self.error = err  # before _stop: the metrics and observers report it
        if not self.finished:
            self._stop(status_of(err), now)
        if isinstance(err, (StreamInterrupted, DecodeError)):
            err.partial = self._final

    def plain_end(
        self, now: float, result: ChatResult | None = None, error: BaseException | None = None
    ) -> None:
        """A request with ``stream=False`` ended with ``result``, or gave up with
        ``error``: the observers hear of it (``on_metrics`` stays for streams)."""
        if self.finished or not self._observations:
            return
        self.finished = True
        self._end = now
        if result is None:
            cancelled = not isinstance(error, Exception)  # cancellation, KeyboardInterrupt
            status = ChatStatus.CANCELLED if cancelled else status_of(error)
            result = dataclasses.replace(self.accumulator.result(), status=status)
            if not cancelled:
                self.error = error
        self._final = result
        outcome = StreamOutcome(self.metrics(now), result, self._ended_with())
        for observation in self._observations:
            observation.end(outcome)

    def cancel(self, now: float) -> None:
        """The caller stopped early (break, close, task cancellation)."""
        if not self.finished:
            self._stop(ChatStatus.CANCELLED, now)

    def take_ready(self) -> list[ChatEvent] | None:
        """What a shell hands out when ``announce`` is set or the stream ``finished``:
        the ``Continued`` events, or None at the end (its error raised again)."""
        if self.announce:
            return self.take_announce()
        if self.error is not None:
            raise self.error
        return None

    def outcome(self) -> ChatResult:
        """The result of the ended stream (``final()``); its error is raised again."""
        if self.error is not None:
            raise self.error
        return self.result

    def take_pending(self) -> RawSSEError:
        """The pending error, for ``decide`` (which ends the stream or continues it)."""
        err = self.pending
        assert err is not None
        self.pending = None
        return err

    def _stop(self, status: ChatStatus, now: float) -> None:
        self.finished = True
        self._end = now
        result = self.accumulator.result() if self.resume is None else self.resume.result()
        if result.status != status:
            result = dataclasses.replace(result, status=status)
        self._final = result
        self._emit_metrics()

    # -- views ----------------------------------------------------------------

    @property
    def result(self) -> ChatResult:
        if self._final is not None:
            return self._final
        return self.accumulator.result() if self.resume is None else self.resume.result()

    def metrics(self, now: float) -> StreamMetrics:
        if self.resume is None:
            return self._part_metrics(now)
        current = self._part_metrics(now)
        parts = (*self._parts, current)
        joined = join_metrics(parts)
        return dataclasses.replace(
            joined,
            status=current.status,
            total=current.total,
            continuations=self.resume.seams,
            parts=parts if len(parts) > 1 else (),
        )

    def _part_metrics(self, now: float) -> StreamMetrics:
        """The current request's measurements (the stream's, without a resume policy)."""
        result = self.result if self.resume is None else self.accumulator.result()
        usage = result.usage
        gaps = sorted(self._gaps)
        end = self._end if self._end is not None else now
        tps: float | None = None
        first = self.clocks.first_content
        if usage is not None and first is not None:
            tps = tokens_per_second(usage.completion_tokens, self.clocks.last_content - first)
        return StreamMetrics(
            ttft=self._ttft,
            total=end - self.clocks.start if self._end is not None else None,
            attempts=self.attempts - self._part_first_attempt + 1,
            ttfb=self._ttfb,
            status=str(self.result.status.value) if self.finished else None,
            model=result.model,
            provider=result.provider,
            generation_id=self.generation_id or result.id,
            content_events=self._content_events,
            events=self._events,
            keepalives=self._keepalives,
            reads=self._reads,
            bytes_received=self._bytes,
            gap_p50=percentile(gaps, 0.5) if gaps else None,
            gap_p95=percentile(gaps, 0.95) if gaps else None,
            gap_max=gaps[-1] if gaps else None,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            reasoning_tokens=usage.reasoning_tokens if usage else None,
            cost=usage.cost if usage else None,
            tokens_per_second=tps,
            request_model=self.request_model,
            error_type=self._error_type(),
        )

    def _ended_with(self) -> BaseException | None:
        """The error the stream ended with (set, or pending to be raised); None while open."""
        if not self.finished:
            return None
        return self.error if self.error is not None else self.pending

    def _error_type(self) -> str | None:
        err = self._ended_with()
        return None if err is None else type(err).__qualname__

    def _emit_metrics(self) -> None:
        if self._metrics_sent:
            return
        self._metrics_sent = True
        observations = self._observations
        if self.on_metrics is None and not observations and not logger.isEnabledFor(20):
            return  # logging.INFO is 20
        assert self._end is not None
        assert self._final is not None
        metrics = self.metrics(self._end)
        if logger.isEnabledFor(20):
            logger.info("stream %s", metrics.log_line())
        if self.on_metrics is not None:
            self.on_metrics(metrics)
        if observations:
            outcome = StreamOutcome(metrics, self._final, self._ended_with(), tuple(self._gaps))
            for observation in observations:
                observation.end(outcome)
