"""Fuzz of bad values (issue #11): every public constructor of a configuration or policy object
exported from ``reliability_lab``, and every numeric leaf of ``Scenario.from_dict``.

Every bad value must raise ValueError/TypeError whose message names the parameter (or the dotted
path) and shows the value: never pybind11's "incompatible constructor arguments", never a bare
``float() argument must be ...``, never an OverflowError, never a silent conversion (a numeric
string such as ``"5"`` accepted as 5.0, a bool accepted as a number). A value of the wrong type
raises a TypeError (``rl.ConfigTypeError``, a ValueError too); a value of the right type out of
its range a ValueError that is not a TypeError.

The constructors and leaves are enumerated, not listed: a class exported later from a policy
module, or a scenario field added later, is fuzzed automatically.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from typing import Any

import pytest
import reliability_lab as rl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_lab.scenario import _CONFIG_CLASSES, Scenario
from schema_walk import Leaf, all_leaves, build_legal, dotted_path, example

# The modules whose exported classes are runtime policies built from numbers.
_POLICY_MODULES = {
    "breaker", "retry", "bulkhead", "throttle", "budget", "backoff", "balancer", "hedging",
}


# Records the library hands out (results, listener events, handles), not configuration: built by
# the library from values it has already checked.
_RECORDS = {
    "Permit", "RetryContext", "RetryStats", "Transition", "HedgeContext", "HedgingStats",
}


def _constructors() -> list[type]:
    out = []
    for name in rl.__all__:
        obj = getattr(rl, name)
        if not inspect.isclass(obj) or issubclass(obj, BaseException) or name in _RECORDS:
            continue
        if obj in _CONFIG_CLASSES or obj.__module__.rsplit(".", 1)[-1] in _POLICY_MODULES:
            out.append(obj)
    return out


def _legal_kwargs(cls: type) -> dict[str, Any] | None:
    """Legal arguments for ``cls`` (its defaults, required numbers filled), or None if it cannot
    be built in this build (a policy whose native part the compiled module lacks)."""
    if cls in _CONFIG_CLASSES:
        ex = example(cls)
        return {f.name: getattr(ex, f.name) for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for p in inspect.signature(cls).parameters.values():
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                                p.KEYWORD_ONLY):
            kwargs[p.name] = 2 if "int" in str(p.annotation) else 1.0
    try:
        cls(**kwargs)
    except AttributeError:  # the native class is missing from this (older) compiled module
        return None
    return kwargs


def _is_int(annotation: str) -> bool:
    return annotation.replace(" | None", "") == "int"


def _numeric_params(cls: type) -> list[inspect.Parameter]:
    out = []
    for p in inspect.signature(cls).parameters.values():
        a = str(p.annotation).replace("'", "")
        if a.replace(" | None", "") in ("int", "float"):
            out.append(p)
    return out


CASES = [
    (cls, p)
    for cls in _constructors()
    if _legal_kwargs(cls) is not None
    for p in _numeric_params(cls)
]

# Bad for every number: wrong types, numeric strings, NaN, containers, bools, ints beyond a float.
_ALWAYS_BAD: list[Any] = ["5", "abc", "", math.nan, [], {}, (1,), [1.0], True, False, 10**400,
                          object()]
# Bad for an integer as well (seed's range ends at 2**64 - 1).
_BAD_INT: list[Any] = [1.5, 2.0, math.inf, -math.inf, 2**64, -(2**64), 10**30]


def _shown(value: Any) -> list[str]:
    """Ways a message may show the value."""
    if isinstance(value, float) and math.isnan(value):
        return ["nan"]
    if len(repr(value)) > 40:  # messages cut a long value (_checks.short_repr)
        return [repr(value)[:30]]
    return [repr(value), str(value), f"{value:g}" if isinstance(value, float) else repr(value)]


def _wrong_type(value: Any, kind: str) -> bool:
    """Whether ``value`` is of the wrong type for a parameter of ``kind``: "int", "float",
    "bool" or "str" (a choice is a str)."""
    if kind in ("bool", "str"):
        return not isinstance(value, bool if kind == "bool" else str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return kind == "int" and isinstance(value, float)


def _check(exc: BaseException, name: str, value: Any, kind: str) -> None:
    message = str(exc)
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {message}"
    wrong = _wrong_type(value, kind)
    assert isinstance(exc, TypeError) == wrong, f"{type(exc).__name__} for {value!r}: {message}"
    assert name in message, message
    assert " must " in message, message  # the expected type or range is said
    assert "incompatible constructor arguments" not in message, message
    assert "argument must be" not in message, message
    if type(value) is not object:  # a bare object() has no stable repr
        assert any(s in message for s in _shown(value)), message


def _bad_values(p: inspect.Parameter) -> list[Any]:
    a = str(p.annotation).replace("'", "")
    values = list(_ALWAYS_BAD)
    if p.default is not None and "None" not in a:  # `float | None = 0.05`: None is legal
        values.append(None)
    if _is_int(a):
        values += _BAD_INT
    return values


def _kind(p: inspect.Parameter) -> str:
    return "int" if _is_int(str(p.annotation).replace("'", "")) else "float"


def _id(case: tuple[type, inspect.Parameter]) -> str:
    return f"{case[0].__name__}.{case[1].name}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_constructor_rejects_bad_values(case: tuple[type, inspect.Parameter]) -> None:
    cls, p = case
    kwargs = _legal_kwargs(cls)
    assert kwargs is not None
    for bad in _bad_values(p):
        with pytest.raises(Exception) as info:
            cls(**{**kwargs, p.name: bad})
        _check(info.value, p.name, bad, _kind(p))


def _hints(cls: type) -> dict[str, Any]:
    """Resolved parameter hints (empty when a hint cannot be evaluated at run time, e.g.
    Retry's string-form ``RetryOn`` alias; its numeric parameters are fuzzed above)."""
    try:
        target = cls if dataclasses.is_dataclass(cls) else cls.__init__  # type: ignore[misc]
        return typing.get_type_hints(target)
    except (NameError, TypeError):
        return {}


def _word_cases() -> list[tuple[type, str, list[Any], str]]:
    """(class, parameter, bad values) for every bool, str and Literal parameter."""
    out = []
    for cls in _constructors():
        if _legal_kwargs(cls) is None:
            continue
        hints = _hints(cls)
        for p in inspect.signature(cls).parameters.values():
            hint = hints.get(p.name)
            args = typing.get_args(hint)
            optional = type(None) in args
            kinds = [a for a in args if a is not type(None)] if optional else [hint]
            if len(kinds) != 1:
                continue
            kind = kinds[0]
            if kind is bool:
                bad: list[Any] = ["yes", 1, 0, 1.0]
            elif kind is str:
                bad = [5, b"x", ["x"]]
            elif typing.get_origin(kind) is typing.Literal:
                bad = [5, b"x", ["x"], "__bogus__"]
            else:
                continue
            if not optional and p.default is not None:
                bad.append(None)
            out.append((cls, p.name, bad, "bool" if kind is bool else "str"))
    return out


WORD_CASES = _word_cases()


@pytest.mark.parametrize(
    "case", WORD_CASES, ids=[f"{c.__name__}.{n}" for c, n, _, _ in WORD_CASES]
)
def test_constructor_rejects_bad_words(case: tuple[type, str, list[Any], str]) -> None:
    """Bools, strings and choices: a bool given 1, a name given 5 or bytes, a choice unknown."""
    cls, name, bad_values, kind = case
    kwargs = _legal_kwargs(cls)
    assert kwargs is not None
    for bad in bad_values:
        with pytest.raises(Exception) as info:
            cls(**{**kwargs, name: bad})
        _check(info.value, name, bad, kind)


NUMERIC_LEAVES = [
    lf
    for lf in all_leaves()
    if str(lf.hint).replace(" | None", "") in ("int", "float", "<class 'int'>", "<class 'float'>")
    or lf.hint in (int, float, int | None, float | None)
]


def _leaf_kind(leaf: Leaf) -> str:
    return "int" if "int" in str(leaf.hint) else "float"


def _set_in_dict(d: dict[str, Any], leaf: Leaf, sc: Scenario, value: Any) -> None:
    node: Any = d
    obj: Any = sc
    for step in leaf.steps[:-1]:
        node, obj = node[step.name], getattr(obj, step.name)
        if step.sequence:
            node, obj = node[0], obj[0]
    node[leaf.name] = value


_JUNK = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.sampled_from(["5", "1e3", "nan", "inf", "0x10"]),
    st.sampled_from([math.nan, 10**400, -(10**400), True, False]),
    st.lists(st.floats(allow_nan=False), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
_BUILT = {lf.template(): build_legal(lf)[0] for lf in NUMERIC_LEAVES}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(NUMERIC_LEAVES), _JUNK)
def test_from_dict_leaf_rejects_bad_values(leaf: Leaf, bad: Any) -> None:
    sc = _BUILT[leaf.template()]
    if bad is None and "None" in str(leaf.hint):
        return  # None is a legal value of an optional field (e.g. a phase's failure_rate)
    d = sc.to_dict()
    _set_in_dict(d, leaf, sc, bad)
    with pytest.raises(Exception) as info:
        Scenario.from_dict(d)
    _check(info.value, dotted_path(leaf, sc), bad, _leaf_kind(leaf))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(CASES), _JUNK)
def test_constructor_rejects_junk(case: tuple[type, inspect.Parameter], bad: Any) -> None:
    """Wider junk than the fixed list, on every numeric parameter of every constructor."""
    cls, p = case
    if bad is None and (p.default is None or "None" in str(p.annotation)):
        return  # None is the parameter's legal default, or an optional parameter's legal value
    kwargs = _legal_kwargs(cls)
    assert kwargs is not None
    with pytest.raises(Exception) as info:
        cls(**{**kwargs, p.name: bad})
    _check(info.value, p.name, bad, _kind(p))


@pytest.mark.parametrize("leaf", NUMERIC_LEAVES, ids=[lf.template() for lf in NUMERIC_LEAVES])
def test_from_dict_leaf_rejects_each_bad_value(leaf: Leaf) -> None:
    """The fixed list, exhaustively per leaf (the hypothesis test above samples wider junk)."""
    sc = _BUILT[leaf.template()]
    values: list[Any] = [v for v in _ALWAYS_BAD if type(v) is not object]
    if "None" not in str(leaf.hint):
        values.append(None)
    if "int" in str(leaf.hint):
        values += _BAD_INT
    for bad in values:
        d = sc.to_dict()
        _set_in_dict(d, leaf, sc, bad)
        with pytest.raises(Exception) as info:
            Scenario.from_dict(d)
        _check(info.value, dotted_path(leaf, sc), bad, _leaf_kind(leaf))


def test_the_fuzz_covers_something() -> None:
    assert len(CASES) >= 40
    assert len(WORD_CASES) >= 15
    assert len(NUMERIC_LEAVES) >= 60
    names = {c.__name__ for c, _ in CASES}
    assert {"Breaker", "Backoff", "Retry", "Capacity", "Bulkhead", "AdaptiveThrottle"} <= names
