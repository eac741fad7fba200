"""``rawsse relay --upstream URL``: serve ``RelayApp`` under uvicorn; ``rawsse demo --browser``.

``relay`` streams from an OpenAI-compatible upstream (``--upstream``, a base URL
like ``--base-url``) to browsers, at ``/`` of ``http://HOST:PORT/``.  The key is
``$OPENROUTER_API_KEY``, sent to OpenRouter only (the client's rule); a local
upstream such as ``rawsse serve`` needs none.  ``demo --browser`` runs the whole
chain with no key: the fixture server (shipped recordings) -> the relay -> the
demo page, whose URL is printed first and opened in a browser where there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import socket
import threading
import time
import webbrowser
from collections.abc import Callable, Coroutine
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from .._async_client import AsyncClient
from .._errors import CassetteError
from .._server import FixtureServer
from ..relay import DEFAULT_MAX_BODY, RelayApp, add_store_arguments, open_store, store_options
from ..relay._store_spec import REDIS_SCHEMES
from ._args import Command, add_listen_arguments, checked_arg
from ._output import ExitCode, Style, std_streams

__all__ = ["COMMAND", "DEFAULT_PORT", "add_arguments", "run", "run_demo_browser"]

DEFAULT_PORT = 8788
MISSING_UVICORN = (
    "rawsse relay needs uvicorn, the ASGI server: pip install 'rawsse[relay]' "
    "(or serve rawsse.relay.RelayApp with your own ASGI server)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``relay``'s arguments."""
    parser.add_argument(
        "--upstream",
        required=True,
        metavar="URL",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8787/api/v1 (rawsse serve)",
    )
    add_listen_arguments(parser, DEFAULT_PORT)
    parser.add_argument(
        "--models",
        type=_models_arg,
        metavar="A,B",
        help="the models browsers may ask for (default: the upstream's GET /models)",
    )
    parser.add_argument("--demo", action="store_true", help="serve the demo page at /")
    _add_relay_options(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an upstream stream that breaks (cut, stall, retriable in-band error) "
        "in a new request from the text so far; browsers see one stream with a "
        "'continued' event at the seam",
    )
    add_store_arguments(parser)
    parser.add_argument(
        "--workers",
        type=_workers_arg,
        default=1,
        metavar="N",
        help="processes serving the same port, each with its own event loop (default 1); "
        "with more than one, resumable streams need --store redis://...",
    )


def _add_relay_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--heartbeat",
        type=_seconds_arg,
        default=15.0,
        metavar="S",
        help="a heartbeat comment after S seconds of silence (default 15; 0 = none)",
    )
    parser.add_argument(
        "--coalesce",
        type=_seconds_arg,
        default=0.0,
        metavar="S",
        help="gather text deltas into one event per S seconds (default 0 = off)",
    )
    parser.add_argument(
        "--max-body",
        type=_bytes_arg,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help=f"the largest request body (default {DEFAULT_MAX_BODY}; 413 beyond it)",
    )


_seconds_arg = checked_arg(float, lambda s: s >= 0, "not a number: {}", "must be >= 0 seconds: {}")
_workers_arg = checked_arg(int, lambda n: n >= 1, "not a whole number: {}", "must be >= 1: {}")
_bytes_arg = checked_arg(
    int, lambda n: n >= 1, "not a whole number of bytes: {}", "must be >= 1 byte: {}"
)


def _models_arg(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise argparse.ArgumentTypeError("list at least one model: --models a,b")
    return models


def _upstream_models(upstream: str) -> list[str]:
    response = httpx.get(upstream.rstrip("/") + "/models", timeout=10)
    response.raise_for_status()
    data = response.json().get("data")
    models = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if not models:
        raise ValueError("the upstream lists no models")
    return models


PR_SET_PDEATHSIG = 1  # prctl(2)

SERVING_GC_THRESHOLD = (50_000, 50, 100)
"""The collector's thresholds in a relay process (the interpreter's default is
``(700, 10, 10)``): every collection pauses every open stream, and a full one
walks all their objects."""


def serving_gc() -> None:
    """Tune the garbage collector for a process that only serves streams.

    Start-up's objects (modules, classes, the app) are frozen out of every
    collection, and collections run less often: with thousands of streams open,
    a full collection otherwise pauses them all for tens of milliseconds.  Only
    for a process the relay owns (``rawsse relay``): the settings are global.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLD)


def _serve(
    make: Callable[[], tuple[RelayApp, AsyncClient]],
    host: str,
    port: int,
    note: str,
    name: str,
    out: IO[str],
    err: IO[str],
    *,
    open_page: bool = False,
    workers: int = 1,
) -> int:
    try:
        import uvicorn
    except ImportError:
        err.write(f"{name}: error: {MISSING_UVICORN}\n")
        return ExitCode.USAGE
    style = Style.detect(out, err)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        hint = " (try --port 0 for a free port)" if port else ""
        err.write(f"{name}: error: cannot listen on {host}:{port}: {exc.strerror or exc}{hint}\n")
        return ExitCode.USAGE
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    # The URL first, flushed at once: scripts read this line through a pipe.
    out.write(f"{url}  " + style.dim(note) + "\n")
    out.flush()
    out.write(style.dim("Ctrl-C stops the relay.") + "\n")
    out.flush()
    if open_page:
        with contextlib.suppress(webbrowser.Error):  # no browser: the URL is printed
            webbrowser.open(url)

    async def main() -> None:
        app, client = make()
        if owned:  # start-up is over: this process only serves streams now
            serving_gc()
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
        try:
            await uvicorn.Server(config).serve(sockets=[sock])
        finally:
            await client.aclose()
            if app.store is not None:
                await app.store.aclose()

    # uvicorn stops gracefully on SIGINT or SIGTERM, then raises the signal again for
    # the handler it found: ours makes SIGTERM a normal stop (exit 0), as Ctrl-C is.
    previous = None
    # Run in a thread, the relay shares its process: its signals and collector stay.
    owned = threading.current_thread() is threading.main_thread()
    if owned:
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        if workers > 1:
            _supervise(main, workers, name, err)
        else:
            _event_loop_run(main())
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    err.write(f"{name}: stopped\n")
    return ExitCode.OK


def _supervise(
    main: Callable[[], Coroutine[Any, Any, None]], workers: int, name: str, err: IO[str]
) -> None:
    """Serve from ``workers`` forked processes, replacing any that ends, until SIGTERM
    or SIGINT; then stop them all.  This process runs no event loop: it forks from a
    clean state, and each worker builds its own app and loop."""
    stopping: list[int] = []
    handlers = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        handlers[sig] = signal.signal(sig, lambda signum, frame: stopping.append(signum))
    children = {_fork_worker(main) for _ in range(workers)}
    last_fork = time.monotonic()
    try:
        while not stopping:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0 or pid not in children:
                time.sleep(0.05)  # a signal cuts it short
                continue
            children.discard(pid)
            err.write(f"{name}: worker {pid} ended ({_ended(status)}); starting another\n")
            err.flush()
            time.sleep(max(0.0, last_fork + 1.0 - time.monotonic()))  # at most one a second
            children.add(_fork_worker(main))
            last_fork = time.monotonic()
    finally:
        _stop_workers(sorted(children))
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def _fork_worker(main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Fork a worker that serves ``main()`` and exits; its pid (in the parent)."""
    pid = os.fork()
    if pid:
        return pid
    status = 0
    try:
        # The command's own handling: SIGTERM stops uvicorn and then exits 0, as Ctrl-C.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _die_with_parent()
        _event_loop_run(main())
    except KeyboardInterrupt:
        pass
    except BaseException:
        status = 1
    finally:
        os._exit(status)  # never back into the command's code: that is the parent's


def _die_with_parent() -> None:
    """On Linux, the kernel ends this worker when the parent dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the line above
            os._exit(0)


def _stop_workers(children: list[int], grace: float = 5.0) -> None:
    """Stop the workers as the parent stopped (SIGTERM, then SIGKILL after ``grace``)."""
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.02)


def _event_loop_run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed (``rawsse[relay]`` brings it), else on
    asyncio's own loop.  The relay's time per event is mostly the event loop's and
    the HTTP parsers' (uvicorn takes httptools by itself when installed); with
    many streams open, an event waits behind the others' in the same loop, so this
    time is also the latency it adds."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def run(args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``rawsse relay``: serve until Ctrl-C or SIGTERM."""
    out, err = std_streams(out, err)
    models = args.models
    if models is None:
        try:
            models = _upstream_models(args.upstream)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            err.write(
                f"rawsse relay: error: cannot list the upstream's models ({exc}); "
                "name them with --models a,b\n"
            )
            return ExitCode.USAGE
    upstream = args.upstream
    try:
        if args.store is not None:
            _check_store(args.store)
        _check_workers(args.workers, args.store)
    except (ValueError, ImportError) as exc:
        err.write(f"rawsse relay: error: {exc}\n")
        return ExitCode.USAGE

    def make() -> tuple[RelayApp, AsyncClient]:
        client = AsyncClient(base_url=upstream)
        app = RelayApp(
            client,
            models=models,
            demo=args.demo,
            heartbeat=args.heartbeat or None,
            coalesce=args.coalesce,
            max_body=args.max_body,
            resume=True if args.resume else None,
            **store_options(args),  # the store's client belongs to the serving loop
        )
        return app, client

    note = f"(rawsse relay: {len(models)} models from {upstream}" + (
        "; demo page at /" if args.demo else ""
    )
    if args.store is not None:
        note += f"; resumable streams in {_store_name(args.store)}"
    note += ")"
    if args.workers > 1:
        note += f" ({args.workers} worker processes)"
    return _serve(make, args.host, args.port, note, "rawsse relay", out, err, workers=args.workers)


def _check_workers(workers: int, store: str | None) -> None:
    """Refuse ``--workers`` where it cannot work: without fork, off the main thread
    (forking a process with other threads running is unsafe), or with a store that
    lives in one process (a browser reconnecting would reach another worker)."""
    if workers == 1:
        return
    if not hasattr(os, "fork"):
        raise ValueError("--workers needs fork(), which this platform lacks")
    if threading.current_thread() is not threading.main_thread():
        raise ValueError("--workers runs only in a process's main thread")
    if store == "memory":
        raise ValueError(
            "--store memory keeps resumable streams in one process; with --workers, "
            "use --store redis://..."
        )


def _check_store(spec: str) -> None:
    """Refuse a bad ``--store`` before serving (the store itself is built in the serving
    loop, which its client belongs to)."""
    if spec == "memory":
        return
    if not spec.startswith(REDIS_SCHEMES):
        open_store(spec)  # raises the ValueError that names the forms
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise ImportError(
            "--store redis://... needs the redis package: pip install 'rawsse[redis]'"
        ) from None


def _store_name(spec: str) -> str:
    """``--store`` as shown: a Redis URL without its password."""
    if spec == "memory":
        return "memory"
    parts = urlsplit(spec)
    if parts.password is None:
        return spec
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


def run_demo_browser(
    args: argparse.Namespace, *, out: IO[str] | None = None, err: IO[str] | None = None
) -> int:
    """``rawsse demo --browser``: fixture server -> relay -> the demo page, no key."""
    out, err = std_streams(out, err)
    try:
        fixtures = FixtureServer(host="127.0.0.1", port=0, speed=args.speed)
    except CassetteError as exc:  # pragma: no cover - the shipped files are tested
        err.write(f"rawsse demo: error: {exc}\n")
        return ExitCode.USAGE
    with fixtures:

        def make() -> tuple[RelayApp, AsyncClient]:
            # The fixture server ignores keys; "" sends none (never the environment's).
            client = AsyncClient(base_url=fixtures.base_url, api_key="", retries=0)
            return RelayApp(client, models=fixtures.models, demo=True), client

        note = f"(rawsse demo: the demo page, relaying the recordings at {fixtures.base_url})"
        return _serve(make, "127.0.0.1", 0, note, "rawsse demo", out, err, open_page=True)


COMMAND = Command(
    "relay",
    help="stream from an upstream to browsers (RelayApp under uvicorn)",
    description=(
        "Serve rawsse.relay.RelayApp under uvicorn: POST /chat streams from the upstream "
        "as the relay event stream, GET /rawsse.js serves the browser client, GET /models "
        "the allowed models, GET / the demo page with --demo. The first line printed is "
        "the relay's URL. The key is $OPENROUTER_API_KEY (sent to OpenRouter only)."
    ),
    epilog="exit codes: 0 stopped by Ctrl-C or SIGTERM, 2 usage error or address in use",
)
