"""Each config dataclass against its native field table (issue #11: the schema is declared once).

The tables beside the C++ config structs (``FieldSpec``, ``cpp/rlab/core/schema.h``) are the one
declaration of a config's fields; ``_core.config_schema()`` exports them. The Python dataclasses
keep typed fields for users and mypy, so this test ties them to the tables: the same field names
in the same order, the same defaults, compatible types (int / float / bool / a Literal of the
choices), a docstring entry for each field whose stated interval (if any) is the table's, a stub
entry, and the generated reference quoting the table's interval. A field added to one side only
fails here.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import pytest
import reliability_lab as rl
from reliability_lab import _core, _schema
from reliability_lab.scenario import _field_hints
from scenario_reference import OUT, field_docs, parse_range

TABLES = _core.config_schema()


# Constructor arguments of the classes with required fields (no default).
_REQUIRED: dict[str, dict[str, Any]] = {
    "Phase": {"name": "p", "start": 0.0, "end": 1.0},
    "Tenant": {"name": "t"},
    "RateSegment": {"start": 0.0, "end": 1.0, "rate_start": 1.0, "rate_end": 1.0},
    "Schedule": {"segments": (rl.RateSegment(0.0, 1.0, 1.0, 1.0),)},
    "Poisson": {"rate": 1.0},
    "Service": {"name": "s"},
    "ConstantRate": {"rate": 1.0},
    "Trace": {"times": (0.0,)},
    "Constant": {"value": 1.0},
    "Exponential": {"mean": 1.0},
    "LogNormal": {"median": 1.0, "sigma": 1.0},
    "Uniform": {"low": 0.0, "high": 1.0},
    "Mixture": {"weights": (1.0,), "components": (rl.Constant(1.0),)},
}
# List fields whose dataclass default differs from the C++ member's, with the reason: the
# dataclass's is a usable value, the C++ struct's an empty list, which every read fills.
_PYTHON_LIST_DEFAULTS = {
    "Service.dependencies": "a Service() calls one dependency, `payment`; ServiceConfig{} none",
}
_PY_TYPE = {"int": int, "real": float, "seconds": float, "bool": bool, "string": str}
_KINDS = ("int", "real", "seconds", "bool", "choice", "string", "config", "list", "union",
          "union_list", "real_list", "seconds_list", "strings")


def _class(name: str) -> type:
    cls = getattr(rl, name, None)
    assert isinstance(cls, type) and dataclasses.is_dataclass(cls), f"no dataclass rl.{name}"
    return cls


def _interval(f: dict[str, Any]) -> tuple[str, float, float, str]:
    return ("(" if f["lo_open"] else "[", float(f["lo"]), float(f["hi"]),
            ")" if f["hi_open"] else "]")


def _interval_text(f: dict[str, Any]) -> str:
    """The interval as messages print it (integers in full, reals with %g)."""
    if f["kind"] == "int":
        return f"[{f['lo']}, {f['hi']}]"

    def g(x: float) -> str:
        return ("inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:g}"

    lo, a, b, hi = _interval(f)
    return f"{lo}{g(a)}, {g(b)}{hi}"


def test_tables_are_exported() -> None:
    assert "Breaker" in TABLES
    assert _schema.TABLES == TABLES
    for name, fields in TABLES.items():
        assert fields, name
        for f in fields:
            assert f["kind"] in _KINDS, (name, f)
            assert f["doc"], f"{name}.{f['name']} has no doc line"
            if f["kind"] == "seconds":
                assert f["unit"] == "s"
            if f["kind"] == "choice":
                assert f["choices"]
            if f["kind"] in ("config", "list", "union", "union_list"):
                assert f["types"] and all(_class(t) for t in f["types"]), (name, f)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_dataclass_matches_its_table(name: str) -> None:
    cls = _class(name)
    table = TABLES[name]
    fields = [f for f in dataclasses.fields(cls) if f.init]
    assert [f.name for f in fields] == [f["name"] for f in table]
    hints = dict(_field_hints(cls))  # a copy: the cached hints stay as they are
    for py, nat in zip(fields, table, strict=True):
        where = f"{name}.{py.name}"
        default = py.default
        hint = hints[py.name]
        if nat["required"]:
            assert default is dataclasses.MISSING, where
            if nat["kind"] in _PY_TYPE:
                assert hint is _PY_TYPE[nat["kind"]], where
            continue
        if nat["kind"] == "list":  # Sequence[T]
            args = [a for a in typing.get_args(hint) if a is not Ellipsis]  # tuple[T, ...]
            assert [a.__name__ for a in args] == nat["types"], where
            if where in _PYTHON_LIST_DEFAULTS:
                continue
            assert [_schema.encode(x) for x in default] == nat["default"], where
            continue
        if nat["optional"]:  # `T | None`, the default None or a value
            args = tuple(a for a in typing.get_args(hint) if a is not type(None))
            assert len(args) < len(typing.get_args(hint)), where
            hints[py.name] = args[0] if len(args) == 1 else typing.Union[args]  # noqa: UP007
            if default is None or nat["default"] is None:
                assert default is None and nat["default"] is None, where
                continue
        if nat["kind"] == "config":
            assert hints[py.name].__name__ == nat["types"][0], where
            assert _schema.encode(default) == nat["default"], where
        elif nat["kind"] == "union":
            assert [a.__name__ for a in typing.get_args(hints[py.name])] == nat["types"], where
            assert _schema.encode(default) == nat["default"], where
        elif nat["kind"] == "string":
            assert hints[py.name] is str, where
            assert default == nat["default"], where
        elif nat["kind"] == "strings":  # a set of names (RetryConfig.retry_on)
            assert hints[py.name] == tuple[str, ...], where
            assert sorted(default) == sorted(nat["default"]), where
        elif nat["kind"] in ("real", "seconds"):
            assert hints[py.name] is float, where
            assert math.isclose(default, nat["default"], rel_tol=1e-12, abs_tol=1e-12), where
        elif nat["kind"] == "int":
            assert hints[py.name] is int, where
            assert default == nat["default"], where
        elif nat["kind"] == "bool":
            assert hints[py.name] is bool, where
            assert default is nat["default"], where
        else:
            assert typing.get_origin(hints[py.name]) is typing.Literal, where
            assert list(typing.get_args(hints[py.name])) == nat["choices"], where
            assert default == nat["default"], where


@pytest.mark.parametrize("name", sorted(TABLES))
def test_docstring_documents_the_table(name: str) -> None:
    """Every field has a docstring entry; an interval stated there is the table's."""
    docs = field_docs(_class(name))
    for f in TABLES[name]:
        where = f"{name}.{f['name']}"
        assert f["name"] in docs, f"{where} is not documented in the class docstring"
        stated = parse_range(docs[f["name"]])
        if stated is not None and f["kind"] in ("int", "real", "seconds"):
            assert stated == _interval(f), f"{where}: docstring {stated}, table {_interval(f)}"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_reference_quotes_the_table(name: str) -> None:
    """The generated reference (docs/scenario_reference.md) shows each ranged field's interval
    as the table has it."""
    text = OUT.read_text()
    for f in TABLES[name]:
        if f["kind"] in ("int", "real", "seconds") and f"`{f['name']}`" in text:
            assert _interval_text(f) in text, f"{name}.{f['name']}: {_interval_text(f)}"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_check_names_field_range_and_value(name: str) -> None:
    """The one generic check: a value outside the table's range raises ValueError naming the
    field, the interval and the value."""
    cls = _class(name)
    for f in TABLES[name]:
        if f["kind"] == "int":
            bad: Any = f["hi"] + 1
        elif f["kind"] in ("real", "seconds", "real_list", "seconds_list"):
            bad = f["hi"] * 2 + 1 if math.isfinite(f["hi"]) else math.nan
        else:
            continue
        listed = f["kind"].endswith("_list")  # a list of numbers: its element named by index
        with pytest.raises(ValueError) as e:
            cls(**{**_REQUIRED.get(name, {}), f["name"]: (bad,) if listed else bad})
        msg = str(e.value)
        assert not listed or f"{f['name']}[0] must be" in msg, msg
        assert f["name"] in msg and _interval_text(f) in msg, msg
        assert f"{bad:g}" in msg or str(bad) in msg, msg


@pytest.mark.parametrize("name", sorted(TABLES))
def test_native_codec_round_trips(name: str) -> None:
    """dict -> native struct -> dict gives the dict back (the generic reader and writer)."""
    obj = _class(name)(**_REQUIRED.get(name, {}))
    sent = _schema.values(obj)
    back = _core.check_config(name, sent)
    assert list(back) == list(sent)
    for k, v in sent.items():
        assert type(back[k]) is type(v), (k, v, back[k])
        same = math.isclose(back[k], v, rel_tol=1e-12) if isinstance(v, float) else back[k] == v
        assert same, (k, v, back[k])


def test_nested_fields_are_type_checked_by_path() -> None:
    """A nested value must be an instance of its class (the message names the field, the
    expected class and the value); a list must be a sequence of them."""
    cases: list[tuple[Any, str]] = [
        (lambda: rl.Faults(capacity=5), "capacity must be a Capacity, got 5"),
        (lambda: rl.Faults(phases="x"), "phases must be a sequence, got 'x'"),
        (lambda: rl.Faults(phases=[5]), "phases[0] must be a Phase, got 5"),
        (lambda: rl.Intake(limit=rl.Breaker()), "limit must be a Limit or None, got Breaker("),
        (lambda: rl.Phase("p", 0, 1, latency=0.1), "latency must be a Constant, Exponential"),
        (lambda: rl.Replicas(overrides=(rl.Faults(),)), "overrides[0] must be a ReplicaOverride"),
    ]
    for build, message in cases:
        with pytest.raises(ValueError) as e:
            build()
        assert str(e.value).startswith(message), str(e.value)
    f = rl.Faults(phases=[rl.Outage(1, 5)])
    assert isinstance(f.phases, tuple)


def test_nested_values_are_checked_under_their_dotted_path() -> None:
    """The native reader and rules name a nested field by its path: a list element by its
    unique name, else by its index."""
    sent = _schema.values(rl.Faults(phases=[rl.Outage(1, 5)]))
    sent["phases"][0]["end"] = -1.0
    with pytest.raises(ValueError, match=r"^phases\[outage\]\.end must be a finite number in"):
        _core.check_config("Faults", sent)
    sent["phases"][0]["end"] = 0.5  # before its start: the phase's own rule
    with pytest.raises(ValueError, match=r"^phases\[outage\]\.end must be greater than start"):
        _core.check_config("Faults", sent)
    sent = _schema.values(rl.Replicas(count=3, overrides=(rl.ReplicaOverride(1),)))
    sent["overrides"][0]["faults"]["capacity"]["max_queue"] = -2
    with pytest.raises(ValueError, match=r"^overrides\[0\]\.faults\.capacity\.max_queue must"):
        _core.check_config("Replicas", sent)
    intake = _schema.values(rl.Intake())
    intake["shedding"] = _schema.encode(rl.Shedding())
    intake["shedding"]["tenants"] = [{"name": "a", "weight": 1.0, "traffic": 1.0}] * 2
    with pytest.raises(ValueError, match=r"^shedding\.tenants\[1\]\.name must be unique"):
        _core.check_config("Intake", intake)
