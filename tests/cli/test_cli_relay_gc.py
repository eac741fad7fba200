"""``rawsse relay`` owns its process: start-up frozen out of the collector, rarer
collections (``serving_gc``); a relay that shares its process (``RelayApp``, or
the command run in a thread) leaves the collector as it was."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading

import pytest

from rawsse import AsyncClient
from rawsse._cli.relay import SERVING_GC_THRESHOLD, _serve
from rawsse.relay import RelayApp


def test_serving_gc_freezes_start_up_and_raises_the_thresholds() -> None:
    code = (
        "import gc\n"
        "from rawsse._cli.relay import SERVING_GC_THRESHOLD, serving_gc\n"
        "serving_gc()\n"
        "assert gc.get_threshold() == SERVING_GC_THRESHOLD, gc.get_threshold()\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert SERVING_GC_THRESHOLD[0] > gc.get_threshold()[0]


def test_a_relay_sharing_its_process_leaves_the_collector_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    async def serve(self: object, sockets: object = None) -> None:
        return None  # start-up is what counts: stop at once

    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    RelayApp(AsyncClient(base_url="http://127.0.0.1:9/api/v1", api_key=""), models=["m"])
    made: list[RelayApp] = []

    def make() -> tuple[RelayApp, AsyncClient]:
        client = AsyncClient(base_url="http://127.0.0.1:9/api/v1", api_key="")
        made.append(RelayApp(client, models=["m"]))
        return made[-1], client

    out: list[int] = []
    thread = threading.Thread(
        target=lambda: out.append(
            _serve(make, "127.0.0.1", 0, "", "rawsse relay", sys.stdout, sys.stderr)
        )
    )
    thread.start()
    thread.join(30)
    assert made
    assert out == [0]
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
