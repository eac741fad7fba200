"""``rawsse relay --workers N``: N forked processes serve one port; one that ends is
replaced; they stop with the command, also when it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from rawsse.testing import FixtureServer
from tests.cli.test_cli_relay import CHAT, command, events, upstream  # noqa: F401

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="--workers needs fork()")


def children(pid: int, count: int) -> list[int]:
    """The ``count`` worker processes of ``pid`` (forked just after its URL is printed)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("/proc does not list child processes here")
    deadline = time.monotonic() + 10
    while len(found := [int(p) for p in path.read_text().split()]) < count:
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended


def wait_gone(pids: list[int], within: float) -> None:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, [p for p in pids if alive(p)]
        time.sleep(0.05)


def chat(url: str) -> str:
    response = httpx.post(url + "chat", json=CHAT, timeout=30)
    assert response.status_code == 200
    found = events(response.content)
    assert found[-1][0] == "done"
    return "".join(str(data["text"]) for name, data in found if name == "text")


def test_workers_serve_and_stop_with_the_parent(upstream: FixtureServer) -> None:  # noqa: F811
    argv = ("relay", "--upstream", upstream.base_url, "--port", "0", "--workers", "3")
    with command(*argv) as (url, proc):
        workers = children(proc.pid, 3)
        assert len(workers) == 3
        with ThreadPoolExecutor(8) as pool:
            texts = list(pool.map(chat, [url] * 24))
        assert texts[0]
        assert texts == [texts[0]] * 24  # every worker relays the same recording exactly
        assert all(alive(p) for p in workers)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        wait_gone(workers, 5)


def test_workers_end_when_the_parent_is_killed(upstream: FixtureServer) -> None:  # noqa: F811
    argv = ("relay", "--upstream", upstream.base_url, "--port", "0", "--workers", "2")
    with command(*argv) as (url, proc):
        workers = children(proc.pid, 2)
        assert len(workers) == 2
        assert chat(url)
        proc.kill()
        proc.wait()
        wait_gone(workers, 5)  # no orphan keeps the port


def test_a_worker_that_ends_is_replaced(upstream: FixtureServer) -> None:  # noqa: F811
    argv = ("relay", "--upstream", upstream.base_url, "--port", "0", "--workers", "2")
    with command(*argv) as (url, proc):
        first, second = children(proc.pid, 2)
        os.kill(first, signal.SIGKILL)
        wait_gone([first], 5)
        deadline = time.monotonic() + 10
        while len(now := children(proc.pid, 1)) < 2 or first in now:
            assert time.monotonic() < deadline, now
            time.sleep(0.05)
        assert second in now
        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(chat, [url] * 8))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        assert f"worker {first} ended (signal 9); starting another" in proc.stderr.read()
        wait_gone(now, 5)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--workers", "0"), "argument --workers: must be >= 1: '0'"),
        (("--workers", "two"), "argument --workers: not a whole number: 'two'"),
        (("--workers", "2", "--store", "memory"), "with --workers, use --store redis://"),
    ],
)
def test_workers_refused_where_they_cannot_work(extra: tuple[str, ...], message: str) -> None:
    argv = ["relay", "--upstream", "http://127.0.0.1:9/v1", "--models", "m", *extra]
    done = subprocess.run(
        [sys.executable, "-m", "rawsse", *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert message in done.stderr
