"""The public names: the root namespace is pinned, tools live in their own modules,
and the names that moved out of the root still import (with a warning) for one release."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rawsse
import rawsse.inspect
import rawsse.testing

SRC = Path(rawsse.__file__).parent

ROOT_NAMES = [
    "CONTENT_EVENTS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "BodyError",
    "BodyLimits",
    "CassetteError",
    "ChatAccumulator",
    "ChatDecoder",
    "ChatEvent",
    "ChatResult",
    "ChatStatus",
    "ChoiceResult",
    "Client",
    "Comment",
    "ConfigurationError",
    "ConnectTimeout",
    "ContinuationError",
    "Continued",
    "Done",
    "Extra",
    "Finish",
    "FirstTokenTimeout",
    "IdleTimeout",
    "InBandError",
    "IncompleteStreamError",
    "InternalServerError",
    "KeepAlive",
    "MalformedChunk",
    "MetricsLog",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RawSSEError",
    "ReasoningDelta",
    "RefusalDelta",
    "RequestTimeoutError",
    "Resume",
    "RoleDelta",
    "SSEDecoder",
    "SSEProtocolError",
    "ServerSentEvent",
    "ServiceUnavailableError",
    "StallTimeout",
    "Stream",
    "StreamError",
    "StreamInterrupted",
    "StreamMetrics",
    "StreamStart",
    "StreamTimeout",
    "TextDelta",
    "Timeouts",
    "ToolCall",
    "ToolCallDelta",
    "TotalTimeout",
    "UnexpectedContentType",
    "Usage",
    "accumulate",
    "encode_comment",
    "encode_event",
    "parse_chat_stream",
    "stream_status",
]

MOVED = {
    "Anomaly": rawsse.inspect,
    "ChunkRow": rawsse.inspect,
    "EventRow": rawsse.inspect,
    "StreamInspector": rawsse.inspect,
    "StreamReport": rawsse.inspect,
    "inspect_cassette": rawsse.inspect,
    "inspect_stream": rawsse.inspect,
    "render_html_report": rawsse.inspect,
    "FixtureServer": rawsse.testing,
}


def test_the_root_namespace_is_pinned() -> None:
    assert rawsse.__all__ == ROOT_NAMES
    # At most 72, with room for what the coming features add.
    assert len(rawsse.__all__) <= 72


def test_every_public_name_exists() -> None:
    for module in (rawsse, rawsse.inspect, rawsse.testing):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_the_tools_have_their_fixed_homes() -> None:
    from rawsse.inspect import inspect_stream
    from rawsse.testing import FixtureServer

    assert inspect_stream.__module__ == "rawsse._inspect"
    assert FixtureServer.__name__ == "FixtureServer"


@pytest.mark.parametrize("name", sorted(MOVED))
def test_moved_names_still_import_with_a_warning(name: str) -> None:
    assert name not in rawsse.__all__
    with pytest.warns(DeprecationWarning, match=f"rawsse.{name} moved to"):
        value = getattr(rawsse, name)
    assert value is getattr(MOVED[name], name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        rawsse.no_such_name  # noqa: B018


def _is_module(path: Path, node: ast.ImportFrom, alias: ast.alias) -> bool:
    """Whether ``from . import name`` in ``path`` names a module of the package."""
    package = path.parents[node.level - 1]
    return node.module is None and (package / f"{alias.name}.py").is_file()


def test_no_module_imports_upward_from_the_package_init() -> None:
    for path in SRC.rglob("*.py"):
        if path == SRC / "__init__.py":
            continue
        to_root = len(path.relative_to(SRC).parts)  # the level of ``from . import``s to rawsse
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module is None and node.level == to_root:
                assert all(_is_module(path, node, alias) for alias in node.names), path


def test_no_private_name_is_imported_across_modules() -> None:
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                for alias in node.names:
                    if _is_module(path, node, alias):
                        continue  # ``from . import _module``: a module, not a private name
                    assert not alias.name.startswith("_") or alias.name == "__version__", (
                        f"{path.relative_to(SRC)} imports {alias.name} from {node.module}"
                    )
