"""Walks the configuration dataclasses reachable from ``Scenario`` (no hard-coded field list).

Shared by ``test_schema_roundtrip.py`` and ``test_bad_values.py``: a field added to any scenario
class later is enumerated here automatically, so both tests cover it (and fail until it is wired).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reliability_lab.scenario import Dependency, Phase, Scenario, Service, Tenant, _field_hints
from reliability_lab.scenario.model import _config_classes, _is_union, _sequence_element


@dataclass(frozen=True)
class Step:
    """One step of a path from ``Scenario`` down: field ``name`` of class ``owner``."""

    owner: type
    name: str
    hint: Any
    child: type | None  # the config class stepped into (None for the leaf)
    sequence: bool  # the field is a sequence of ``child`` objects


@dataclass(frozen=True)
class Leaf:
    """A non-config field (number, bool, string, list of numbers...) at the end of ``steps``."""

    steps: tuple[Step, ...]

    @property
    def owner(self) -> type:
        return self.steps[-1].owner

    @property
    def name(self) -> str:
        return self.steps[-1].name

    @property
    def hint(self) -> Any:
        return self.steps[-1].hint

    def template(self) -> str:
        """A readable id: ``Scenario.dependencies[Dependency].faults[Faults].mix...``."""
        parts = []
        for s in self.steps:
            parts.append(f"{s.name}<{s.child.__name__}>" if s.child else s.name)
        return ".".join(parts)


def _dataclasses_in(hint: Any) -> list[type]:
    """The dataclasses a hint admits: the codec's config classes, and any other dataclass (a new
    config class not yet registered in the codec is walked, and its round trip fails loudly)."""
    args = typing.get_args(hint) if _is_union(hint) else (hint,)
    found = _config_classes(hint)
    found += [a for a in args if isinstance(a, type) and dataclasses.is_dataclass(a)
              and a not in found]
    return found


def _children(hint: Any) -> tuple[list[type], bool]:
    """The config classes a field holds, and whether it holds a sequence of them."""
    element = _sequence_element(hint)
    if element is not None:
        return _dataclasses_in(element), True
    return _dataclasses_in(hint), False


#: Sub-trees the validator refuses as a whole at some place, with the reason: a service's
#: ``intake.shedding`` (not modelled at a service yet; its fields are covered at the root's
#: ``intake``). ``test_schema_roundtrip`` checks each is refused with its
#: path. Keyed by the owner of the refused field under a ``Service``.
REFUSED_UNDER_SERVICE: dict[tuple[str, str], str] = {
    ("Intake", "shedding"): "load shedding is only modelled at the root's intake",
}


def _refused(cls: type, name: str, prefix: tuple[Step, ...]) -> bool:
    return (cls.__name__, name) in REFUSED_UNDER_SERVICE and any(
        s.owner is Service for s in prefix
    )


def walk(cls: type = Scenario, prefix: tuple[Step, ...] = ()) -> Iterator[Leaf]:
    """Every leaf field reachable from ``cls``, once per path of classes (a class already on the
    path, such as a Mixture inside a Mixture, is not entered again; a sub-tree of
    ``REFUSED_UNDER_SERVICE`` is not entered either)."""
    on_path = {s.owner for s in prefix} | {cls}
    for name, hint in _field_hints(cls).items():
        if _refused(cls, name, prefix):
            continue
        classes, sequence = _children(hint)
        if not classes:
            yield Leaf((*prefix, Step(cls, name, hint, None, False)))
            continue
        for child in classes:
            if child in on_path:
                continue
            yield from walk(child, (*prefix, Step(cls, name, hint, child, sequence)))


# ------------------------------------------------------------------------------------------------
# Example objects: each class built with its defaults, required fields filled generically.


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if _is_union(hint):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007
    return hint, False


def _filler(hint: Any, k: int, n: int) -> Any:
    """A plausible legal value for a required field: the k-th numeric field gets k + 1 (so that
    ``start < end``, ``low < high``...); sequences get ``n`` elements."""
    hint, _ = _unwrap_optional(hint)
    element = _sequence_element(hint)
    if element is not None:
        classes = _dataclasses_in(element)
        if classes:
            return tuple(example(classes[0], i) for i in range(n))
        return tuple(float(i + 1) / n for i in range(n))
    classes = _dataclasses_in(hint)
    if classes:
        return example(classes[0])
    if hint is str:
        return "p"
    if hint is int:
        return k + 1
    return float(k + 1)


def example(cls: type, index: int = 0) -> Any:
    """An instance of ``cls``: its defaults, required fields filled (``index`` shifts times so
    that several elements of one list do not overlap)."""
    required = [
        f
        for f in dataclasses.fields(cls)
        if f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    hints = _field_hints(cls)
    errors = []
    for n in (1, 2):
        kwargs = {}
        for k, f in enumerate(required):
            v = _filler(hints[f.name], k, n)
            if isinstance(v, float):
                v += 2.0 * index
            if f.name == "name":
                v = f"p{index}"
            kwargs[f.name] = v
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as e:
            errors.append(e)
    raise AssertionError(f"cannot build an example {cls.__name__}: {errors}")


# ------------------------------------------------------------------------------------------------
# Legal non-default values and illegal values for a leaf, derived from its hint and its default.

_CHOICES = re.compile(r"must be one of (.*?)(?:, got|;|$)")


def choices(leaf: Leaf) -> list[str] | None:
    """The allowed strings of a string field: from a Literal hint, else from the error the class
    raises for a bogus string (so a plain ``str`` choice is found too); None for free text."""
    hint, _ = _unwrap_optional(leaf.hint)
    if typing.get_origin(hint) is typing.Literal:
        return [str(a) for a in typing.get_args(hint)]
    try:
        dataclasses.replace(example(leaf.owner), **{leaf.name: "__bogus__"})
    except (ValueError, TypeError) as e:
        m = _CHOICES.search(str(e))
        if m:
            return re.findall(r"'([^']*)'|\"([^\"]*)\"", m.group(1)) and [
                a or b for a, b in re.findall(r"'([^']*)'|\"([^\"]*)\"", m.group(1))
            ]
    return None


def legal_candidates(leaf: Leaf, default: Any) -> list[Any]:
    """Values to try, in order, as a legal non-default value of the leaf."""
    if _calls_service(leaf):
        return [TARGET]  # the service every scenario built for this leaf declares
    hint, optional = _unwrap_optional(leaf.hint)
    if hint is bool:
        return [not default]
    if isinstance(default, str) or hint is str or typing.get_origin(hint) is typing.Literal:
        allowed = choices(leaf)
        if allowed:
            return [a for a in allowed if a != default]
        return [f"{default}x" if default else "other"]
    if isinstance(default, tuple):
        if all(isinstance(x, str) for x in default):
            return [default[:1], default[1:], default[:-1]]
        if all(isinstance(x, (int, float)) for x in default):
            return [
                tuple(x * 0.5 for x in default),
                tuple(x + 0.5 for x in default),
                tuple(x * 2 for x in default),
            ]
    base = 0.0 if default is None else default
    if hint is int or (isinstance(base, int) and not isinstance(base, bool) and not optional):
        out = [base + 1, base * 2, base - 1, 1, 2, 3, 0, 100]
    else:
        out = [base * 2, base / 2, base + 0.5, 0.5, 0.25, 1.5, 3.0, 0.1, 0.01, base - 0.5, 10.0]
    seen: list[Any] = []
    for v in out:
        if v != default and v not in seen and not (isinstance(v, float) and math.isnan(v)):
            seen.append(v)
    return seen


def illegal_value(leaf: Leaf, default: Any) -> Any:
    """A value no field of this kind accepts."""
    hint, _ = _unwrap_optional(leaf.hint)
    if hint is bool:
        return "yes"
    if isinstance(default, str) or hint is str or typing.get_origin(hint) is typing.Literal:
        return 5 if choices(leaf) is None else "__bogus__"
    if isinstance(default, tuple) and default and all(isinstance(x, str) for x in default):
        return ["__bogus__"]
    if isinstance(default, tuple):
        return [math.nan]
    return math.nan


# ------------------------------------------------------------------------------------------------
# Embedding: a Scenario in which the leaf holds a given value.


def _with(obj: Any, name: str, value: Any) -> Any:
    return dataclasses.replace(obj, **{name: value})


#: The service a ``Dependency.service`` leaf calls (declared by every scenario built for it).
TARGET = "target"


def _calls_service(leaf: Leaf) -> bool:
    return leaf.owner is Dependency and leaf.name == "service"


def _with_services(
    sc: Scenario, services: tuple[Service, ...], deps: tuple[Dependency, ...] | None = None
) -> Scenario:
    """``sc`` with ``services``, each called by a root dependency of its own (``call0``,
    ``call1``...: named by position, so that renaming a service renames no caller), since an
    unreachable service is an error."""
    callers = tuple(
        Dependency(f"call{i}", service=svc.name) for i, svc in enumerate(services)
    )
    own = tuple(sc.dependencies) if deps is None else deps
    return dataclasses.replace(sc, services=services, dependencies=(*own, *callers))


def references(leaf: Leaf, base: Scenario, value: Any) -> dict[str, Any]:
    """The other paths a change of ``leaf`` to ``value`` must change too, by path: renaming a
    service renames its callers' ``service`` references."""
    if leaf.owner is not Service or leaf.name != "name":
        return {}
    old = base.services[0].name
    return {d.name + ".service": value for d in base.dependencies if d.service == old}


def build(leaf: Leaf, value: Any) -> Scenario:
    """A scenario whose ``leaf`` holds ``value``, every class on the way an example of it."""
    return _embed(leaf, _with(example(leaf.owner), leaf.name, value))


def _embed(leaf: Leaf, current: Any) -> Scenario:
    """``current`` (an instance of the leaf's owner) placed in a scenario along the leaf's path."""
    objs = [Scenario()] + [example(s.child) for s in leaf.steps[:-1] if s.child is not None]
    # A Dependency.service leaf needs the service it may call (built with and without it).
    extra = (Service(TARGET),) if _calls_service(leaf) else ()
    if len(leaf.steps) == 1:
        return _with_services(current, extra) if extra else current
    # objs[i] is the owner of steps[i]; build bottom-up.
    for i in range(len(leaf.steps) - 2, -1, -1):
        step = leaf.steps[i]
        parent = objs[i]
        if step.sequence:
            existing = tuple(getattr(parent, step.name))
            items = (current, *existing[1:])
            if i == 0 and step.name == "services":
                current = _with_services(parent, (*items, *extra))
                extra = ()
                continue
            if i == 0 and extra:  # the root's dependencies (the only other root sequence)
                current = _with_services(parent, extra, items)
                continue
            current = _with(parent, step.name, items)
        else:
            current = _with(parent, step.name, current)
    assert isinstance(current, Scenario)
    return current


def build_legal(leaf: Leaf) -> tuple[Scenario, Any, Scenario]:
    """(a scenario whose leaf holds a legal non-default value, the value, the same scenario with
    the default). A value that another field of the same object must accompany (an error that
    names a sibling field, e.g. ``slow_call_duration`` must be set when
    ``slow_call_rate_threshold`` is) is tried together with the sibling's legal values."""
    default = default_at(leaf)
    base = build(leaf, default)
    errors: list[str] = []
    siblings = [n for n in _field_hints(leaf.owner) if n != leaf.name]
    for value in legal_candidates(leaf, default):
        try:
            return build(leaf, value), value, base
        except (ValueError, TypeError) as e:
            errors.append(f"{value!r}: {e}")
            named = [n for n in siblings if re.search(rf"\b{n}\b", str(e))]
        for name in named:
            other = Leaf((*leaf.steps[:-1], Step(leaf.owner, name, _field_hints(leaf.owner)[name],
                                                 None, False)))
            for companion in legal_candidates(other, default_at(other)):
                try:
                    both = build_pair(leaf, value, name, companion)
                    with_companion = build_pair(leaf, default, name, companion)
                except (ValueError, TypeError):
                    continue
                return both, value, with_companion
    raise AssertionError(f"no legal non-default value found for {leaf.template()}: {errors}")


def build_pair(leaf: Leaf, value: Any, sibling: str, sibling_value: Any) -> Scenario:
    """Like :func:`build`, with a sibling field of the leaf's owner set too."""
    owner = dataclasses.replace(example(leaf.owner), **{leaf.name: value, sibling: sibling_value})
    return _embed(leaf, owner)


def dotted_path(leaf: Leaf, sc: Scenario, *, by_index: bool = False) -> str:
    """The path ``Scenario.get`` / error messages use for the leaf in ``sc``; ``by_index``
    names the leaf's own list element by index (how errors name an element whose name is itself
    bad)."""
    parts: list[str] = []
    obj: Any = sc
    last = max((i for i, s in enumerate(leaf.steps) if s.sequence), default=-1)
    for i, step in enumerate(leaf.steps):
        value = getattr(obj, step.name)
        if step.sequence:
            element = value[0]
            if by_index and i == last:
                parts.append(f"{step.name}[0]")
            elif isinstance(element, Dependency) and obj is sc:
                parts.append(element.name)
            elif isinstance(element, (Dependency, Service, Phase, Tenant)):  # named in paths
                parts.append(f"{step.name}[{element.name}]")
            else:
                parts.append(f"{step.name}[0]")
            obj = element
        else:
            parts.append(step.name)
            obj = value
    return ".".join(parts)


def default_at(leaf: Leaf) -> Any:
    return getattr(example(leaf.owner), leaf.name)


def all_leaves() -> list[Leaf]:
    return list(walk())
