"""Round trip of every configuration field reachable from ``rl.Scenario`` (issue #11).

The fields are enumerated by walking the scenario dataclasses (``schema_walk.walk``), never from
a hard-coded list: a field added later is covered automatically, and this test fails until the
field round-trips through every form the engine's configuration takes:

* the dict and JSON codec (``to_dict`` / ``from_dict``, ``to_json`` / ``from_json``) give back
  an equal scenario whose dotted path reads the value set;
* the native config the engines run (``_core.scenario_config_dump``: the same dict reader
  ``rl.simulate`` uses, written back to a dict by the bindings' reverse writer) holds the value:
  every native leaf that differs from the default scenario's equals the value (or, for times,
  the value in nanoseconds), and a list field appears as a native list. The reverse writer
  is the generic one in its engines' form (nanoseconds as ``<name>_ns``, None as its sentinel,
  no ``"type"`` tags), so there is no native -> ``Scenario`` reader; the read-back is matched
  by value, not by a hand-written field map (which a new field would escape);
* an illegal value, set by dotted path (``Scenario.replace``) or inside the dict
  (``Scenario.from_dict``), raises ValueError/TypeError naming that path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
import reliability_lab as rl
from reliability_lab import _core
from reliability_lab.scenario import _CONFIG_CLASSES, Dependency, Phase, Scenario
from schema_walk import (
    REFUSED_UNDER_SERVICE,
    Leaf,
    all_leaves,
    build_legal,
    default_at,
    dotted_path,
    illegal_value,
    references,
)

LEAVES = all_leaves()

# Fields that truly cannot round-trip, with the reason. Empty: every field does. Keep it so: an
# entry here needs a reason a reviewer accepts.
ALLOW: dict[str, str] = {}


def _ids(leaf: Leaf) -> str:
    return leaf.template()


def test_walk_finds_the_schema() -> None:
    """The walker sees the whole tree: the walk is not silently empty or shallow."""
    names = {(lf.owner.__name__, lf.name) for lf in LEAVES}
    for expected in [
        ("Scenario", "workers"),
        ("Breaker", "open_for"),
        ("Backoff", "jitter"),
        ("Capacity", "load_slope"),
        ("FailureMix", "retry_after"),
        ("RateSegment", "rate_end"),
    ]:
        assert expected in names
    assert len(LEAVES) >= 100


def test_every_config_class_is_known_to_the_codec() -> None:
    """A dataclass reachable from Scenario that the dict codec does not know cannot round-trip."""
    classes = {s.child for lf in LEAVES for s in lf.steps if s.child is not None}
    missing = sorted(c.__name__ for c in classes - _CONFIG_CLASSES)
    assert not missing, f"add {missing} to scenario.model._CONFIG_CLASSES"


def _native(sc: Scenario) -> dict[str, Any]:
    out: dict[str, Any] = _core.scenario_config_dump(sc.to_dict())
    return out


def _flat(x: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _flat(v, f"{path}.{k}")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from _flat(v, f"{path}[{i}]")
    else:
        yield path, x


def _lists(x: Any) -> Iterator[list[Any]]:
    if isinstance(x, dict):
        for v in x.values():
            yield from _lists(v)
    elif isinstance(x, (list, tuple)):
        yield list(x)
        for v in x:
            yield from _lists(v)


def _forms(value: Any) -> list[Any]:
    """How the native config may hold a Python value: as is, or seconds as nanoseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value, round(value * 1e9), math.floor(value * 1e9 + 0.5)]
    return [value]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        return math.isclose(a, b, rel_tol=1e-12)
    return bool(a == b)


def _reads_back(value: Any, native: dict[str, Any], native_base: dict[str, Any]) -> bool:
    """Whether the native config holds ``value`` where it differs from the default's."""
    if isinstance(value, tuple):  # a list field: some native list is the value, element-wise
        return any(
            len(lst) == len(value)
            and any(all(_same(x, f) for x, f in zip(lst, fs, strict=True))
                    for fs in zip(*(_forms(v) for v in value), strict=True))
            for lst in _lists(native)
        )
    a, b = dict(_flat(native)), dict(_flat(native_base))
    changed = [a.get(k) for k in a.keys() | b.keys() if a.get(k) != b.get(k)]
    return bool(changed) and all(any(_same(c, f) for f in _forms(value)) for c in changed)


def _set_in_dict(d: dict[str, Any], leaf: Leaf, sc: Scenario, value: Any) -> None:
    """Sets the leaf inside ``sc.to_dict()``-form ``d``, following the same steps as the path."""
    node: Any = d
    obj: Any = sc
    for step in leaf.steps[:-1]:
        node = node[step.name]
        obj = getattr(obj, step.name)
        if step.sequence:
            node, obj = node[0], obj[0]
    node[leaf.name] = value


@pytest.mark.parametrize("leaf", LEAVES, ids=_ids)
def test_field_round_trips(leaf: Leaf) -> None:
    if leaf.template() in ALLOW:
        pytest.skip(ALLOW[leaf.template()])
    sc, value, base = build_legal(leaf)
    path = dotted_path(leaf, sc)
    assert sc.get(path) == value
    assert sc.get(path) != default_at(leaf)

    back = Scenario.from_dict(sc.to_dict())
    assert back == sc
    assert back.get(path) == value
    assert Scenario.from_json(sc.to_json()) == sc
    # Set by path (the default's path: a name field renames its element), the same scenario.
    # (Renaming a service renames its callers' references too: schema_walk.references.)
    assert base.replace({dotted_path(leaf, base): value, **references(leaf, base, value)}) == sc

    native, native_base = _native(sc), _native(base)
    assert native != native_base, f"{path} = {value!r} does not reach the native config"
    assert _reads_back(value, native, native_base), f"{path}: native config does not hold {value!r}"


@pytest.mark.parametrize("leaf", LEAVES, ids=_ids)
def test_illegal_value_names_the_path(leaf: Leaf) -> None:
    sc, _, _ = build_legal(leaf)
    path = dotted_path(leaf, sc)
    bad = illegal_value(leaf, default_at(leaf))
    with pytest.raises((ValueError, TypeError)) as by_path:
        sc.replace({path: bad})
    assert path in str(by_path.value)
    assert "incompatible constructor arguments" not in str(by_path.value)

    d = sc.to_dict()
    _set_in_dict(d, leaf, sc, bad)
    with pytest.raises((ValueError, TypeError)) as by_dict:
        Scenario.from_dict(d)
    message = str(by_dict.value)
    if leaf.name == "name":  # a bad name cannot name its element: errors use the index
        path = dotted_path(leaf, sc, by_index=True)
    assert path in message, message
    assert "incompatible constructor arguments" not in message
    shown = "nan" if isinstance(bad, float) and math.isnan(bad) else repr(bad).strip("[]")
    assert shown in message or str(bad) in message, message


def test_coverage_is_complete() -> None:
    """Fields covered / fields total: 100% save the commented allow-list."""
    covered = [lf for lf in LEAVES if lf.template() not in ALLOW]
    assert len(covered) == len(LEAVES), f"{len(covered)}/{len(LEAVES)}"
    assert not set(ALLOW) - {lf.template() for lf in LEAVES}, "stale allow-list entries"


def test_refused_subtrees_are_refused_with_their_path() -> None:
    """What the walker skips (schema_walk.REFUSED_UNDER_SERVICE) is refused, naming the path, by
    the Python class and by the native validator (a dict that bypasses the class)."""
    # A service's intake.rate_limit is modelled (its leaves round-trip as every other field).
    assert set(REFUSED_UNDER_SERVICE) == {("Intake", "shedding")}
    values = {"shedding": rl.Shedding()}
    base = Scenario(
        dependencies=(Dependency("call", service="b"),), services=(rl.Service(name="b"),)
    )
    for (_, name), value in zip(REFUSED_UNDER_SERVICE, values.values(), strict=True):
        path = f"services[b].intake.{name}"
        with pytest.raises(ValueError, match=re.escape(path)):
            rl.Service(name="b", intake=rl.Intake(**{name: value}))
        with pytest.raises(ValueError, match=re.escape(path)):
            base.replace({f"services[b].intake.{name}": value})
        d = base.to_dict()
        d["services"][0]["intake"][name] = _encoded(value)
        with pytest.raises(ValueError, match=re.escape(path)):
            _core.validate_scenario(d)


def _encoded(value: Any) -> Any:
    from reliability_lab._schema import encode

    return encode(value)


# Referenced so that the imports document which classes name their elements in paths.
_ = (Dependency, Phase)
