"""An asyncio server in a background thread: start, serve, close.

``LoopThread(handler, host, port)`` listens on its own event loop in a daemon
thread and runs ``handler(reader, writer)`` per connection, so sync code,
asyncio and trio can all talk to it.  ``close()`` cancels every connection
(mid-response ones included) so no task is left pending when the loop closes.
``exception_handler`` gets what the loop itself reports (an accept that failed,
say) instead of the default logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ExceptionHandler", "Handler", "LoopThread"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class LoopThread:
    """Serve ``handler`` on ``host:port`` (0: a free port) from a background thread."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "rawsse-server",
        limit: int = 64 * 1024,
        backlog: int = 100,
        exception_handler: ExceptionHandler | None = None,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.name = name
        self.limit = limit
        self.backlog = backlog
        self.exception_handler = exception_handler
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> LoopThread:
        """Listen and serve; returns once the socket listens (``port`` is then the real one).

        Raises ``OSError`` when the address cannot be bound.
        """
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            if self.exception_handler is not None:
                loop.set_exception_handler(self.exception_handler)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # handed to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self.loop = loop
        self._thread = thread
        return self

    def close(self) -> None:
        """Stop serving: open connections are dropped; waits for the thread to end."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None:
            return
        self.loop = self._thread = None
        with contextlib.suppress(RuntimeError):  # the loop already stopped
            loop.call_soon_threadsafe(loop.stop)
        thread.join()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self.handler, self.host, self.port, limit=self.limit, backlog=self.backlog
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        # Let accepts already under way create their tasks, then cancel every task
        # (connections mid-response included) so none is left pending at loop close.
        await asyncio.sleep(0)
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
