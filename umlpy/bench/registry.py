"""A name -> item table shared by the workload and runner registries."""
from __future__ import annotations

from typing import Dict, TypeVar

T = TypeVar("T")


def add_unique(table: Dict[str, T], name: str, item: T, kind: str) -> T:
    """Add `item` under `name`; names are unique."""
    if name in table:
        raise ValueError(f"{kind} {name!r} registered twice")
    table[name] = item
    return item
