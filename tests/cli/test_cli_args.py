"""Every command's argument types refuse bad values with their own one-line message (exit 2)."""

from __future__ import annotations

import pytest

from rawsse._cli import COMMANDS, build_parser, main

BAD_VALUES = [
    ("serve --port x", "--port: not a port: 'x' (0-65535; 0 picks a free one)"),
    ("serve --port 70000", "--port: not a port: '70000' (0-65535; 0 picks a free one)"),
    ("serve --header-timeout 0", "--header-timeout: not a number of seconds > 0: '0'"),
    ("serve --header-timeout x", "--header-timeout: not a number of seconds > 0: 'x'"),
    ("serve --idle-timeout inf", "--idle-timeout: not a number of seconds > 0: 'inf'"),
    ("serve --max-connections 0", "--max-connections: not a number of connections >= 1: '0'"),
    ("serve --max-connections y", "--max-connections: not a number of connections >= 1: 'y'"),
    ("serve --speed -1", "--speed: not a speed: '-1' (a number >= 0, or 'instant')"),
    ("relay --upstream u --heartbeat -1", "--heartbeat: must be >= 0 seconds: '-1'"),
    ("relay --upstream u --heartbeat x", "--heartbeat: not a number: 'x'"),
    ("relay --upstream u --coalesce nan", "--coalesce: must be >= 0 seconds: 'nan'"),
    ("relay --upstream u --max-body 0", "--max-body: must be >= 1 byte: '0'"),
    ("relay --upstream u --max-body q", "--max-body: not a whole number of bytes: 'q'"),
    ("relay --upstream u --port -3", "--port: not a port: '-3' (0-65535; 0 picks a free one)"),
    ("bench m --runs 0", "--runs: must be >= 1: '0'"),
    ("bench m --runs -1", "--runs: must be >= 0: '-1'"),
    ("bench m --runs x", "--runs: not a whole number: 'x'"),
    ("chat m --retries -1", "--retries: must be >= 0: '-1'"),
    ("inspect f --stall-threshold x", "--stall-threshold: not a number: 'x'"),
    ("replay f --speed x", "--speed: not a number: 'x'"),
    ("demo --speed x", "--speed: not a speed: 'x' (a number >= 0, or 'instant')"),
]


@pytest.mark.parametrize(("line", "message"), BAD_VALUES)
def test_a_bad_value_is_a_usage_error_naming_the_argument(
    line: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(line.split())
    assert exit_info.value.code == 2
    command = line.split()[0]
    assert capsys.readouterr().err.endswith(f"rawsse {command}: error: argument {message}\n")


def test_every_command_is_registered_under_its_name_with_its_run() -> None:
    parser = build_parser()
    for command in COMMANDS:
        name = command.COMMAND.name
        argv = {"relay": ["--upstream", "u"], "inspect": ["f"], "replay": ["f"]}.get(name, [])
        argv += {"chat": ["m"], "record": ["m", "-o", "f"], "bench": ["m"], "stats": ["f"]}.get(
            name, []
        )
        args = parser.parse_args([name, *argv])
        assert args.command == name
        assert args.handler is command.run


def test_the_exit_codes_are_plain_integers() -> None:
    from rawsse._cli._output import ExitCode

    assert [int(code) for code in ExitCode] == [0, 1, 2, 130]
