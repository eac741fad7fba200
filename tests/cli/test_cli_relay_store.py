"""``rawsse relay --store memory``: a real relay process keeps streams resumable."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from rawsse import accumulate, parse_chat_stream
from rawsse._cli import main
from rawsse.testing import FixtureServer

from ..redis_server import RedisServer, require_redis_server
from .test_cli_relay import CHAT, command, events


@pytest.fixture(scope="module")
def upstream() -> Iterator[FixtureServer]:
    with FixtureServer() as server:  # the recorded timing: there is a middle to leave in
        yield server


def ids_of(body: bytes) -> list[int]:
    return [int(line[4:]) for line in body.split(b"\n") if line.startswith(b"id: ")]


def test_store_memory_resumes_a_stream_left_mid_answer(upstream: FixtureServer) -> None:
    fixture = next(f for f in upstream.fixtures if f.id == "rawsse/demo")
    recorded = accumulate(parse_chat_stream(fixture.cassette.body)).text
    argv = ("relay", "--upstream", upstream.base_url, "--port", "0", "--models", "rawsse/demo",
            "--store", "memory", "--linger", "30")  # fmt: skip
    with command(*argv) as (url, _), httpx.Client(timeout=20) as http:
        with http.stream("POST", url + "chat", json=CHAT) as response:
            assert response.status_code == 200
            stream_id = response.headers["x-rawsse-stream-id"]
            data = b""
            for chunk in response.iter_raw():
                data += chunk
                if data.count(b"event: text") >= 3:
                    break
        first = data[: data.rindex(b"\n\n") + 2]  # whole events only
        seen = events(first)
        assert seen[0][0] == "start"
        assert seen[0][1]["stream_id"] == stream_id
        last = ids_of(first)[-1]
        time.sleep(0.2)  # the answer goes on being generated meanwhile
        rest = http.get(url + f"chat/{stream_id}", headers={"last-event-id": str(last)})
        assert rest.status_code == 200
        assert rest.headers["x-rawsse-stream-id"] == stream_id
        assert ids_of(rest.content) == list(range(last + 1, last + 1 + len(ids_of(rest.content))))
        joined = seen + events(rest.content)
        text = "".join(str(d["text"]) for n, d in joined if n == "text" and d["choice"] == 0)
        assert text == recorded
        assert [n for n, _ in joined].count("start") == 1
        assert joined[-1][0] == "done"
        assert joined[-1][1]["status"] == "complete"
        assert 0 < len(events(rest.content)) < len(joined)  # exactly the rest: nothing twice


def test_store_redis_keeps_the_stream_in_redis(upstream: FixtureServer) -> None:
    require_redis_server()
    redis = RedisServer().start()
    try:
        argv = ("relay", "--upstream", upstream.base_url, "--port", "0", "--models",
                "rawsse/demo", "--store", redis.url)  # fmt: skip
        with command(*argv) as (url, _), httpx.Client(timeout=20) as http:
            response = http.post(url + "chat", json=CHAT)
            stream_id = response.headers["x-rawsse-stream-id"]
            whole = events(response.content)
            assert whole[-1][0] == "done"
            again = http.get(url + f"chat/{stream_id}", headers={"last-event-id": "2"})
            assert events(again.content) == whole[2:]
    finally:
        redis.close()


def test_without_store_there_is_nothing_to_resume(upstream: FixtureServer) -> None:
    argv = ("relay", "--upstream", upstream.base_url, "--port", "0", "--models", "rawsse/demo")
    with command(*argv) as (url, _):
        response = httpx.post(url + "chat", json=CHAT, timeout=20)
        assert "x-rawsse-stream-id" not in response.headers
        assert events(response.content)[0][1]["stream_id"] is None
        assert httpx.get(url + "chat/" + "a" * 22).status_code == 404


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--store", "sqlite:///x"], "--store is 'memory' or a Redis URL"),
        (["--store", "memory", "--linger", "-1"], "must be >= 0 seconds"),
    ],
)
def test_bad_store_flags_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code: object
    try:
        code = main(["relay", "--upstream", "http://127.0.0.1:9/api/v1", "--models", "m", *argv])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_the_store_url_is_shown_without_its_password(upstream: FixtureServer) -> None:
    argv = ["relay", "--upstream", upstream.base_url, "--port", "0", "--models", "rawsse/demo",
            "--store", "redis://user:sekrit@127.0.0.1:9/0"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "rawsse", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the URL and the note: the relay listens
    # Serving (signals handled) once it answers; the store is not used until a stream.
    assert httpx.get(first.split()[0] + "models", timeout=20).status_code == 200
    proc.terminate()
    out, err = proc.communicate(timeout=15)
    assert first.startswith("http://127.0.0.1:")
    assert "redis://user:***@127.0.0.1:9/0" in first
    assert "sekrit" not in first + out + err
