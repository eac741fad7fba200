"""The OpenAI-compatible API the fixture server emulates, without I/O.

Which cassettes it serves under which model ids (``load_fixtures``), the
``/models`` document, which cassette a request picks, and the non-streaming
answer a stream adds up to (``completion_from_result``, next to its inverse in
``rawsse._completion``).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.resources
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._accumulate import accumulate
from .._cassette import Cassette, loads_cassette
from .._chat import parse_chat_stream
from .._completion import completion_from_result
from .._errors import CassetteError, MalformedChunk
from ._http import BadRequest

__all__ = [
    "API_PREFIX",
    "CASSETTE_HEADER",
    "CHAT_PATH",
    "MODELS_PATH",
    "Fixture",
    "find",
    "load_fixtures",
    "models_document",
    "non_streaming",
    "requested",
]

API_PREFIX = "/api/v1"
CHAT_PATH = API_PREFIX + "/chat/completions"
MODELS_PATH = API_PREFIX + "/models"
CASSETTE_HEADER = "x-rawsse-cassette"


@dataclass(frozen=True)
class Fixture:
    """A cassette served as the model ``id`` (``name``: its file name, without ``.jsonl``)."""

    id: str
    name: str
    cassette: Cassette
    created: int


def _created(recorded_at: str) -> int:
    try:
        when = datetime.datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return int(when.timestamp())


def _read_sources(source: str | os.PathLike[str] | None) -> list[tuple[str, bytes]]:
    if source is None:
        folder = importlib.resources.files("rawsse").joinpath("recordings")
        entries = [e for e in folder.iterdir() if e.name.endswith(".jsonl")]
        return [(e.name, e.read_bytes()) for e in sorted(entries, key=lambda e: e.name)]
    path = Path(source)
    if path.is_file():
        return [(path.name, path.read_bytes())]
    if not path.is_dir():
        raise CassetteError(f"{path}: no such file or directory")
    return [(p.name, p.read_bytes()) for p in sorted(path.glob("*.jsonl"))]


def load_fixtures(source: str | os.PathLike[str] | None = None) -> list[Fixture]:
    """The cassettes in ``source`` (a directory of ``*.jsonl``, or one file; None: the
    shipped recordings), each with its model id: the request's ``model``, or the file
    name when there is none or another cassette already claimed it.

    Raises ``CassetteError`` for a damaged file or when there is no cassette at all.
    """
    fixtures: list[Fixture] = []
    taken: set[str] = set()
    for filename, data in _read_sources(source):
        cassette = loads_cassette(data, source=filename)
        name = filename.removesuffix(".jsonl")
        model = cassette.model
        ident = model if model and model not in taken else name
        taken.add(ident)
        fixtures.append(Fixture(ident, name, cassette, _created(cassette.recorded_at)))
    if not fixtures:
        raise CassetteError(f"{source}: no cassettes (*.jsonl) to serve")
    return fixtures


def models_document(fixtures: list[Fixture]) -> dict[str, Any]:
    """The ``GET /models`` answer."""
    return {
        "object": "list",
        "data": [
            {
                "id": f.id,
                "object": "model",
                "created": f.created,
                "owned_by": "rawsse",
                "name": f.name,
            }
            for f in fixtures
        ],
    }


def requested(headers: dict[str, str], body: bytes) -> tuple[str, bool]:
    """The model a chat request asks for, and whether it wants a stream."""
    try:
        request = json.loads(body) if body else None
    except ValueError as exc:
        raise BadRequest(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequest(400, "the request body must be a JSON object")
    wanted = headers.get(CASSETTE_HEADER) or request.get("model")
    if not isinstance(wanted, str) or not wanted:
        raise BadRequest(400, "the request body has no 'model'")
    return wanted, request.get("stream", False) is True


def find(fixtures: dict[str, Fixture], models: list[str], wanted: str) -> Fixture:
    """The fixture served as ``wanted``; ``BadRequest`` (404) listing ``models`` if none."""
    fixture = fixtures.get(wanted)
    if fixture is None:
        raise BadRequest(
            404,
            f"no cassette for model {wanted!r}; this server has: " + ", ".join(models),
        )
    return fixture


def non_streaming(cassette: Cassette) -> Cassette:
    """The completion a stream adds up to, sent whole when the stream would have ended."""
    content_type = cassette.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        raise BadRequest(400, 'this cassette is not a stream; send "stream": true')
    try:
        result = accumulate(parse_chat_stream(cassette.body))
    except MalformedChunk as exc:
        raise BadRequest(
            400,
            f'this cassette cannot be answered with stream=false ({exc}); send "stream": true',
        ) from None
    data = json.dumps(completion_from_result(result), ensure_ascii=False).encode("utf-8")
    done = cassette.end_t
    if done is None:
        done = cassette.chunks[-1][0] if cassette.chunks else cassette.response_t
    headers = {k: v for k, v in cassette.headers.items() if k.lower() != "content-type"}
    headers["content-type"] = "application/json"
    return dataclasses.replace(cassette, headers=headers, chunks=[(done, data)], response_t=done)
