"""Scenario and study files: loading, errors at file:line: path, JSON Schema, Parquet results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import reliability_lab as rl
from reliability_lab import presets
from reliability_lab.files import ScenarioFileError, _toml, _toml_lines

tomllib = _toml()  # tomllib, or tomli before Python 3.11

yaml = pytest.importorskip("yaml")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(path: Path) -> ScenarioFileError:
    with pytest.raises(ScenarioFileError) as info:
        rl.load_scenario(path)
    return info.value


# ------------------------------------------------------------------------------------------------
# Loading


def test_examples_toml_and_yaml_describe_the_same_scenario() -> None:
    a = rl.load_scenario(EXAMPLES / "seed_lab.toml")
    b = rl.load_scenario(EXAMPLES / "seed_lab.yaml")
    assert a == b
    assert a.workers == 16 and a.seed == 42
    pay = a.dependency("payment")
    assert pay.breaker is not None and pay.breaker.open_for == 5.0
    assert pay.retry is not None and pay.retry.max_attempts == 4
    assert a.get("payment.faults.phases[outage].end") == 35.0


def test_json_file_is_to_json(tmp_path: Path) -> None:
    sc = presets.pricing_scenario()
    p = write(tmp_path, "s.json", sc.to_json())
    assert rl.load_scenario(p) == sc


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("p.toml", "workers = 3\n[[dependencies]]\nname = 'db'\n"),
        ("p.yaml", "workers: 3\ndependencies:\n  - name: db\n"),
        ("p.json", '{"workers": 3, "dependencies": [{"name": "db"}]}'),
    ],
)
def test_partial_file_takes_the_defaults(tmp_path: Path, name: str, text: str) -> None:
    sc = rl.load_scenario(write(tmp_path, name, text))
    assert sc == rl.Scenario(workers=3, dependencies=[rl.Dependency("db")])


def test_empty_toml_is_the_default_scenario(tmp_path: Path) -> None:
    assert rl.load_scenario(write(tmp_path, "e.toml", "")) == rl.Scenario()


# ------------------------------------------------------------------------------------------------
# Errors: file, line, dotted path

SEED_TOML = (EXAMPLES / "seed_lab.toml").read_text()
SEED_YAML = (EXAMPLES / "seed_lab.yaml").read_text()


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the (unique) line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


@pytest.mark.parametrize(
    ("old", "new", "path", "problem"),
    [
        ("open_for = 5.0", "open_for = 0", "payment.breaker.open_for", "(0, 1e+06]"),
        ("end = 35", "end = 10", "payment.faults.phases[outage].end", "greater than start"),
        ('rate = 100', 'rate = "fast"', "arrivals.rate", "'fast'"),
        ("mean = 0.05", "mean = -1", "payment.faults.latency.mean", "[0, 1e+06]"),
        ("charges = true", "chargez = true", "payment.chargez", "did you mean charges"),
        ("jitter = \"full\"", "jitter = \"fuzzy\"", "payment.retry.backoff.jitter", "fuzzy"),
        ("workers = 16", "workers = 0", "workers", "[1, 100000]"),
    ],
)
def test_toml_error_names_file_line_and_path(
    tmp_path: Path, old: str, new: str, path: str, problem: str
) -> None:
    text = SEED_TOML.replace(old, new)
    assert text != SEED_TOML
    p = write(tmp_path, "lab.toml", text)
    e = error_of(p)
    assert e.line == line_of(text, new), str(e)
    assert e.path == path
    assert problem in e.problem
    assert str(e).startswith(f"{p}:{e.line}: {path}: ")


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("open_for: 5.0", "open_for: 0", "payment.breaker.open_for"),
        ("end: 35,", "end: 10,", "payment.faults.phases[outage].end"),
        ("rate: 100}", "rate: fast}", "arrivals.rate"),
        ("max_attempts: 4", "max_attempts: 0", "payment.retry.max_attempts"),
        ("charges: true", "chargez: true", "payment.chargez"),
    ],
)
def test_yaml_error_names_file_line_and_path(
    tmp_path: Path, old: str, new: str, path: str
) -> None:
    text = SEED_YAML.replace(old, new)
    assert text != SEED_YAML
    p = write(tmp_path, "lab.yaml", text)
    e = error_of(p)
    assert (e.line, e.path) == (line_of(text, new), path), str(e)


def test_json_error_line_and_dependency_by_name(tmp_path: Path) -> None:
    text = '{"workers": 4,\n "dependencies": [\n  {"name": "a"},\n  {"name": "db",\n' \
        '   "breaker": {"open_for": -1}}]}\n'
    e = error_of(write(tmp_path, "s.json", text))
    assert (e.line, e.path) == (5, "db.breaker.open_for")


def test_error_deeper_than_the_file_points_at_the_deepest_part(tmp_path: Path) -> None:
    # The phase's failure rate is the default; its mix has no weight: reported at the phase.
    text = (
        "[[dependencies]]\nname = 'db'\n[dependencies.faults]\nfailure_rate = 0.5\n"
        "mix = { http503 = 0 }\n"
    )
    e = error_of(write(tmp_path, "m.toml", text))
    assert e.path is not None and e.path.startswith("db.faults.mix")
    assert e.line == 5


def test_duplicate_dependency_names_point_at_the_second(tmp_path: Path) -> None:
    text = "[[dependencies]]\nname = 'db'\n\n[[dependencies]]\nname = 'db'\n"
    e = error_of(write(tmp_path, "d.toml", text))
    assert e.path == "dependencies[1].name" and e.line == 5


def test_error_without_a_path_keeps_the_file(tmp_path: Path) -> None:
    e = error_of(write(tmp_path, "l.yaml", "- 1\n- 2\n"))
    assert str(e).startswith(f"{tmp_path / 'l.yaml'}:1: ")


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("s.toml", "workers = 3\nduration = = 4\n", 2),
        ("s.toml", "workers = 3\n[arrivals\n", 2),
        ("s.yaml", "workers: 3\ndependencies:\n  - name: db\n bad: [\n", 4),
        ("s.json", '{"workers": 3,\n "duration": }\n', 2),
    ],
)
def test_syntax_errors_point_at_the_line(tmp_path: Path, name: str, text: str, line: int) -> None:
    e = error_of(write(tmp_path, name, text))
    assert e.line == line, str(e)
    assert e.path is None
    assert "\n" not in str(e)


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioFileError, match=r"unknown file type '\.ini'"):
        rl.load_scenario(write(tmp_path, "s.ini", "workers = 3"))
    with pytest.raises(ScenarioFileError, match="No such file"):
        rl.load_scenario(tmp_path / "absent.toml")


def test_toml_scanner_follows_the_structure() -> None:
    text = """# comment [not a table]
title = "a [b] # c"
multi = \"\"\"line one
[still a string]
\"\"\"
"dotted.key" = 1
a.b.c = 2

[arrivals]
type = "schedule"
segments = [
  { start = 0, end = 5, rate_start = 1, rate_end = 1 },  # one
  # a comment line
  { start = 5, end = 9, rate_start = 2, rate_end = 2 },
]

[[dependencies]]
name = "x"

[[dependencies]]
name = "y"
[dependencies.faults]
latency = { type = "uniform", low = 1 }
[[dependencies.faults.phases]]
name = "p"
[[dependencies.faults.phases]]
name = "q"
when = 1979-05-27 07:32:00
after = 3
"""
    tomllib.loads(text)  # valid TOML
    lines = _toml_lines(text)
    assert lines[("title",)] == 2
    assert lines[("multi",)] == 3
    assert lines[("dotted.key",)] == 6
    assert lines[("a", "b", "c")] == 7
    assert lines[("arrivals",)] == 9
    assert lines[("arrivals", "segments", 0)] == 12
    assert lines[("arrivals", "segments", 1)] == 14
    assert lines[("arrivals", "segments", 1, "end")] == 14
    assert lines[("dependencies", 0, "name")] == 18
    assert lines[("dependencies", 1)] == 20
    assert lines[("dependencies", 1, "faults")] == 22
    assert lines[("dependencies", 1, "faults", "latency", "low")] == 23
    assert lines[("dependencies", 1, "faults", "phases", 1, "name")] == 27
    assert lines[("dependencies", 1, "faults", "phases", 1, "after")] == 29


# ------------------------------------------------------------------------------------------------
# The JSON Schema

jsonschema = pytest.importorskip("jsonschema")


def validator() -> Any:
    schema = rl.scenario_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_example_scenario_validates_against_the_schema() -> None:
    v = validator()
    docs = {
        "seed_lab.toml": tomllib.loads((EXAMPLES / "seed_lab.toml").read_text()),
        "seed_lab.yaml": yaml.safe_load((EXAMPLES / "seed_lab.yaml").read_text()),
    }
    study = tomllib.loads((EXAMPLES / "breaker_study.toml").read_text())
    assert "scenario_file" in study
    for path in sorted(EXAMPLES.iterdir()):
        if path.suffix in (".toml", ".yaml") and path.name not in docs:
            assert "study" in path.name, f"{path.name}: add it to this test"
    for name, doc in docs.items():
        assert list(v.iter_errors(doc)) == [], name


@pytest.mark.parametrize(
    "scenario",
    [
        rl.Scenario(),
        presets.go_lab_scenario(),
        presets.microservices_scenario(),
        presets.pricing_scenario(),
        rl.Scenario(
            arrivals=rl.Schedule.spike(10, 50, 5, 10, 20),
            dependencies=[
                rl.Dependency(
                    "db",
                    faults=rl.Faults(
                        latency=rl.Mixture.of((0.9, rl.Exponential(0.01)), (0.1, rl.Constant(1))),
                        phases=[rl.Outage(1, 2), rl.Brownout(3, 4)],
                    ),
                    budget=rl.RatioBudgetConfig(),
                    bulkhead=rl.BulkheadConfig(max_concurrent=4),
                    throttle=rl.Throttle(),
                    fallback=rl.Fallback(kind="default"),
                )
            ],
        ),
        rl.Scenario(arrivals=rl.ClosedLoop(clients=3, think_time=rl.LogNormal(0.1, 0.5))),
        rl.Scenario(arrivals=rl.Trace([0.0, 0.5, 1.0]), seed=2**64 - 1),
    ],
)
def test_to_dict_validates_against_the_schema(scenario: rl.Scenario) -> None:
    assert list(validator().iter_errors(scenario.to_dict())) == []


@pytest.mark.parametrize(
    "doc",
    [
        {"workers": 0},
        {"workers": 1.5},
        {"seed": 2**64},
        {"duration": 0},
        {"wrokers": 3},
        {"arrivals": {"rate": 5}},  # a union: its type tag is required
        {"arrivals": {"type": "poisson", "rate": 0}},
        {"dependencies": [{"name": "db", "composition": "sideways"}]},
        {"dependencies": [{"name": "db", "breaker": {"open_for": -1}}]},
        {"dependencies": [{"name": "db", "faults": {"failure_rate": 2}}]},
        {"dependencies": [{"name": "db", "retry": {"backoff": {"jitter": "fuzzy"}}}]},
    ],
)
def test_schema_refuses_what_the_loader_refuses(doc: dict[str, Any]) -> None:
    assert list(validator().iter_errors(doc)) != []
    with pytest.raises(ValueError):
        rl.Scenario.from_dict(doc)


def test_schema_has_types_defaults_enums_and_ranges() -> None:
    s = rl.scenario_json_schema()
    workers = s["properties"]["workers"]
    assert workers["type"] == "integer" and workers["default"] == 8
    assert (workers["minimum"], workers["maximum"]) == (1, 100_000)
    assert s["properties"]["seed"]["maximum"] == 2**64 - 1
    assert s["properties"]["duration"]["exclusiveMinimum"] == 0
    dep = s["$defs"]["Dependency"]["properties"]
    assert dep["composition"]["enum"] == ["retry_outside_breaker", "breaker_outside_retry"]
    assert s["$defs"]["Phase"]["required"] == ["name", "start", "end"]
    assert "required" not in s["$defs"]["Dependency"]


# ------------------------------------------------------------------------------------------------
# Studies


def test_example_study() -> None:
    st = rl.load_study(EXAMPLES / "breaker_study.toml")
    assert st.scenario == rl.load_scenario(EXAMPLES / "seed_lab.toml")
    assert st.grid == {
        "payment.breaker.consecutive_failures": [3, 5, 10, 20],
        "payment.breaker.open_for": [1.0, 5.0],
    }
    assert st.seeds == (1, 2, 3) and st.n is None
    assert st.metrics is not None and "success_rate" in st.metrics
    df = st.run(progress=False)
    assert len(df) == 4 * 2 * 3
    assert list(df.columns[:4]) == [
        "point", "payment.breaker.consecutive_failures", "payment.breaker.open_for", "seed",
    ]


def test_study_inline_scenario_nested_grid_and_random_search(tmp_path: Path) -> None:
    text = """
seeds = [0, 1]
n = 4
random_state = 7

[scenario]
duration = 5
arrivals = { type = "poisson", rate = 20 }

[[scenario.dependencies]]
name = "db"
breaker = { open_for = 2.0 }

[grid.db.breaker]
open_for = { low = 0.5, high = 8, log = true }
consecutive_failures = [2, 4, 8]
"""
    st = rl.load_study(write(tmp_path, "s.toml", text))
    assert st.scenario.duration == 5 and st.n == 4 and st.random_state == 7
    assert st.grid["db.breaker.open_for"] == rl.Range(0.5, 8, log=True)
    assert st.grid["db.breaker.consecutive_failures"] == [2, 4, 8]
    df = st.run(progress=False, max_workers=1)
    assert len(df) == 8
    again = rl.Study.from_dict(json.loads(json.dumps(st.to_dict())))
    assert again == st


@pytest.mark.parametrize(
    ("text", "line", "path", "problem"),
    [
        ('scenario_file = "x.toml"\n[grid]\n"payment.breakr.open_for" = [1]\n', 3,
         "grid.payment.breakr.open_for", "unknown path"),
        ('scenario_file = "x.toml"\n[grid]\n"payment.breaker.open_for" = [0, 1]\n', 3,
         "grid.payment.breaker.open_for", "(0, 1e+06]"),
        ('scenario_file = "x.toml"\n[grid]\n"workers" = 3\n', 3, "grid.workers", "list"),
        ('scenario_file = "x.toml"\nseeds = [1, -2]\n', 2, "seeds[1]", ">= 0"),
        ('scenario_file = "x.toml"\nseedz = [1]\n', 2, "seedz", "did you mean seeds"),
        ('scenario_file = "x.toml"\nmetrics = [\n  "goodput",\n  "success_rat",\n]\n', 4,
         "metrics[1]", "did you mean success_rate"),
        ('[scenario]\nworkers = 3\n[scenario.arrivals]\ntype = "poisson"\nrate = -4\n', 5,
         "scenario.arrivals.rate", "(0, 1e+07]"),
    ],
)
def test_study_errors_point_at_the_study_file(
    tmp_path: Path, text: str, line: int, path: str, problem: str
) -> None:
    write(tmp_path, "x.toml", "[[dependencies]]\nname = 'payment'\nbreaker = {}\n")
    p = write(tmp_path, "study.toml", text)
    with pytest.raises(ScenarioFileError) as info:
        rl.load_study(p)
    e = info.value
    assert (e.file, e.line, e.path) == (str(p), line, path), str(e)
    assert problem in e.problem


def test_study_scenario_file_errors_point_at_the_scenario_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.toml", "workers = 1\nqueue_capacity = -1\n")
    p = write(tmp_path, "study.toml", 'scenario_file = "bad.toml"\n')
    with pytest.raises(ScenarioFileError) as info:
        rl.load_study(p)
    assert (info.value.file, info.value.line, info.value.path) == (str(bad), 2, "queue_capacity")


def test_study_needs_one_scenario(tmp_path: Path) -> None:
    with pytest.raises(ScenarioFileError, match="exactly one of"):
        rl.load_study(write(tmp_path, "s.toml", "seeds = [1]\n"))


# ------------------------------------------------------------------------------------------------
# Parquet results

pytest.importorskip("pyarrow")


def test_results_round_trip_with_metadata(tmp_path: Path) -> None:
    st = rl.load_study(EXAMPLES / "breaker_study.toml")
    df = st.run(progress=False)
    path = rl.save_results(df, tmp_path / "r.parquet", study=st, extra={"note": "x"})
    back, meta = rl.load_results(path)
    pd.testing.assert_frame_equal(back, df)
    assert meta.scenario == st.scenario
    assert meta.study == st
    assert meta.library_version == rl.__version__
    assert meta.created.endswith("+00:00")
    assert meta.extra == {"note": "x"}
    # The study in the file reproduces the results.
    assert meta.study is not None
    pd.testing.assert_frame_equal(meta.study.run(progress=False), df)


def test_scenario_in_the_metadata_reproduces_the_run(tmp_path: Path) -> None:
    sc = rl.load_scenario(EXAMPLES / "seed_lab.toml").replace(seed=9)
    result = rl.simulate(sc)
    row = pd.DataFrame([result.summary.to_dict()])
    rl.save_results(row, tmp_path / "one.parquet", scenario=sc)
    back, meta = rl.load_results(tmp_path / "one.parquet")
    assert meta.scenario == sc and meta.study is None
    again = rl.simulate(meta.scenario)
    pd.testing.assert_series_equal(again.summary, result.summary)
    assert back.iloc[0].to_dict() == result.summary.to_dict()


def test_load_results_refuses_foreign_files(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(ValueError, match="not written by reliability-lab"):
        rl.load_results(tmp_path / "plain.parquet")
    write(tmp_path, "text.parquet", "hello")
    with pytest.raises(ValueError, match="not a Parquet file"):
        rl.load_results(tmp_path / "text.parquet")


def test_file_error_pickles_and_stays_short(tmp_path: Path) -> None:
    import pickle

    e = error_of(write(tmp_path, "big.json", json.dumps(list(range(1000)))))
    assert len(str(e)) < 200
    back = pickle.loads(pickle.dumps(e))
    assert (back.file, back.line, back.path, back.problem) == (e.file, e.line, e.path, e.problem)
    assert str(back) == str(e)


def test_yaml_study_with_inline_scenario(tmp_path: Path) -> None:
    text = """seeds: [3]
scenario:
  duration: 5
  dependencies:
    - name: db
      breaker: {open_for: 1.0}
grid:
  db.breaker.open_for: [0.5, 2.0]
  workers: [2, 0]
"""
    p = write(tmp_path, "s.yaml", text)
    with pytest.raises(ScenarioFileError) as info:
        rl.load_study(p)
    assert (info.value.line, info.value.path) == (9, "grid.workers")
    p.write_text(text.replace("[2, 0]", "[2, 4]"))
    st = rl.load_study(p)
    assert st.grid == {"db.breaker.open_for": [0.5, 2.0], "workers": [2, 4]}
    assert st.seeds == (3,)


def test_lines_are_found_only_for_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reliability_lab.files as files

    calls: list[str] = []
    real_yaml, real_toml = files._yaml_lines, files._toml_lines
    monkeypatch.setattr(files, "_yaml_lines", lambda t: calls.append("yaml") or real_yaml(t))
    monkeypatch.setattr(files, "_toml_lines", lambda t: calls.append("toml") or real_toml(t))
    big = rl.Scenario(arrivals=rl.Trace([i * 1e-3 for i in range(20_000)]), duration=60)
    assert rl.load_scenario(write(tmp_path, "big.json", big.to_json())) == big
    assert rl.load_scenario(EXAMPLES / "seed_lab.toml").workers == 16
    assert rl.load_scenario(EXAMPLES / "seed_lab.yaml").workers == 16
    assert calls == []  # a valid file is parsed once
    error_of(write(tmp_path, "bad.toml", "workers = 0\n"))
    assert calls == ["toml"]
