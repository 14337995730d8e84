"""Scenario and study files: TOML, YAML or JSON, with errors that point at the line.

A *scenario file* holds the dict of :meth:`Scenario.to_dict() <reliability_lab.Scenario.to_dict>`,
in whole or in part: missing keys take their defaults, exactly as
:meth:`Scenario.from_dict <reliability_lab.Scenario.from_dict>` does (it is what reads the file)::

    # lab.toml
    workers = 16
    duration = 60
    arrivals = { type = "poisson", rate = 200 }

    [[dependencies]]
    name = "payment"
    breaker = { consecutive_failures = 5, open_for = 5.0 }

    [dependencies.faults]
    failure_rate = 0.3

TOML has no null: leave a policy out to keep it off. ``load_scenario("lab.toml")`` (also
``.yaml``/``.yml``/``.json``) returns the :class:`~reliability_lab.Scenario`.

A *study file* describes a sweep: the scenario (inline under ``scenario`` or by
``scenario_file``, relative to the study file), a ``grid`` of dotted path -> values, ``seeds``,
and optionally ``n`` (random search: values are then lists of choices or
``{low, high, log, integer}`` ranges), ``random_state`` and ``metrics``. See :class:`Study`.

**Errors** are :class:`ScenarioFileError` (a ``ValueError``) whose message reads
``file:line: dotted.path: problem``, e.g.
``lab.toml:9: payment.breaker.open_for: must be a finite number in (0, 1e+06], got 0``. The
dotted path is the scenario's (dependencies by name, phases by name), as ``from_dict`` names it;
the line is found by walking that path through the document: YAML (and JSON, read for positions
with the YAML composer) gives every node's line; for TOML, whose standard reader keeps no
positions, a small scanner records the line of every key, table header, array-of-tables element
and array element (see :func:`_toml_lines`). Where a path goes deeper than the file (a default
value), the line of its deepest part that is in the file is given.

:func:`scenario_json_schema` is a JSON Schema (draft 2020-12) of the scenario dict, generated
from the dataclass tree, for editors (``reliability-lab schema > scenario.schema.json``).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import math
import numbers
import re
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pandas as pd

from reliability_lab.scenario import (
    _CONFIG_CLASSES,
    _SCENARIO_FIELDS,
    SCHEMA_VERSION,
    Scenario,
    _field_hints,
    _tag,
)

__all__ = [
    "ScenarioFileError",
    "Study",
    "load_scenario",
    "load_study",
    "scenario_json_schema",
]

_DocPath = tuple[str | int, ...]


class ScenarioFileError(ValueError):
    """A scenario or study file that cannot be read or is not valid.

    Attributes:
        file: the file, as given.
        line: the 1-based line the problem is at, or None when it has no place in the file.
        path: the dotted path of the offending value (e.g. ``payment.breaker.open_for``), or None.
        problem: what is wrong.
    """

    def __init__(self, file: str, line: int | None, path: str | None, problem: str) -> None:
        self.file = file
        self.line = line
        self.path = path
        self.problem = problem
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {path}: {problem}" if path else f"{where}: {problem}")

    def __reduce__(self) -> tuple[type[ScenarioFileError], tuple[str, int | None, str | None, str]]:
        return (ScenarioFileError, (self.file, self.line, self.path, self.problem))


def _short(value: Any) -> str:
    """``repr(value)``, cut to a length that fits in a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------------------------
# Reading a document and the lines of its parts


def _toml() -> Any:
    return importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")


def _yaml() -> Any:
    try:
        return importlib.import_module("yaml")  # untyped: no stubs needed
    except ImportError:
        raise ImportError(
            "YAML files need PyYAML: pip install 'reliability-lab[study]'"
        ) from None


class _Stop(Exception):
    """The TOML scanner met something it does not follow; it keeps the lines found so far."""


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^\s,\]\}#]+")


class _TomlScanner:
    """Records the line of every key, table and array element of a TOML document.

    ``tomllib`` parses the document (it is run first, so the text is known to be valid); this
    only follows its structure: table headers (``[a.b]``), arrays of tables (``[[a]]``, each
    header a new element), dotted keys, inline tables and arrays (possibly over several lines),
    and strings (so that brackets and ``#`` inside them are not taken for structure). Scalars
    are skipped. A document path is the tuple of keys and list indices leading to a value, as
    in the dict ``tomllib`` returns.
    """

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[_DocPath, int] = {(): 1}
        self.tables: dict[_DocPath, int] = {}  # array of tables -> index of its last element

    def _advance_to(self, j: int) -> None:
        self.line += self.s.count("\n", self.i, j)
        self.i = j

    def _skip(self, newlines: bool) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t\r":
                self.i += 1
            elif c == "\n" and newlines:
                self.i += 1
                self.line += 1
            elif c == "#":
                j = s.find("\n", self.i)
                self.i = len(s) if j < 0 else j
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip(False)
        if not self.s.startswith(token, self.i):
            raise _Stop
        self.i += len(token)

    def _string(self) -> str:
        s, q = self.s, self.s[self.i]
        start = self.i
        if s.startswith(q * 3, self.i):
            end = s.find(q * 3, self.i + 3)
            if end < 0:
                raise _Stop
            while s.startswith(q, end + 3):  # up to two quotes may end the content
                end += 1
            self._advance_to(end + 3)
            return ""
        j = self.i + 1
        while j < len(s) and s[j] != q and s[j] != "\n":
            j += 2 if q == '"' and s[j] == "\\" else 1
        if j >= len(s) or s[j] != q:
            raise _Stop
        self.i = j + 1
        # Decoded by tomllib itself, so that a quoted key matches the parsed dict's key.
        value = _toml().loads("k = " + s[start : j + 1])["k"]
        return str(value)

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip(False)
            if self.i < len(self.s) and self.s[self.i] in "\"'":
                parts.append(self._string())
            else:
                m = _BARE_KEY.match(self.s, self.i)
                if m is None:
                    raise _Stop
                parts.append(m.group())
                self.i = m.end()
            self._skip(False)
            if not self.s.startswith(".", self.i):
                return parts
            self.i += 1

    def _record(self, base: _DocPath, keys: Sequence[str | int], line: int) -> _DocPath:
        path = base
        for k in keys:
            path = (*path, k)
            self.lines.setdefault(path, line)
        return path

    def _header_path(self, keys: list[str]) -> _DocPath:
        """A header's keys as a document path: an array of tables means its last element."""
        path: _DocPath = ()
        for k in keys:
            path = (*path, k)
            if path in self.tables:
                path = (*path, self.tables[path])
        return path

    def _value(self, path: _DocPath) -> None:
        self._skip(False)
        c = self.s[self.i] if self.i < len(self.s) else ""
        if c == "{":
            self.i += 1
            while True:
                self._skip(True)
                if self.s.startswith("}", self.i):
                    self.i += 1
                    return
                line = self.line
                sub = self._record(path, self._key(), line)
                self._expect("=")
                self._value(sub)
                self._skip(True)
                if self.s.startswith(",", self.i):
                    self.i += 1
                elif not self.s.startswith("}", self.i):
                    raise _Stop
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self._skip(True)
                if self.s.startswith("]", self.i):
                    self.i += 1
                    return
                sub = self._record(path, [index], self.line)
                self._value(sub)
                index += 1
                self._skip(True)
                if self.s.startswith(",", self.i):
                    self.i += 1
                elif not self.s.startswith("]", self.i):
                    raise _Stop
        elif c in ("'", '"'):
            self._string()
        else:
            m = _SCALAR.match(self.s, self.i)
            if m is None:
                raise _Stop
            self.i = m.end()
            # A date-time may hold one space ("1979-05-27 07:32:00").
            t = re.compile(r" \d\d:\d\d[^\s,\]\}#]*").match(self.s, self.i)
            if t is not None and re.fullmatch(r"\d{4}-\d\d-\d\d", m.group()):
                self.i = t.end()

    def scan(self) -> dict[_DocPath, int]:
        table: _DocPath = ()
        try:
            while True:
                self._skip(True)
                if self.i >= len(self.s):
                    break
                line = self.line
                if self.s.startswith("[[", self.i):
                    self.i += 2
                    keys = self._key()
                    self._expect("]]")
                    array = (*self._header_path(keys[:-1]), keys[-1])
                    index = self.tables.get(array, -1) + 1
                    self.tables[array] = index
                    table = self._record(array[:-1], [array[-1], index], line)
                elif self.s.startswith("[", self.i):
                    self.i += 1
                    keys = self._key()
                    self._expect("]")
                    table = self._header_path(keys)
                    self._record((), table, line)
                else:
                    path = self._record(table, self._key(), line)
                    self._expect("=")
                    self._value(path)
        except (_Stop, IndexError, ValueError):
            pass  # keep what was found: lines are a help, not a requirement
        return self.lines


def _toml_lines(text: str) -> dict[_DocPath, int]:
    """The 1-based line of every part of a (valid) TOML document, by document path."""
    return _TomlScanner(text).scan()


def _yaml_lines(text: str) -> dict[_DocPath, int]:
    """The 1-based line of every part of a YAML (or JSON) document, from the composed nodes."""
    yaml = _yaml()
    lines: dict[_DocPath, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {(): 1}

    def walk(node: Any, path: _DocPath) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, _yaml_key(key.value))
                lines.setdefault(sub, key.start_mark.line + 1)
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                lines.setdefault((*path, i), value.start_mark.line + 1)
                walk(value, (*path, i))

    lines[()] = 1 if root is None else root.start_mark.line + 1
    walk(root, ())
    return lines


def _yaml_key(value: Any) -> str | int:
    return value if isinstance(value, (str, int)) else str(value)


_TOML_AT = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


@dataclass
class _Document:
    """A file's data, and the line of each of its parts, found when an error needs one (a
    valid file, however large, is parsed once)."""

    file: str
    data: Any
    find_lines: Callable[[], dict[_DocPath, int]] = dict
    _lines: dict[_DocPath, int] | None = None

    def line_of(self, path: _DocPath) -> int | None:
        """The line of ``path``, or of its deepest prefix that is in the file."""
        if self._lines is None:
            self._lines = self.find_lines()
        for n in range(len(path), -1, -1):
            line = self._lines.get(path[:n])
            if line is not None:
                return line
        return None

    def error(self, path: _DocPath, shown: str | None, problem: str) -> ScenarioFileError:
        return ScenarioFileError(self.file, self.line_of(path), shown, problem)


def _read(path: str | Path) -> _Document:
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioFileError(file, None, None, e.strerror or str(e)) from None
    except UnicodeDecodeError as e:
        raise ScenarioFileError(file, None, None, f"not UTF-8 text ({e.reason})") from None
    suffix = p.suffix.lower()
    if suffix == ".toml":
        tomllib = _toml()
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            msg = str(e)
            m = _TOML_AT.search(msg)
            if m is not None:
                raise ScenarioFileError(file, int(m.group(1)), None, msg[: m.start()]) from None
            m = _TOML_AT_END.search(msg)
            line = text.count("\n") + 1 if m is not None else None
            raise ScenarioFileError(file, line, None, msg[: m.start()] if m else msg) from None
        return _Document(file, data, lambda: _toml_lines(text))
    if suffix in (".yaml", ".yml"):
        try:
            yaml = _yaml()
        except ImportError as e:
            raise ScenarioFileError(file, None, None, str(e)) from None
        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            problem = ", ".join(str(x) for x in (e.context, e.problem) if x)
            line = mark.line + 1 if mark is not None else None
            raise ScenarioFileError(file, line, None, problem or "invalid YAML") from None
        except yaml.YAMLError as e:
            raise ScenarioFileError(file, None, None, f"invalid YAML: {e}") from None
        return _Document(file, data, lambda: _yaml_lines(text))
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ScenarioFileError(file, e.lineno, None, e.msg) from None
        def json_lines() -> dict[_DocPath, int]:
            try:
                return _yaml_lines(text)  # JSON is (nearly) YAML: its composer knows the lines
            except ImportError:
                return {(): 1}

        return _Document(file, data, json_lines)
    raise ScenarioFileError(
        file,
        None,
        None,
        f"unknown file type {suffix or '(none)'!r}: use .toml, .yaml, .yml or .json",
    )


# ------------------------------------------------------------------------------------------------
# Scenarios

_PATH_STEP = r"[A-Za-z0-9_]+(?:\[[^\]\s]+\])?"
_MESSAGE = re.compile(rf"^({_PATH_STEP}(?:\.{_PATH_STEP})*)(?::\s+|\s+)(.*)$", re.S)
_STEP = re.compile(r"^([A-Za-z0-9_]+)(?:\[([^\]]+)\])?$")


def _walk(data: Any, path: str) -> tuple[_DocPath, bool]:
    """A scenario's dotted path (dependencies by name, phases by name or index) as a document
    path into the scenario dict ``data``, as far as the document goes; and whether it got
    past the first step."""
    out: list[str | int] = []
    node = data
    for n, part in enumerate(path.split(".")):
        m = _STEP.match(part)
        if m is None:
            break
        name, index = m.group(1), m.group(2)
        if isinstance(node, Mapping) and name in node:
            out.append(name)
            node = node[name]
        elif n == 0 and isinstance(node, Mapping) and isinstance(node.get("dependencies"), list):
            found = [
                j
                for j, d in enumerate(node["dependencies"])
                if isinstance(d, Mapping) and d.get("name", "payment") == name
            ]
            if not found:
                return tuple(out), False
            out += ["dependencies", found[0]]
            node = node["dependencies"][found[0]]
        else:
            return tuple(out), n > 0
        if index is not None:
            if not isinstance(node, list):
                break
            if index.isdigit():
                j = int(index)
            else:
                named = [
                    k
                    for k, v in enumerate(node)
                    if isinstance(v, Mapping) and v.get("name") == index
                ]
                j = named[0] if len(named) == 1 else len(node)
            if j >= len(node):
                break
            out.append(j)
            node = node[j]
    return tuple(out), True


def _scenario_error(doc: _Document, base: _DocPath, data: Any, e: Exception) -> ScenarioFileError:
    """A ``from_dict`` error as a :class:`ScenarioFileError` at the line of its dotted path."""
    message = " ".join(str(e).split())  # one line
    m = _MESSAGE.match(message)
    prefix = ".".join(str(k) for k in base)
    if m is not None:
        path, problem = m.group(1), m.group(2)
        where, resolved = _walk(data, path)
        first = _STEP.match(path.split(".")[0])
        if resolved or "." in path or "[" in path or (first and first.group(1) in _SCENARIO_FIELDS):
            shown = f"{prefix}.{path}" if prefix else path
            return doc.error((*base, *where), shown, problem)
    return doc.error(base, prefix or None, message)


def _scenario_from(doc: _Document, base: _DocPath, data: Any) -> Scenario:
    if not isinstance(data, Mapping):
        what = ".".join(str(k) for k in base) or "the file"
        problem = f"{what} must be a table of scenario fields, got {_short(data)}"
        raise doc.error(base, None, problem)
    try:
        return Scenario.from_dict(data)
    except (ValueError, TypeError) as e:
        raise _scenario_error(doc, base, data, e) from None


def load_scenario(path: str | Path) -> Scenario:
    """The scenario in a TOML, YAML (``.yaml``/``.yml``) or JSON file.

    The file holds :meth:`Scenario.to_dict` in whole or in part; missing keys take their
    defaults (:meth:`Scenario.from_dict`).

    Raises:
        ScenarioFileError: the file cannot be read, is not valid TOML/YAML/JSON, or does not
            describe a valid scenario; the message reads ``file:line: dotted.path: problem``.
    """
    doc = _read(path)
    return _scenario_from(doc, (), doc.data)


# ------------------------------------------------------------------------------------------------
# Studies

_STUDY_KEYS = ("scenario", "scenario_file", "grid", "seeds", "n", "random_state", "metrics")
_RANGE_KEYS = frozenset({"low", "high", "log", "integer"})


def _is_range(value: Any) -> bool:
    return isinstance(value, Mapping) and {"low", "high"} <= set(value) <= _RANGE_KEYS


def _flatten_grid(
    doc: _Document, grid: Mapping[str, Any], prefix: str, base: _DocPath, out: dict[str, Any]
) -> dict[_DocPath, str]:
    """``grid`` with nested tables joined into dotted paths (``[grid.payment.breaker]`` and
    ``"payment.breaker.open_for"`` keys both work); the document path of every entry."""
    where: dict[_DocPath, str] = {}
    for key, value in grid.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and not _is_range(value):
            where.update(_flatten_grid(doc, value, path, (*base, key), out))
        else:
            if path in out:
                raise doc.error((*base, key), f"grid.{path}", "is given twice")
            out[path] = value
            at = (*base, key)
            where[at] = path
    return where


@dataclass(frozen=True)
class Study:
    """A sweep described by a file: :func:`~reliability_lab.sweep` of ``scenario`` over ``grid``.

    Attributes:
        scenario: the base scenario.
        grid: dotted path -> list of values (a grid), or with ``n``, a list of choices or a
            :class:`~reliability_lab.Range`.
        seeds: the seeds every point runs with (a study file without ``seeds`` runs the
            scenario's own seed).
        n: the number of random points (random search), or None for a grid.
        random_state: seeds the draws of a random search.
        metrics: the summary columns to keep (None: all).
    """

    scenario: Scenario
    grid: Mapping[str, Any]
    seeds: tuple[int, ...] = (0,)
    n: int | None = None
    random_state: int = 0
    metrics: tuple[str, ...] | None = None

    def run(self, **kwargs: Any) -> pd.DataFrame:
        """Runs the study with :func:`~reliability_lab.sweep` (keyword arguments such as
        ``progress`` or ``max_workers`` are passed on); returns its DataFrame."""
        from reliability_lab.sweep import sweep

        df: pd.DataFrame = sweep(
            self.scenario,
            dict(self.grid),
            self.seeds,
            n=self.n,
            metrics=list(self.metrics) if self.metrics is not None else None,
            random_state=self.random_state,
            **kwargs,
        )
        return df

    def to_dict(self) -> dict[str, Any]:
        """The study as a plain JSON-able dict (the scenario inline); :meth:`from_dict`
        inverts it."""
        from reliability_lab.sweep import Range

        grid = {
            k: dataclasses.asdict(v) if isinstance(v, Range) else list(v)
            for k, v in self.grid.items()
        }
        return {
            "scenario": self.scenario.to_dict(),
            "grid": grid,
            "seeds": list(self.seeds),
            "n": self.n,
            "random_state": self.random_state,
            "metrics": list(self.metrics) if self.metrics is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Study:
        """A study from its dict form (as in a study file, with the scenario inline)."""
        return _study_from(_Document("<study>", d), None)


def _study_from(doc: _Document, directory: Path | None) -> Study:
    from reliability_lab.sweep import Range

    d = doc.data
    if not isinstance(d, Mapping):
        raise doc.error((), None, f"a study must be a table, got {_short(d)}")
    d = {k: v for k, v in d.items() if v is not None}  # a null in JSON/YAML: left out
    for key in d:
        if key not in _STUDY_KEYS:
            close = difflib.get_close_matches(str(key), _STUDY_KEYS, n=2, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise doc.error(
                (key,), str(key), f"is not a study key (keys: {', '.join(_STUDY_KEYS)}){hint}"
            )
    if ("scenario" in d) == ("scenario_file" in d):
        raise doc.error((), None, "a study needs exactly one of 'scenario' and 'scenario_file'")
    if "scenario" in d:
        scenario = _scenario_from(doc, ("scenario",), d["scenario"])
    else:
        ref = d["scenario_file"]
        if not isinstance(ref, str) or not ref:
            problem = f"must be a path, got {_short(ref)}"
            raise doc.error(("scenario_file",), "scenario_file", problem)
        if directory is None:
            raise doc.error(
                ("scenario_file",), "scenario_file", "needs a study read from a file"
            )
        scenario = load_scenario(directory / ref)

    def integer(key: str, value: Any, lo: int, where: _DocPath | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
            raise doc.error(where or (key,), key, f"must be an integer >= {lo}, got {value!r}")
        return int(value)

    n = integer("n", d["n"], 1) if "n" in d else None
    random_state = integer("random_state", d.get("random_state", 0), 0)
    seeds_raw = d.get("seeds", [scenario.seed])
    if isinstance(seeds_raw, (str, Mapping)) or not isinstance(seeds_raw, Sequence):
        raise doc.error(("seeds",), "seeds", f"must be a list of seeds, got {_short(seeds_raw)}")
    if not seeds_raw:
        raise doc.error(("seeds",), "seeds", "must have at least one seed")
    seeds = tuple(
        integer(f"seeds[{i}]", s, 0, ("seeds", i)) for i, s in enumerate(seeds_raw)
    )
    metrics: tuple[str, ...] | None = None
    if "metrics" in d:
        m = d["metrics"]
        if isinstance(m, str) or not isinstance(m, Sequence) or not all(
            isinstance(x, str) for x in m
        ):
            problem = f"must be a list of column names, got {_short(m)}"
            raise doc.error(("metrics",), "metrics", problem)
        metrics = tuple(m)
        # The summary's columns (they depend on the dependencies and phases): a run stopped at
        # time 0 has them all. An unknown name would otherwise be a column of NaN.
        from reliability_lab.sim import simulate

        quick = scenario.replace({"record_orders": False, "sample_every": 0.0})
        columns = list(simulate(quick, until=0.0).summary.index)
        for i, name in enumerate(metrics):
            if name not in columns:
                close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise doc.error(
                    ("metrics", i), f"metrics[{i}]", f"{name!r} is not a summary column{hint}"
                )
    raw_grid = d.get("grid", {})
    if not isinstance(raw_grid, Mapping):
        problem = f"must be a table of path = values, got {_short(raw_grid)}"
        raise doc.error(("grid",), "grid", problem)
    flat: dict[str, Any] = {}
    where = _flatten_grid(doc, raw_grid, "", ("grid",), flat)
    grid: dict[str, Any] = {}
    for at, path in where.items():
        value = flat[path]
        shown = f"grid.{path}"
        if n is not None and _is_range(value):
            try:
                value = Range(**value)
            except (ValueError, TypeError) as e:
                raise doc.error(at, shown, str(e)) from None
            rng = value
            probes = [int(x) if rng.integer else x for x in (rng.low, rng.high)]
        elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0:
            value = list(value)
            probes = value
        else:
            what = "a non-empty list of values" + (" or {low, high} range" if n else "")
            raise doc.error(at, shown, f"must be {what}, got {_short(value)}")
        if path == "seed":
            raise doc.error(at, shown, "is not sweepable: list the seeds under 'seeds'")
        # Every value on its own (a range: its bounds), checked now to point at its line; a
        # combination of values that is invalid together is found when the sweep reaches it.
        for i, probe in enumerate(probes):
            try:
                scenario.replace({path: probe})
            except (ValueError, TypeError) as e:
                here = (*at, i) if isinstance(value, list) else at
                raise doc.error(here, shown, " ".join(str(e).split())) from None
        grid[path] = value
    return Study(scenario, grid, seeds, n, random_state, metrics)


def load_study(path: str | Path) -> Study:
    """The study (a sweep) in a TOML, YAML or JSON file; see :class:`Study`::

        scenario_file = "seed_lab.toml"     # or an inline [scenario] table
        seeds = [1, 2, 3]
        metrics = ["success_rate", "latency_p99"]

        [grid]
        "payment.breaker.consecutive_failures" = [1, 3, 5, 10]
        "payment.faults.failure_rate" = [0.1, 0.3]

    Raises:
        ScenarioFileError: as :func:`load_scenario`; a bad grid path or value is reported at
            its line in the study file.
    """
    doc = _read(path)
    return _study_from(doc, Path(path).parent)


# ------------------------------------------------------------------------------------------------
# JSON Schema

_INTERVAL = re.compile(
    r"must be (?:a finite number|an integer) in ([\[(])([^,\]]+), ([^\])]+)([\])])"
)


def _samples() -> dict[type, Any]:
    """A valid instance of every config class (to vary one field of when probing ranges)."""
    from reliability_lab import scenario as s

    return {
        s.Constant: s.Constant(0.01),
        s.Exponential: s.Exponential(0.05),
        s.LogNormal: s.LogNormal(0.05, 0.5),
        s.Uniform: s.Uniform(0.01, 0.02),
        s.Phase: s.Phase("p", 0.0, 1.0),
        s.Poisson: s.Poisson(1.0),
        s.ConstantRate: s.ConstantRate(1.0),
        s.RateSegment: s.RateSegment(0.0, 1.0, 1.0, 1.0),
    }


def _probe_interval(cls: type, name: str, hint: Any) -> dict[str, float]:
    """The bounds of a numeric field, read from its validator's own message (so the schema
    cannot drift from the code): the field is set to values no range admits and the
    ``must be ... in [lo, hi]`` part of the error is parsed. Empty when nothing is learnt."""
    sample = _samples().get(cls)
    if sample is None:
        try:
            sample = cls()
        except (TypeError, ValueError):
            return {}
    base = {f: getattr(sample, f) for f in _field_hints(cls)}
    big: list[Any] = [-(2**62), 2**62] if hint is int else [-1e300, 1e300]
    for probe in ["probe", *big]:
        try:
            cls(**{**base, name: probe})
        except (ValueError, TypeError) as e:
            m = _INTERVAL.search(str(e))
            if m is None:
                continue
            out: dict[str, float] = {}
            for bound, bracket, key, open_key in (
                (m.group(2), m.group(1), "minimum", "exclusiveMinimum"),
                (m.group(3), m.group(4), "maximum", "exclusiveMaximum"),
            ):
                value: float
                power = re.fullmatch(r"2\*\*(\d+) - 1", bound.strip())  # the seed's bound
                if re.fullmatch(r"-?\d+", bound.strip()):
                    value = int(bound)  # exact: 2**64 - 1 does not survive a float
                elif power is not None:
                    value = 2 ** int(power.group(1)) - 1
                else:
                    try:
                        value = float(bound)
                    except ValueError:
                        continue
                    if not math.isfinite(value):
                        continue
                out[open_key if bracket in "()" else key] = value
            return out
    return {}


def _is_union(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType)


def _def_name(cls: type) -> str:
    return cls.__name__


def _hint_schema(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if get_origin(hint) is Literal:
        return {"type": "string", "enum": list(get_args(hint))}
    origin = get_origin(hint)
    if origin in (Sequence, tuple, list):
        args = get_args(hint)
        return {"type": "array", "items": _hint_schema(args[0], defs) if args else {}}
    if _is_union(hint):
        options = [_hint_schema(a, defs) for a in get_args(hint) if a is not type(None)]
        if len(options) > 1:  # config classes told apart by their tag, which is then required
            options = [{**o, "required": ["type"]} if "$ref" in o else o for o in options]
        schema: dict[str, Any] = options[0] if len(options) == 1 else {"oneOf": options}
        if type(None) in get_args(hint):
            schema = {"anyOf": [schema, {"type": "null"}]}
        return schema
    if isinstance(hint, type) and hint in _CONFIG_CLASSES:
        name = _def_name(hint)
        if name not in defs:
            defs[name] = {}  # placeholder: recursion
            defs[name] = _class_schema(hint, defs)
        return {"$ref": f"#/$defs/{name}"}
    return {}


def _class_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = _field_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    props: dict[str, Any] = {}
    required: list[str] = []
    tag = _tag(cls)
    if tag is not None:
        props["type"] = {"const": tag}
    for name, hint in hints.items():
        schema = _hint_schema(hint, defs)
        bare = hint if not _is_union(hint) else next(
            (a for a in get_args(hint) if a is not type(None)), hint
        )
        if bare in (int, float):
            bounds = _probe_interval(cls, name, bare)
            target = schema if "type" in schema else schema["anyOf"][0]
            target.update(bounds)
        f = fields.get(name)
        default: Any
        if f is not None and f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = dataclasses.MISSING
        if default is dataclasses.MISSING:
            required.append(name)
        elif default is None or isinstance(default, (bool, int, float, str)):
            schema = {**schema, "default": default}
        doc = _field_doc(cls, name)
        if doc:
            schema = {**schema, "description": doc}
        props[name] = schema
    out: dict[str, Any] = {
        "type": "object",
        "title": cls.__name__,
        "properties": props,
        "additionalProperties": False,
    }
    if cls.__doc__:
        out["description"] = cls.__doc__.strip().split("\n\n")[0].replace("\n", " ")
    if required:
        out["required"] = required
    return out


def _field_doc(cls: type, name: str) -> str:
    """The ``name: ...`` entry of a class's ``Attributes:`` docstring section, if any."""
    doc = cls.__doc__ or ""
    entry = rf"^\s+(?:[\w, ]*\b){re.escape(name)}\b[\w, ]*: (.+(?:\n\s{{12,}}.+)*)"
    m = re.search(entry, doc, re.M)
    return " ".join(m.group(1).split()) if m else ""


def scenario_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the scenario dict of :meth:`Scenario.to_dict`, and so of
    scenario files, generated from the dataclass tree.

    Every field has its type; fields without a default are required; string choices are
    enums; union-valued objects (arrivals, latencies, budgets) are ``oneOf`` their classes,
    told apart by their ``type`` tag; numeric ranges are the validators' own (read from their
    error messages). Unknown keys are refused, as :meth:`Scenario.from_dict` refuses them.
    Cross-field rules (phases must not overlap, ``low <= high``, ...) are left to the loader.
    """
    defs: dict[str, Any] = {}
    root = _class_schema(Scenario, defs)
    root["properties"] = {
        "version": {"const": SCHEMA_VERSION, "default": SCHEMA_VERSION},
        **root["properties"],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://reliability-lab.invalid/scenario.schema.json",
        **root,
        "title": "reliability-lab scenario",
        "$defs": defs,
    }
