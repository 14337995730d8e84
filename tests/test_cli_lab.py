"""The ``reliability-lab`` command: run, sweep, plot, schema, and serve passed through."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import reliability_lab as rl
from reliability_lab.cli import main

pytest.importorskip("pyarrow")
pytest.importorskip("yaml")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEED_TOML = str(EXAMPLES / "seed_lab.toml")
SEED_YAML = str(EXAMPLES / "seed_lab.yaml")
STUDY = str(EXAMPLES / "breaker_study.toml")


def test_run_prints_the_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", SEED_TOML]) == 0
    out = capsys.readouterr().out
    expected = rl.simulate(rl.load_scenario(SEED_TOML)).summary
    rows = dict(line.split() for line in out.strip().splitlines())
    assert set(rows) == set(expected.index)
    assert float(rows["arrived"]) == expected["arrived"]
    assert float(rows["success_rate"]) == pytest.approx(expected["success_rate"], rel=1e-5)


def test_run_writes_parquet_that_reproduces_it(tmp_path: Path) -> None:
    out = tmp_path / "one.parquet"
    assert main(["run", SEED_YAML, "--seed", "7", "--out", str(out)]) == 0
    df, meta = rl.load_results(out)
    assert meta.scenario is not None and meta.scenario.seed == 7
    assert meta.extra["command"] == "run"
    again = rl.simulate(meta.scenario).summary
    assert df["seed"].tolist() == [7]
    assert df.drop(columns="seed").iloc[0].to_dict() == again.to_dict()


def test_run_writes_csv(tmp_path: Path) -> None:
    out = tmp_path / "one.csv"
    assert main(["run", SEED_TOML, "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0].startswith("seed,arrived,")


def test_bad_scenario_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    text = (EXAMPLES / "seed_lab.toml").read_text()
    bad.write_text(text.replace("open_for = 5.0", "open_for = 0"))
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    line = next(i + 1 for i, s in enumerate(bad.read_text().splitlines()) if "open_for = 0" in s)
    assert err.startswith(f"{bad}:{line}: payment.breaker.open_for: must be a finite number")


@pytest.mark.parametrize(
    "args",
    [
        ["run", "/nonexistent/lab.toml"],
        ["run", SEED_TOML, "--seed", "-1"],
        ["run", SEED_TOML, "--out", "x.txt"],
        ["run", SEED_TOML, "--engine", "warp"],
        ["sweep", STUDY, "--out", "x.csv"],
        ["sweep", STUDY],
        ["frobnicate"],
        [],
    ],
)
def test_bad_input_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err and "Traceback" not in err


def test_sweep_plot_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.parquet"
    assert main(["sweep", STUDY, "--out", str(out), "--workers", "2"]) == 0
    captured = capsys.readouterr()
    assert "24 runs (8 points x 3 seeds)" in captured.out
    assert "run/s" not in captured.err  # no progress bar when stderr is not a terminal
    df, meta = rl.load_results(out)
    assert len(df) == 24 and meta.study == rl.load_study(STUDY)

    line = tmp_path / "line.png"
    args = ["plot", str(out), "--x", "payment.breaker.consecutive_failures",
            "--y", "success_rate", "--hue", "payment.breaker.open_for"]
    assert main([*args, "--out", str(line)]) == 0
    assert line.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    heat = tmp_path / "heat.png"
    assert main([*args, "--kind", "heatmap", "--out", str(heat)]) == 0
    assert heat.stat().st_size > 0
    capsys.readouterr()
    assert main(["plot", str(out), "--x", "nope", "--y", "success_rate", "--out",
                 str(tmp_path / "x.png")]) == 2
    assert "no column 'nope'" in capsys.readouterr().err

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == rl.scenario_json_schema()
    assert main(["schema", "--out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["title"] == "reliability-lab scenario"


def test_bad_study_exits_2_naming_the_grid_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "s.toml"
    study.write_text(f'scenario_file = "{SEED_TOML}"\n\n[grid]\n"payment.brekr.open_for" = [1]\n')
    assert main(["sweep", str(study), "--out", str(tmp_path / "r.parquet")]) == 2
    assert capsys.readouterr().err.startswith(f"{study}:4: grid.payment.brekr.open_for: ")


needs_service = pytest.mark.skipif(
    importlib.util.find_spec("fastapi") is None, reason="the service extra is missing"
)


@needs_service
def test_serve_is_passed_through(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    assert "--shutdown-budget" in capsys.readouterr().out
    # Options without a command still mean serve; its own checks still run.
    assert main(["--port", "70000"]) == 2
    assert "port" in capsys.readouterr().err


@needs_service
def test_serve_reads_toml_scenarios() -> None:
    from reliability_lab.service.cli import config_from_args

    cfg = config_from_args(["--scenario", SEED_TOML, "--database", "memory"])
    assert cfg.scenario == rl.load_scenario(SEED_TOML)


def console_script() -> str | None:
    beside = Path(sys.executable).parent / "reliability-lab"
    return str(beside) if beside.exists() else shutil.which("reliability-lab")


def test_console_script_runs_the_examples(tmp_path: Path) -> None:
    exe = console_script()
    if exe is None:
        pytest.skip("the package is not installed with its console script (a dev stage)")
    r = subprocess.run([exe, "run", SEED_TOML], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "success_rate" in r.stdout
    out = tmp_path / "r.parquet"
    r = subprocess.run([exe, "sweep", STUDY, "--out", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(rl.load_results(out)[0]) == 24
    r = subprocess.run([exe, "run", str(tmp_path / "absent.toml")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_python_dash_m() -> None:
    r = subprocess.run([sys.executable, "-m", "reliability_lab", "schema"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["$defs"]
