"""``rawsse.inspect.__all__`` is built from its modules' lists: it stays in ruff's order."""

from __future__ import annotations

import rawsse.inspect
import rawsse.testing


def test_the_public_submodules_list_each_name_once_in_ruffs_order() -> None:
    for module in (rawsse.inspect, rawsse.testing):
        names = module.__all__
        assert isinstance(names, list)
        assert len(set(names)) == len(names)
        constants = [n for n in names if n.isupper()]
        classes = [n for n in names if not n.isupper() and n[0].isupper()]
        functions = [n for n in names if n[0].islower()]
        assert names == sorted(constants) + sorted(classes) + sorted(functions)


def test_the_inspector_exports_what_its_modules_export() -> None:
    assert "StreamInspector" in rawsse.inspect.__all__
    assert "render_html_report" in rawsse.inspect.__all__
    assert "writable" not in rawsse.inspect.__all__
    assert len(rawsse.inspect.__all__) == 14
