"""The configs' field tables, declared once beside the C++ config structs (``FieldSpec`` tables,
``cpp/rlab/core/schema.h``) and exported by ``_core.config_schema()``.

A config dataclass keeps its typed fields (for users and mypy) and calls :func:`check` in its
``__post_init__``: one generic check, the native one (the table's types and ranges, then the
config's cross-field rules), whose error names the field, the allowed range and the value. The
tests tie each dataclass to its table (names, defaults, types, docstring ranges).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reliability_lab import _core

#: {class name: [field description, ...]}; a field description has ``name``, ``kind`` ("int",
#: "real", "seconds", "bool", "choice", "string", or for a nested value "config", "list" (a tuple
#: of configs) and "union" (a tagged union such as the latency distributions), "union_list" (a
#: tuple of union values), "real_list" / "seconds_list" (a tuple of numbers), "strings" (a tuple
#: of names)), ``unit``,
#: ``default``, ``lo``, ``hi``, ``lo_open``, ``hi_open``, ``choices``, ``optional`` (the field
#: also takes None), ``required`` (no default), ``types`` (a nested value's classes) and ``doc``.
TABLES: dict[str, list[dict[str, Any]]] = _core.config_schema()

#: {class name: its dict form's ``"type"`` tag}, for the classes whose dict form carries one.
TAGS: dict[str, str] = _core.config_tags()

def normal(kind: str, value: object) -> object:
    """An int for an integer field (kind "int"), a float for a real one ("real", "seconds" or
    "float"; numpy scalars included); anything else as given, for the native check to name."""
    if isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, numbers.Integral):
        return int(value)
    if kind in ("real", "seconds", "float") and isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:  # an int beyond a float: the native check shows it
            return value
    return value


def encode(value: Any) -> Any:
    """A config value in its dict form (``Scenario.to_dict``'s): a dataclass as a dict of its
    fields (with its ``"type"`` tag if it has one), a tuple as a list."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        d: dict[str, Any] = {}
        tag = TAGS.get(type(value).__name__)
        if tag is not None:
            d["type"] = tag
        for f in dataclasses.fields(value):
            if f.init:
                d[f.name] = encode(getattr(value, f.name))
        return d
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    return value


def expect(path: str, value: object, types: Sequence[str], none: bool = False) -> None:
    """A nested value must be an instance of one of the classes named ``types`` (ConfigTypeError
    naming the path, the classes and the value)."""
    mro = type(value).__mro__
    if dataclasses.is_dataclass(value) and any(c.__name__ in types for c in mro):
        return
    names = types[0] if len(types) == 1 else ", ".join(types[:-1]) + " or " + types[-1]
    article = "an" if names[0] in "AEIOU" else "a"
    raise _core.ConfigTypeError(
        f"{path} must be {article} {names}{' or None' if none else ''}, got {value!r}"
    )


def items(name: str, value: object, types: Sequence[str] = ()) -> tuple[Any, ...]:
    """A sequence given as any iterable (not a string or mapping), as a tuple; with ``types``,
    of instances of those classes."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _core.ConfigTypeError(f"{name} must be a sequence, got {value!r}")
    seq = tuple(value)
    for i, item in enumerate(seq if types else ()):
        expect(f"{name}[{i}]", item, types)
    return seq


def values(obj: object, store: bool = False) -> dict[str, Any]:
    """The table's fields of ``obj`` as the native readers take them: numbers normalised to
    their kind's Python type, nested values type-checked here and encoded. With ``store``, each
    field is also stored back normalised (``open_for=5`` reads back ``5.0``, a list as a tuple,
    a nested value as it is)."""
    sent: dict[str, Any] = {}
    for f in TABLES[type(obj).__name__]:
        name, kind = f["name"], f["kind"]
        value = getattr(obj, name)
        if kind in ("config", "union"):
            if not (value is None and f["optional"]):
                expect(name, value, f["types"], f["optional"])
            sent[name] = encode(value)
        elif kind.endswith("list") or kind == "strings":  # a tuple
            value = items(name, value, f["types"])
            if kind in ("real_list", "seconds_list"):  # the native check names a bad number
                value = tuple(normal("real", v) for v in value)
            sent[name] = encode(value)
        else:  # as given (normalised), not encoded: a bad value is shown as it is
            sent[name] = value = normal(kind, value)
        if store:
            object.__setattr__(obj, name, value)
    return sent


def check(obj: object) -> None:
    """Checks ``obj`` against its class's table and rules (ValueError naming the field, range and
    value; a nested config's fields by their dotted path), its fields stored normalised."""
    _core.check_config(type(obj).__name__, values(obj, store=True))


class Checked:
    """The base of a config dataclass whose only check is its table's: a dataclass calls the
    inherited ``__post_init__``, which runs :func:`check`. The C++ table has the class's name
    (``RLAB_TABLE(..., "Breaker", ...)``)."""

    def __post_init__(self) -> None:
        check(self)
