"""``rawsse chat --resume`` and ``rawsse serve --seam``."""

from __future__ import annotations

import json
import urllib.request

import pytest

from rawsse import accumulate, parse_chat_stream
from rawsse.testing import FixtureServer
from tests.cli.test_cli_debug import cli, local, no_traceback
from tests.server import DONE, USAGE, Reset, ServerThread, chunk, sse_script

from ..conftest import FIXTURES


def test_chat_resume_continues_a_cut_stream(server: ServerThread) -> None:
    server.expect(
        sse_script(chunk(content="Hello") + chunk(content=" wor"), then=[Reset()]),
        sse_script(
            chunk(content="world") + chunk(finish="stop", usage=USAGE) + DONE,
        ),
    )
    proc = local(server, "m/x", "hi", "--resume")
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    text, summary = proc.stdout.splitlines()
    assert text == "Hello world"
    assert "| continued 1x |" in summary
    assert summary.endswith("status complete")
    assert proc.stderr == " [continued after cut, #1] "
    request = server.exchanges[1].json()
    assert request["messages"][-1] == {"role": "assistant", "content": "Hello wor"}


def test_chat_without_resume_stops_at_the_cut(server: ServerThread) -> None:
    server.expect(sse_script(chunk(content="Hello") + chunk(content=" wor"), then=[Reset()]))
    proc = local(server, "m/x", "hi")
    assert proc.returncode == 1
    assert len(server.exchanges) == 1


@pytest.mark.parametrize(("flag", "repeat"), [("repeat:3", "lp."), ("none", ""), ("trim", "")])
def test_serve_seam_flag_sets_the_servers_quirk(flag: str, repeat: str) -> None:
    from rawsse._cli import build_parser

    args = build_parser().parse_args(["serve", "--seam", flag])
    with FixtureServer(FIXTURES / "cassettes", speed=0, seam=args.seam) as server:
        body = {
            "model": "m",
            "stream": True,
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "Hello! I'm here and ready to help."},
            ],
        }
        request = urllib.request.Request(
            server.base_url + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"X-Rawsse-Cassette": "plain_text", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
    text = accumulate(parse_chat_stream(data)).text
    rest = " What would you like to work on today?"
    assert text == (rest[1:] if flag == "trim" else repeat + rest)


def test_serve_seam_flag_rejects_nonsense() -> None:
    proc = cli("serve", "--seam", "sideways")
    assert proc.returncode == 2
    assert "seam quirk" in proc.stderr
