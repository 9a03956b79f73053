"""Plain record classes for what start-up imports.

`dataclasses` costs umlpy's start-up about 18 ms here: 6 ms to import it
(it pulls in inspect, ast, dis and tokenize) and half a millisecond per class
to generate its methods. A record instead writes its own __init__ and takes
__repr__ and __eq__ from these bases, which read the field names from
`_fields`, in __init__'s order; a record usually declares
`__slots__ = _fields = (...)`.
"""
from __future__ import annotations


class Record:
    """Equal when of the same class with equal fields."""
    __slots__ = ()
    _fields: tuple = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None     # mutable: unhashable, as a dataclass with eq


class FrozenRecord(Record):
    """A Record whose fields do not change after __init__ (which sets them
    with object.__setattr__): hashable."""
    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__qualname__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__qualname__} is frozen")

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple:
        # copy and pickle would restore the slots with setattr, which is blocked
        return (self.__class__, self._values())
