"""Context-manager plumbing shared by everything that is closed after use."""

from __future__ import annotations

from types import TracebackType

__all__ = ["AsyncClosesOnExit", "ClosesOnExit"]


class ClosesOnExit:
    """``with obj:`` calls ``obj.close()`` on the way out (``__enter__`` is the class's own)."""

    def close(self) -> None:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosesOnExit:
    """``async with obj:`` awaits ``obj.aclose()`` on the way out."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
