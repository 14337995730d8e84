"""The configs' field tables, declared once beside the C++ config structs (``FieldSpec`` tables,
``cpp/rlab/core/schema.h``) and exported by ``_core.config_schema()``.

A config dataclass keeps its typed fields (for users and mypy) and calls :func:`check` in its
``__post_init__``: one generic check, the native one (the table's types and ranges, then the
config's cross-field rules), whose error names the field, the allowed range and the value. The
tests tie each dataclass to its table (names, defaults, types, docstring ranges).
"""

from __future__ import annotations

import numbers
from typing import Any

from reliability_lab import _core

#: {class name: [field description, ...]}; a field description has ``name``, ``kind`` ("int",
#: "real", "seconds", "bool", "choice"), ``unit``, ``default``, ``lo``, ``hi``, ``lo_open``,
#: ``hi_open``, ``choices``, ``optional`` (the field also takes None) and ``doc``.
TABLES: dict[str, list[dict[str, Any]]] = _core.config_schema()

_REAL_KINDS = ("real", "seconds")


def _normal(kind: str, value: object) -> object:
    """An int for an integer field, a float for a real one (numpy scalars included); anything
    else as given, for the native check to name."""
    if isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, numbers.Integral):
        return int(value)
    if kind in _REAL_KINDS and isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:  # an int beyond a float: the native check shows it
            return value
    return value


def values(obj: object) -> dict[str, Any]:
    """The table's fields of ``obj`` as a dict, each normalised to its kind's Python type: the
    form the native readers take."""
    return {
        f["name"]: _normal(f["kind"], getattr(obj, f["name"])) for f in TABLES[type(obj).__name__]
    }


def check(obj: object) -> None:
    """Checks ``obj`` against its class's table and rules (ValueError naming the field, range and
    value), then stores each field normalised to its kind (``open_for=5`` reads back ``5.0``)."""
    fields = values(obj)
    _core.check_config(type(obj).__name__, fields)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
