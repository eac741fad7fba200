"""The OpenAI-compatible API the fixture server emulates, without I/O.

Which cassettes it serves under which model ids (``load_fixtures``), the
``/models`` document, which cassette a request picks, the non-streaming answer a
stream adds up to (``completion_from_result``, next to its inverse in
``rawsse._completion``) and the event stream a non-streaming answer stands for
(``stream_from_completion``).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.resources
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._accumulate import accumulate
from .._cassette import Cassette, loads_cassettes
from .._chat import parse_chat_stream
from .._completion import completion_document, completion_from_result, stream_from_completion
from .._constants import END_EOF, ChatStatus
from .._errors import CassetteError, MalformedChunk
from .._json import loads_bounded
from ._http import BadRequest

__all__ = [
    "API_PREFIX",
    "CASSETTE_HEADER",
    "CHAT_PATH",
    "MODELS_PATH",
    "Fixture",
    "ambiguous_models",
    "find",
    "load_fixtures",
    "model_object",
    "models_document",
    "non_streaming",
    "requested",
    "streaming",
]

API_PREFIX = "/api/v1"
CHAT_PATH = API_PREFIX + "/chat/completions"
MODELS_PATH = API_PREFIX + "/models"
CASSETTE_HEADER = "x-rawsse-cassette"
# Deep enough for any tool schema in a request; deeper would exhaust the parser's stack.
_MAX_REQUEST_DEPTH = 256


@dataclass(frozen=True)
class Fixture:
    """A cassette served as the model ``id`` (``name``: its file name without ``.jsonl``,
    plus ``-N`` for exchange N of a file that holds several)."""

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


def _whole(cassette: Cassette) -> bool:
    """Whether a cassette holds a whole answer (no HTTP error, no cut, no in-band error)."""
    if cassette.status != 200 or cassette.end != END_EOF:
        return False
    if completion_document(cassette.body) is not None:
        return True
    try:
        return accumulate(parse_chat_stream(cassette.body)).status is ChatStatus.COMPLETE
    except MalformedChunk:
        return False


def load_fixtures(source: str | os.PathLike[str] | None = None) -> list[Fixture]:
    """The cassettes in ``source`` (a directory of ``*.jsonl``, or one file; None: the
    shipped recordings), every exchange of every file, each with a unique model id.

    A model recorded by one cassette is served under its own id.  When several
    record the same model, the first one (in file order) holding a whole answer
    gets the model's id (else simply the first), and the others their names;
    ``ambiguous_models`` says which.  A cassette without a model is served under
    its name.  Raises ``CassetteError`` for a damaged file or when there is no
    cassette at all.
    """
    loaded: list[tuple[str, Cassette]] = []
    for filename, data in _read_sources(source):
        stem = filename.removesuffix(".jsonl")
        cassettes = loads_cassettes(data, source=filename)
        for n, cassette in enumerate(cassettes, 1):
            loaded.append((stem if len(cassettes) == 1 else f"{stem}-{n}", cassette))
    if not loaded:
        raise CassetteError(f"{source}: no cassettes (*.jsonl) to serve")
    counts = Counter(c.model for _, c in loaded if c.model)
    owner: dict[str, int] = {}  # model -> the position of the cassette serving it
    settled: set[str] = set()  # shared models whose owner holds a whole answer
    for position, (_, cassette) in enumerate(loaded):
        model = cassette.model
        if not model or model in settled:
            continue
        # Only a model several cassettes share needs its cassettes read.
        whole = counts[model] > 1 and _whole(cassette)
        if model not in owner or whole:
            owner[model] = position
        if whole:
            settled.add(model)
    taken = set(owner)
    fixtures: list[Fixture] = []
    for position, (name, cassette) in enumerate(loaded):
        model = cassette.model
        if model and owner.get(model) == position:
            ident = model
        else:
            ident, n = name, 1
            while ident in taken:  # a file named like another cassette's model
                n += 1
                ident = f"{name}-{n}"
            taken.add(ident)
        fixtures.append(Fixture(ident, name, cassette, _created(cassette.recorded_at)))
    return fixtures


def ambiguous_models(fixtures: list[Fixture]) -> dict[str, tuple[Fixture, list[Fixture]]]:
    """Each model recorded by several cassettes: the one its id resolves to, and all of them."""
    by_model: dict[str, list[Fixture]] = {}
    for fixture in fixtures:
        if fixture.cassette.model:
            by_model.setdefault(fixture.cassette.model, []).append(fixture)
    out = {}
    for model, group in by_model.items():
        if len(group) > 1:
            chosen = next(f for f in group if f.id == model)
            out[model] = (chosen, group)
    return out


def model_object(fixture: Fixture) -> dict[str, Any]:
    """One model, as ``GET /models`` lists it and ``GET /models/{id}`` answers."""
    return {
        "id": fixture.id,
        "object": "model",
        "created": fixture.created,
        "owned_by": "rawsse",
        "name": fixture.name,
    }


def models_document(fixtures: list[Fixture]) -> dict[str, Any]:
    """The ``GET /models`` answer."""
    return {"object": "list", "data": [model_object(f) for f in fixtures]}


def requested(headers: dict[str, str], body: bytes) -> tuple[str, bool]:
    """The model a chat request asks for, and whether it wants a stream."""
    try:
        request = loads_bounded(body, max_depth=_MAX_REQUEST_DEPTH) if body else None
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


def _finished_at(cassette: Cassette) -> float:
    done = cassette.end_t
    if done is None:
        done = cassette.chunks[-1][0] if cassette.chunks else cassette.response_t
    return done


def streaming(cassette: Cassette) -> Cassette:
    """What a ``stream: true`` request gets: the cassette itself, or, for a recorded
    non-streaming answer, the event stream it stands for (synthesised, sent whole
    when the answer was recorded to end)."""
    doc = completion_document(cassette.body)
    if doc is None or cassette.headers.get("content-type", "").startswith("text/event-stream"):
        return cassette
    data = stream_from_completion(doc)
    headers = {
        k: v
        for k, v in cassette.headers.items()
        if k.lower() not in ("content-type", "content-length", "content-encoding")
    }
    headers["content-type"] = "text/event-stream"
    headers["cache-control"] = "no-cache"
    return dataclasses.replace(cassette, headers=headers, chunks=[(_finished_at(cassette), data)])


def non_streaming(cassette: Cassette) -> Cassette:
    """What a ``stream: false`` request gets: a recorded non-streaming answer as it
    is, or the completion a stream adds up to, sent whole when the stream would have
    ended.  ``BadRequest`` (502) for a recording that was cut: it has no whole answer."""
    content_type = cassette.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        if completion_document(cassette.body) is not None:
            return cassette
        raise BadRequest(400, 'this cassette is not a stream; send "stream": true')
    if cassette.end != END_EOF:
        why = f" ({cassette.error})" if cassette.error else ""
        raise BadRequest(
            502,
            f"the recorded stream was cut{why}: there is no whole answer to send as JSON; "
            'send "stream": true to replay the cut stream',
        )
    try:
        result = accumulate(parse_chat_stream(cassette.body))
    except MalformedChunk as exc:
        raise BadRequest(
            400,
            f'this cassette cannot be answered with stream=false ({exc}); send "stream": true',
        ) from None
    data = json.dumps(completion_from_result(result), ensure_ascii=False).encode("utf-8")
    done = _finished_at(cassette)
    headers = {k: v for k, v in cassette.headers.items() if k.lower() != "content-type"}
    headers["content-type"] = "application/json"
    return dataclasses.replace(cassette, headers=headers, chunks=[(done, data)], response_t=done)
