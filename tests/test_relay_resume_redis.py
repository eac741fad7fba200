"""Three relay processes (uvicorn) sharing one Redis, backed by the fixture server with recorded
timing: reconnecting to another instance, and taking over from one that was killed."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest

from .redis_server import RedisServer, free_port, require_redis_server
from .relay_helpers import FixtureServer, parse_events
from .relay_process import RelayProcess
from .test_relay_resume import CHAT, ids_of, read_until, recorded_text, text_of

LEASE = 2.0


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    require_redis_server()
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def upstream_log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(scope="module")
def fixtures(upstream_log: io.StringIO) -> Iterator[FixtureServer]:
    with FixtureServer(log=upstream_log) as server:
        yield server


@pytest.fixture
def instances(redis: RedisServer, fixtures: FixtureServer) -> Iterator[list[RelayProcess]]:
    """Three relay processes on one Redis (started lazily would cost as much: start all)."""
    started: list[RelayProcess] = []
    try:
        for _ in range(3):
            process = RelayProcess(
                fixtures.base_url, redis.url, free_port(), speed="0.5", lease=LEASE
            )
            started.append(process)
        yield started
    finally:
        for process in started:
            process.stop()


def whole(data: bytes) -> bytes:
    """The complete events in ``data`` (a connection dropped mid-event loses the rest)."""
    return data[: data.rindex(b"\n\n") + 2]


def test_reconnecting_to_another_instance_gets_exactly_the_remaining_events(
    instances: list[RelayProcess], fixtures: FixtureServer
) -> None:
    a, b, _ = instances
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", a.url + "/chat", json=CHAT) as response:
            stream_id = response.headers["x-rawsse-stream-id"]
            first = whole(read_until(response.iter_raw(), 4))
        last = ids_of(first)[-1]
        rest = http.get(f"{b.url}/chat/{stream_id}", headers={"last-event-id": str(last)})
    assert rest.status_code == 200
    assert ids_of(rest.content) == list(range(last + 1, last + 1 + len(ids_of(rest.content))))
    events = parse_events(first) + parse_events(rest.content)
    assert text_of(events) == recorded_text(fixtures)
    assert [n for n, _ in events].count("start") == 1
    assert events[-1][0] == "done"
    assert "continued" not in [n for n, _ in events]


def requests_made(log: io.StringIO) -> int:
    return log.getvalue().count("/chat/completions")


def test_a_killed_instance_is_taken_over_and_the_answer_completes_exactly(
    instances: list[RelayProcess], fixtures: FixtureServer, upstream_log: io.StringIO
) -> None:
    a, b, _ = instances
    before = requests_made(upstream_log)
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", a.url + "/chat", json=CHAT) as response:
            stream_id = response.headers["x-rawsse-stream-id"]
            first = whole(read_until(response.iter_raw(), 6))
            a.kill()
            killed = time.monotonic()
        last = ids_of(first)[-1]
        arrivals: list[tuple[float, bytes]] = []
        with http.stream(
            "GET", f"{b.url}/chat/{stream_id}", headers={"last-event-id": str(last)}
        ) as rest:
            for chunk in rest.iter_raw():
                arrivals.append((time.monotonic(), chunk))  # noqa: PERF401 - as it arrives
    body = b"".join(c for _, c in arrivals)
    events = parse_events(first) + parse_events(body)
    names = [n for n, _ in events]
    assert names.count("continued") == 1
    assert events[names.index("continued")][1] == {"reason": "cut", "attempt": 1}
    continued_at = next(t for t, c in arrivals if b"event: continued" in c)
    assert continued_at - killed < LEASE + 2.5  # the lease lapses; a follower checks each second
    assert ids_of(first) + ids_of(body) == list(range(1, len(events) + 1))
    assert text_of(events) == recorded_text(fixtures)  # nothing lost, nothing twice
    assert events[-1][0] == "done"
    time.sleep(0.5)
    assert requests_made(upstream_log) - before == 2  # the answer and one continuation


def test_racing_instances_make_exactly_one_continuation(
    instances: list[RelayProcess], fixtures: FixtureServer, upstream_log: io.StringIO
) -> None:
    a, b, c = instances
    before = requests_made(upstream_log)
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", a.url + "/chat", json=CHAT) as response,
    ):
        stream_id = response.headers["x-rawsse-stream-id"]
        read_until(response.iter_raw(), 3)
        # Followers on both other instances, then the producer dies.
        with (
            http.stream("GET", f"{b.url}/chat/{stream_id}") as on_b,
            http.stream("GET", f"{c.url}/chat/{stream_id}") as on_c,
        ):
            a.kill()
            bodies = [on_b.read(), on_c.read()]
    results = [parse_events(body) for body in bodies]
    assert results[0] == results[1]
    assert [n for n, _ in results[0]].count("continued") == 1
    assert text_of(results[0]) == recorded_text(fixtures)
    assert ids_of(bodies[0]) == list(range(1, len(results[0]) + 1))
    time.sleep(0.5)
    assert requests_made(upstream_log) - before == 2


def test_unknown_ids_are_404_on_every_instance(instances: list[RelayProcess]) -> None:
    for instance in instances:
        response = httpx.get(f"{instance.url}/chat/{'x' * 24}")
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "unknown or expired stream"
