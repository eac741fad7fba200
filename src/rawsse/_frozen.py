"""``Frozen``: the immutable value base of every rawsse event.

A frozen slotted dataclass costs 3-5x more to construct than a tuple, and a
stream of 25 MB has about 80,000 events, so the event type alone can decide the
decoder's speed (measured in ``bench/bench_records.py``).  A ``Frozen`` is a
tuple underneath, read through named properties, with three changes that make
it a value object rather than a tuple:

* equality and ordering hold only between records of the same class, so
  ``TextDelta(0, "a") != ReasoningDelta(0, "a")`` and no record equals a plain
  tuple;
* ``repr`` shows the class and field names;
* type checkers see a frozen dataclass (``dataclass_transform``), so fields are
  typed, read-only and usable in ``match`` statements.

Subclasses declare fields as annotations, optionally with defaults::

    class TextDelta(Frozen):
        index: int
        text: str
"""

from __future__ import annotations

import inspect
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from typing_extensions import Self, dataclass_transform
else:

    def dataclass_transform(**kwargs: object) -> Any:
        return lambda cls: cls


__all__ = ["Frozen"]

_tuple_new = tuple.__new__

try:  # The C descriptor behind namedtuple fields: about twice as fast to read as a property.
    from collections import _tuplegetter as _field  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover (other Pythons)

    def _field(index: int, doc: str) -> Any:
        return property(itemgetter(index), doc=doc)


_MISSING = object()


@dataclass_transform(frozen_default=True, eq_default=True)
class Frozen(tuple):  # type: ignore[type-arg]
    """Base of immutable records with value equality within one class."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, object]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__slots__" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} must declare __slots__ = ()")
        # Annotations are strings (``from __future__ import annotations``); only names matter.
        names = tuple(inspect.get_annotations(cls))
        names = tuple(n for n in names if not n.startswith("_"))
        inherited = cls._fields
        fields = inherited + tuple(n for n in names if n not in inherited)
        defaults: dict[str, object] = {}
        for base in reversed(cls.__mro__[1:]):
            defaults.update(getattr(base, "_defaults", {}))
        for name in names:
            value = cls.__dict__.get(name, _MISSING)
            if value is not _MISSING:
                defaults[name] = value
        cls._fields = fields
        cls._defaults = defaults
        setattr(cls, "__match_args__", fields)  # noqa: B010 (mypy: not a declared attribute)
        for i, name in enumerate(fields):
            setattr(cls, name, _field(i, f"Field {name!r}."))
        cls.__new__ = _make_new(cls, fields, defaults)  # type: ignore[method-assign]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not (type(other) is type(self) and tuple.__eq__(self, other))

    __hash__ = tuple.__hash__

    def __lt__(self, other: object) -> bool:
        return NotImplemented

    __le__ = __gt__ = __ge__ = __lt__

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self, strict=True))
        return f"{type(self).__name__}({inner})"

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def _asdict(self) -> dict[str, Any]:
        """The fields as a new ``dict``, in declaration order."""
        return dict(zip(self._fields, self, strict=True))

    def _replace(self, **changes: Any) -> Self:
        """A copy with the given fields replaced."""
        values = self._asdict()
        for key in changes:
            if key not in values:
                raise TypeError(f"{type(self).__name__} has no field {key!r}")
        values.update(changes)
        return _tuple_new(type(self), tuple(values.values()))


def _make_new(cls: type, fields: tuple[str, ...], defaults: dict[str, object]) -> Any:
    params = []
    seen_default = False
    namespace: dict[str, object] = {"_tuple_new": _tuple_new}
    for name in fields:
        if name in defaults:
            namespace[f"_d_{name}"] = defaults[name]
            params.append(f"{name}=_d_{name}")
            seen_default = True
        elif seen_default:
            raise TypeError(f"{cls.__name__}: field {name!r} without default follows a default")
        else:
            params.append(name)
    body = f"({', '.join(fields)},)" if fields else "()"
    source = f"def __new__(_cls, {', '.join(params)}):\n    return _tuple_new(_cls, {body})\n"
    exec(source, namespace)
    new: Any = namespace["__new__"]
    new.__qualname__ = f"{cls.__qualname__}.__new__"
    new.__module__ = cls.__module__
    return staticmethod(new)
