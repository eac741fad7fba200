"""``[DONE]`` ends the stream: a server that keeps the connection open after it is
not waited for, on sync, asyncio and trio, over real TCP.

The client reads on for ``DONE_GRACE`` only (so a server that closes promptly still
has its every byte recorded, ending ``eof``), then closes the connection and ends
the stream as complete (see ``test_client_done_grace``)."""

from __future__ import annotations

from rawsse import ChatStatus, Timeouts
from tests.server import DONE, USAGE, Script, Send, ServerThread, Sleep, chunk, drive


def test_a_connection_held_open_after_done_ends_the_stream_at_once(
    server: ServerThread, mode: str
) -> None:
    steps = [
        Send(chunk(content="Hel")),
        Send(chunk(content="lo", finish="stop", usage=USAGE) + DONE),
        Sleep(5),  # the server neither sends nor closes
    ]
    server.expect(Script(steps=steps))
    limits = Timeouts(connect=2.0, first_token=2.0, idle=1.0, stall=2.0, total=4.0)
    out = drive(mode, server.url, client={"timeout": limits, "retries": 0})
    assert out.error is None
    assert out.result is not None
    assert out.result.text == "Hello"
    assert out.result.status is ChatStatus.COMPLETE
    assert out.ended - out.started < 0.9  # before the idle limit could fire
    seen = server.wait_disconnect()  # and the connection was closed, not left open
    assert seen is not None
