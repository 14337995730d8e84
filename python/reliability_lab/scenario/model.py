"""The :class:`Scenario` itself, its dict / JSON form (the codec every class's ``to_dict`` /
``from_dict`` uses) and access by dotted path (``get``, ``replace``, ``paths``)."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

from reliability_lab import _core, _schema
from reliability_lab._checks import NAME as _NAME
from reliability_lab._checks import at as _at
from reliability_lab._checks import join as _join
from reliability_lab.backoff import Backoff
from reliability_lab.breaker import Breaker
from reliability_lab.budget import RatioBudgetConfig, TokenBucketConfig
from reliability_lab.bulkhead import BulkheadConfig
from reliability_lab.retry import RetryConfig
from reliability_lab.scenario.arrivals import (
    _ARRIVALS,
    Arrivals,
    ClosedLoop,
    ConstantRate,
    Poisson,
    RateSegment,
    Schedule,
    Trace,
)
from reliability_lab.scenario.aws_retry_config import AwsRetryConfig
from reliability_lab.scenario.dependency import Dependency, Fallback
from reliability_lab.scenario.faults import Capacity, FailureMix, Faults, Phase, _phase_labels
from reliability_lab.scenario.hedge import FanOut, Hedge
from reliability_lab.scenario.intake import Intake
from reliability_lab.scenario.latency import Constant, Exponential, LogNormal, Mixture, Uniform
from reliability_lab.scenario.limit import Limit, RateLimit
from reliability_lab.scenario.queue_discipline import QueueDiscipline
from reliability_lab.scenario.replicas import OutlierDetection, ReplicaOverride, Replicas
from reliability_lab.scenario.service import Service
from reliability_lab.scenario.shedding import ShedClass, Shedding, Tenant, _tenant_labels
from reliability_lab.throttle import Throttle

# Each live Scenario's compiled config, by id (removed when the Scenario is collected).
_COMPILED: dict[int, _core.CompiledScenario] = {}

#: The version of the dict / JSON schema written by :meth:`Scenario.to_dict`.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Scenario:
    """The experiment: load, intake, workers, and the dependencies each order calls in sequence.

    Attributes:
        arrivals: where orders come from (:class:`Poisson`, :class:`ConstantRate`,
            :class:`Schedule`, :class:`Trace`, :class:`ClosedLoop`).
        workers: the worker pool, in [1, 100000].
        queue_capacity: the bounded job queue, in [0, 1e7]; a full queue rejects the order.
        duration: arrivals stop here (seconds, in (0, 1e6]); in-flight orders then drain.
        seed: seeds every random draw, in [0, 2**64 - 1]; the same seed gives the same run.
        dependencies: 1 to 16 dependencies with unique names, called in order.
        order_deadline: seconds from arrival to each order's absolute deadline, in [0, 1e6];
            0 is none.
        release_worker_during_backoff: False, the worker sleeps through backoff (the seed lab);
            True parks the order in a delay queue and serves others meanwhile.
        num_keys: orders carry a key in [0, num_keys) (what fallback caches are keyed by), in
            [1, 1e9].
        sample_every: the simulated engine samples time series every this many virtual seconds,
            in [0, 1e6]; 0 samples nothing. Regular while orders arrive and for the first 1000
            samples of the drain after ``duration``; then the interval doubles at each sample
            (1, 2, 4, ... times ``sample_every``), so that a drain of any length (a legal
            latency of days) adds about 1000 + log2(drain / sample_every) rows, not one per
            interval: the time series' memory stays bounded by the arrivals' span, not by how
            long the last orders take. A final row closes the run at its end.
        record_orders: keep one record per order (the ``orders`` table).
        record_events: keep breaker transitions and phase edges (the ``events`` table).
        intake: overload control at the intake (:class:`Intake`; ``intake.*`` paths).
        services: the other tiers of a service graph (:class:`Service`, up to 256, unique
            names, ``services[name].*`` paths), called by dependencies with ``service=name``;
            the scenario itself is the root service. Every service must be reachable from the
            root, and no service may call itself, directly or through others. Empty: a
            single-service scenario. Both engines run a graph (live: threads and a queue per
            service).
    """

    arrivals: Arrivals = Poisson(100.0)  # noqa: RUF009 (frozen: immutable, from another module)
    workers: int = 8
    queue_capacity: int = 64
    duration: float = 60.0
    seed: int = 0
    dependencies: Sequence[Dependency] = (Dependency("payment"),)
    order_deadline: float = 0.0
    release_worker_during_backoff: bool = False
    num_keys: int = 1000
    sample_every: float = 1.0
    record_orders: bool = True
    record_events: bool = True
    intake: Intake = Intake()  # noqa: RUF009 (frozen: immutable)
    services: Sequence[Service] = ()

    def __post_init__(self) -> None:
        # Python holds nested values as objects of their classes, lists as tuples and numbers
        # as their fields' types; every other check is the native reader's and the scenario
        # table's rules (ScenarioSchema), made once: a run takes the compiled config as it is
        # (simulate, Lab), checked once per Scenario, not again per run.
        _schema.expect("arrivals", self.arrivals, [c.__name__ for c in _ARRIVALS])
        _schema.expect("intake", self.intake, ["Intake"])
        for name, cls in (("dependencies", "Dependency"), ("services", "Service")):
            object.__setattr__(self, name, _schema.items(name, getattr(self, name), [cls]))
        sent = self.to_dict()
        for f in dataclasses.fields(self):
            if f.type in ("int", "float", "bool"):  # as given, not encoded: errors show it
                value = _schema.normal(str(f.type), getattr(self, f.name))
                object.__setattr__(self, f.name, value)
                sent[f.name] = value
        # Kept beside the instance, not in its __dict__ (Scenario(**vars(sc)) must still work).
        _COMPILED[id(self)] = _core.compile_scenario(sent)
        weakref.finalize(self, _COMPILED.pop, id(self), None)

    def compiled(self) -> _core.CompiledScenario:
        """The scenario as the engines run it: read and validated once, when it was built."""
        return _COMPILED[id(self)]

    # -- access by path ----------------------------------------------------------------------

    def dependency(self, name: str) -> Dependency:
        """The dependency called ``name``: one of the root's, or in a service graph a service's
        own as ``"<service>.<dependency>"`` (the results' label). KeyError if there is none."""
        return self._find(name)[1]

    def dependency_path(self, name: str) -> str:
        """The dotted path of dependency ``name`` (as :meth:`dependency` names it) in the
        scenario: ``"payment"`` or ``"services[risk].dependencies[score]"``, the prefix of
        :meth:`replace`'s paths under it. KeyError if there is none."""
        return self._find(name)[0]

    def dependency_labels(self) -> list[str]:
        """Every dependency's label: the root's, then each service's as
        ``"<service>.<dependency>"``."""
        return [d.name for d in self.dependencies] + [
            f"{s.name}.{d.name}" for s in self.services for d in s.dependencies
        ]

    def _find(self, name: str) -> tuple[str, Dependency]:
        service, _, dep = name.rpartition(".")
        if not service:
            deps, path = self.dependencies, dep
        else:
            tier = next((s for s in self.services if s.name == service), None)
            if tier is None:
                raise KeyError(name)
            deps, path = tier.dependencies, f"services[{service}].dependencies[{dep}]"
        for d in deps:
            if d.name == dep:
                return path, d
        raise KeyError(name)

    def get(self, path: str) -> Any:
        """The value at a dotted path, e.g. ``"payment.breaker.open_for"``, ``"workers"``,
        ``"payment.faults.phases[outage].end"``, ``"arrivals.rate"``."""
        obj: Any = self
        done = ""
        for name, index in self._steps(path):
            obj, done = _child(self, obj, name, index, done, path)
        return obj

    def replace(self, changes: Mapping[str, Any] | None = None, /, **fields: Any) -> Scenario:
        """A new, validated scenario with the values at some dotted paths replaced.

        ``changes`` maps paths to values (``{"payment.breaker.open_for": 5.0, "workers": 32}``);
        keyword arguments replace top-level fields. Changes to one object are applied together,
        so ``{"...latency.low": 3, "...latency.high": 4}`` works whatever the order. A path
        under a policy that is None (``"payment.breaker.open_for"`` with no breaker) is an
        error: set the policy to a whole config object first (``"payment.breaker": Breaker()``;
        a dict in ``to_dict()`` form works too). Unknown paths raise ValueError listing close
        matches; invalid values raise ValueError naming the path.
        """
        items = list((changes or {}).items()) + list(fields.items())
        parsed = []
        for path, value in items:
            steps = self._steps(path)
            if steps[0][0] not in _SCENARIO_FIELDS:
                # A dependency by name: its steps live under "dependencies[name]".
                self._dependency_or_fail(steps[0], path)
                steps = [("dependencies", steps[0][0]), *steps[1:]]
            parsed.append((steps, value, path))
        result: Scenario = _apply(self, self, Scenario, parsed, "")
        return result

    def paths(self) -> list[str]:
        """Every path :meth:`get` and :meth:`replace` accept for this scenario (elements of
        numeric lists such as trace times excluded)."""
        out: list[str] = []
        for f in dataclasses.fields(self):
            if f.name == "dependencies":
                out.append("dependencies")
                for d in self.dependencies:
                    out.append(d.name)
                    _collect_paths(d, d.name, out)
            elif f.name == "services":
                out.append("services")
                for s in self.services:
                    out.append(f"services[{s.name}]")
                    _collect_paths(s, f"services[{s.name}]", out)
            else:
                out.append(f.name)
                _collect_paths(getattr(self, f.name), f.name, out)
        return out

    def _steps(self, path: object) -> list[tuple[str, str | None]]:
        if not isinstance(path, str) or not path:
            raise ValueError(f"a path must be a non-empty dotted string, got {path!r}")
        steps: list[tuple[str, str | None]] = []
        for part in path.split("."):
            m = _STEP.match(part)
            if m is None:
                raise ValueError(f"{path!r} is not a valid path: bad component {part!r}")
            steps.append((m.group(1), m.group(2)))
        return steps

    def _dependency_or_fail(self, step: tuple[str, str | None], path: str) -> Dependency:
        name, index = step
        for d in self.dependencies:
            if d.name == name:
                if index is not None:
                    raise ValueError(f"{name!r} is a dependency, not a list: cannot index it")
                return d
        raise ValueError(_unknown(self, path, name, "the scenario has no field or dependency"))

    # -- dicts and JSON ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The scenario as a plain JSON-able dict.

        Keys are the field names at every level, plus ``"version"`` at the top and a ``"type"``
        tag in every union-valued object: arrivals (``poisson``, ``constant_rate``,
        ``schedule``, ``trace``, ``closed_loop``), latencies (``constant``, ``exponential``,
        ``lognormal``, ``uniform``, ``mixture``), phases (``phase``) and budgets
        (``token_bucket``, ``ratio``). Absent policies are None.
        """
        d: dict[str, Any] = {"version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            d[f.name] = _schema.encode(getattr(self, f.name))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scenario:
        """The inverse of :meth:`to_dict`. Missing keys take their defaults; unknown keys,
        wrong types and invalid values raise ValueError naming the dotted path."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a scenario dict must be a mapping, got {d!r}")
        body = dict(d)
        version = body.pop("version", SCHEMA_VERSION)
        if isinstance(version, bool) or version != SCHEMA_VERSION:
            raise ValueError(f"version must be {SCHEMA_VERSION}, got {version!r}")
        result: Scenario = _decode_config(cls, body, "")
        return result

    def to_json(self, indent: int | None = 2) -> str:
        """The scenario as JSON text (:meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Scenario:
        """The inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def __reduce__(self) -> tuple[Callable[..., Scenario], tuple[Any, ...]]:
        # Through the dict, the form every engine reads.
        return (Scenario.from_dict, (self.to_dict(),))


_SCENARIO_FIELDS = frozenset(f.name for f in dataclasses.fields(Scenario))
_STEP = re.compile(r"^([A-Za-z0-9_]+)(?:\[([^\[\]]+)\])?$")

# ------------------------------------------------------------------------------------------------
# Encoding and decoding

_CONFIG_CLASSES: frozenset[type] = frozenset(
    {
        Constant,
        Exponential,
        LogNormal,
        Uniform,
        Mixture,
        FailureMix,
        Phase,
        Capacity,
        Faults,
        Fallback,
        Dependency,
        Poisson,
        ConstantRate,
        RateSegment,
        Schedule,
        Trace,
        ClosedLoop,
        Scenario,
        Intake,
        QueueDiscipline,
        Limit,
        RateLimit,
        Breaker,
        RetryConfig,
        Backoff,
        TokenBucketConfig,
        RatioBudgetConfig,
        BulkheadConfig,
        Throttle,
        Hedge,
        FanOut,
        Replicas,
        ReplicaOverride,
        OutlierDetection,
        AwsRetryConfig,
        Service,
        Shedding,
        ShedClass,
        Tenant,
    }
)


_HINTS: dict[type, dict[str, Any]] = {}


def _field_hints(cls: type) -> dict[str, Any]:
    """The init fields of a config class and their type hints."""
    cached = _HINTS.get(cls)
    if cached is None:
        cached = _HINTS[cls] = _compute_field_hints(cls)
    return cached


def _compute_field_hints(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _is_union(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType)


def _config_classes(hint: Any) -> list[type]:
    """The config classes a field's hint admits."""
    args = get_args(hint) if _is_union(hint) else (hint,)
    return [a for a in args if isinstance(a, type) and a in _CONFIG_CLASSES]


def _sequence_element(hint: Any) -> Any | None:
    """The element hint of a Sequence[...] / tuple[..., ...] hint, else None."""
    if get_origin(hint) in (Sequence, tuple):
        args = get_args(hint)
        return args[0] if args else Any
    return None


def _decode(value: Any, hint: Any, path: str) -> Any:
    """Turns dicts (and lists of dicts) into config objects as ``hint`` says; anything else is
    returned as it is, for the owning class to validate."""
    if value is None:
        return None
    element = _sequence_element(hint)
    if element is Dependency:
        return _decode_dependencies(value, path.rsplit(".", 1)[0] if "." in path else "")
    if element is Service:
        return _decode_named(value, Service, "services", "")
    if element is not None:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            return value
        items = list(value)
        if element is Phase or element is Tenant:  # elements named in paths
            names = [
                i.get("name") if isinstance(i, Mapping) else getattr(i, "name", None) for i in items
            ]
            labels = _phase_labels(names) if element is Phase else _tenant_labels(names)
        else:
            labels = [f"{path.rsplit('.', 1)[-1]}[{i}]" for i in range(len(items))]
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        return tuple(
            _decode(v, element, _join(parent, label))
            for v, label in zip(items, labels, strict=True)
        )
    if isinstance(value, Mapping):
        classes = _config_classes(hint)
        if classes:
            return _decode_config(_pick_class(classes, value, path), value, path)
    return value


def _tag(cls: type) -> str | None:
    """The ``"type"`` tag of a class's dict form, if it has one."""
    return _schema.TAGS.get(cls.__name__)


def _pick_class(classes: list[type], d: Mapping[str, Any], path: str) -> type:
    tags = {_tag(c): c for c in classes if _tag(c) is not None}
    tag = d.get("type")
    if len(classes) == 1:
        cls = classes[0]
        if tag is not None and tag != _tag(cls):
            raise ValueError(f"{_join(path, 'type')} must be {_tag(cls)!r} here, got {tag!r}")
        return cls
    if tag not in tags:
        shown = ", ".join(repr(t) for t in tags)
        what = "is missing" if tag is None else f"is {tag!r}"
        raise ValueError(f"{_join(path, 'type')} must be one of {shown}; it {what}")
    return tags[tag]


def _decode_config(cls: type, d: Any, path: str) -> Any:
    if not isinstance(d, Mapping):
        raise ValueError(f"{path or 'scenario'} must be a dict, got {d!r}")
    hints = _field_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key == "type" and _tag(cls) is not None:
            if value != _tag(cls):
                raise ValueError(f"{_join(path, 'type')} must be {_tag(cls)!r}, got {value!r}")
            continue
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"{_join(path, str(key))} is not a field of {cls.__name__} "
                f"(fields: {', '.join(hints)}){hint}"
            )
        kwargs[key] = _decode(value, hints[key], _join(path, key))
    with _at(path):
        return cls(**kwargs)


def _decode_dependencies(value: Any, parent: str = "") -> Any:
    if parent:  # a service's dependencies: "services[name].dependencies[dep]"
        return _decode_named(value, Dependency, "dependencies", parent)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return value
    out = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            name = item.get("name", "payment")
            path = name if isinstance(name, str) and _NAME.match(name) else f"dependencies[{i}]"
            out.append(_decode_config(Dependency, item, path))
        else:
            out.append(item)
    return tuple(out)


def _decode_named(value: Any, cls: type, field: str, parent: str) -> Any:
    """A list of named config objects, each decoded under ``parent.field[name]`` (or
    ``[index]`` while its name is not usable in a path)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return value
    out = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            name = item.get("name")
            label = name if isinstance(name, str) and _NAME.match(name) else str(i)
            out.append(_decode_config(cls, item, _join(parent, f"{field}[{label}]")))
        else:
            out.append(item)
    return tuple(out)


# ------------------------------------------------------------------------------------------------
# Paths: get, replace, suggestions


def _fields_of(obj: Any) -> list[str] | None:
    """The addressable fields of a config object, or None if it is not one."""
    if type(obj) in _CONFIG_CLASSES:
        return list(_field_hints(type(obj)))
    return None


def _collect_paths(obj: Any, path: str, out: list[str]) -> None:
    names = _fields_of(obj)
    if names is None:
        return
    for name in names:
        value = getattr(obj, name)
        p = f"{path}.{name}"
        out.append(p)
        if isinstance(value, tuple) and value and type(value[0]) in _CONFIG_CLASSES:
            labels = (
                [f"{name}[{v.name}]" for v in value]
                if isinstance(value[0], (Dependency, Service))
                else _phase_labels([v.name for v in value])
                if isinstance(value[0], Phase)
                else _tenant_labels([v.name for v in value])
                if isinstance(value[0], Tenant)
                else [f"{name}[{i}]" for i in range(len(value))]
            )
            for label, v in zip(labels, value, strict=True):
                out.append(f"{path}.{label}")
                _collect_paths(v, f"{path}.{label}", out)
        else:
            _collect_paths(value, p, out)


def _unknown(sc: Scenario, path: str, name: str, what: str) -> str:
    known = sc.paths()
    close = [
        p
        for p in known
        if p.endswith("." + path.rsplit(".", 1)[-1]) and p.split(".")[0] == path.split(".")[0]
    ]
    close += difflib.get_close_matches(path, known, n=5, cutoff=0.6)
    close = list(dict.fromkeys(close))[:5]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown path {path!r}: {what} {name!r}{hint}"


def _resolve_index(seq: tuple[Any, ...], index: str, where: str) -> int:
    if index.isdigit():
        i = int(index)
        if i >= len(seq):
            raise ValueError(f"{where}[{index}] is out of range: {where} has {len(seq)} entries")
        return i
    matches = [i for i, v in enumerate(seq) if getattr(v, "name", None) == index]
    if len(matches) != 1:
        why = "no entry" if not matches else "more than one entry"
        raise ValueError(f"{where}[{index}]: {where} has {why} named {index!r}; use an index")
    return matches[0]


def _element_path(parent: str, name: str, seq: tuple[Any, ...], i: int) -> str:
    if name == "dependencies" and not parent:
        return str(seq[i].name)
    if name in ("dependencies", "services"):  # a service, or a service's dependency: by name
        return _join(parent, f"{name}[{seq[i].name}]")
    if name == "phases":
        return _join(parent, _phase_labels([p.name for p in seq])[i])
    if name == "tenants":
        return _join(parent, _tenant_labels([t.name for t in seq])[i])
    return _join(parent, f"{name}[{i}]")


def _child(
    sc: Scenario, obj: Any, name: str, index: str | None, done: str, path: str
) -> tuple[Any, str]:
    """One step of a path: the value and the path walked so far."""
    if obj is sc and name not in _SCENARIO_FIELDS:
        return sc._dependency_or_fail((name, index), path), name
    if obj is None:
        raise ValueError(f"{done} is None: cannot read {path!r}")
    fields = _fields_of(obj)
    if fields is None:
        raise ValueError(f"{done} is a {type(obj).__name__}, which has no field {name!r}")
    if name not in fields:
        raise ValueError(_unknown(sc, path, name, f"{done or 'the scenario'} has no field"))
    value = getattr(obj, name)
    here = _join(done, name)
    if index is None:
        return value, here
    if not isinstance(value, tuple):
        raise ValueError(f"{here} is not a list: cannot index it with [{index}]")
    i = _resolve_index(value, index, here)
    return value[i], _element_path(done, name, value, i)


_Change = tuple[list[tuple[str, str | None]], Any, str]


def _apply(sc: Scenario, obj: Any, hint: Any, changes: list[_Change], path: str) -> Any:
    """``obj`` with ``changes`` (relative steps, value, full path) applied, each object's
    changes in one dataclasses.replace."""
    whole = [c for c in changes if not c[0]]
    rest = [c for c in changes if c[0]]
    if whole:
        obj = _decode(whole[-1][1], hint, path)
    if not rest:
        return obj
    full = rest[0][2]
    if obj is None:
        raise ValueError(
            f"{path} is None: set {path!r} to a whole config object before setting {full!r}"
        )
    fields = _fields_of(obj)
    if fields is None:
        raise ValueError(
            f"{path} is a {type(obj).__name__}, which has no field {rest[0][0][0][0]!r} "
            f"(setting {full!r})"
        )
    hints = _field_hints(type(obj))
    by_field: dict[str, list[_Change]] = {}
    for steps, value, p in rest:
        name = steps[0][0]
        if name not in fields:
            raise ValueError(
                _unknown(
                    sc, p, name, f"{path or 'the scenario'} ({type(obj).__name__}) has no field"
                )
            )
        by_field.setdefault(name, []).append((steps, value, p))
    new: dict[str, Any] = {}
    for name, entries in by_field.items():
        fpath = _join(path, name)
        value = getattr(obj, name)
        plain = [(s[1:], v, p) for s, v, p in entries if s[0][1] is None]
        indexed = [(s, v, p) for s, v, p in entries if s[0][1] is not None]
        if plain:
            value = _apply(sc, value, hints[name], plain, fpath)
        if indexed:
            if not isinstance(value, tuple):
                raise ValueError(f"{fpath} is not a list: cannot index it ({indexed[0][2]!r})")
            element = _sequence_element(hints[name])
            items = list(value)
            by_index: dict[int, list[_Change]] = {}
            for s, v, p in indexed:
                index = s[0][1]
                assert index is not None
                i = _resolve_index(value, index, fpath)
                by_index.setdefault(i, []).append((s[1:], v, p))
            for i, sub in by_index.items():
                items[i] = _apply(sc, items[i], element, sub, _element_path(path, name, value, i))
            value = tuple(items)
        new[name] = value
    with _at(path):
        return dataclasses.replace(obj, **new)
