"""The command line and the configuration: bad options are refused with the parameter named."""

from __future__ import annotations

import importlib
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

from reliability_lab.service.config import ServiceConfig
from reliability_lab.service.server import EdgeConfig
from reliability_lab.service.store import parse_database_url


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliability_lab.service", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--port", "70000"], "port"),
        (["--database", "ftp://example/db"], "database"),
        (["--shutdown-budget", "-1"], "shutdown_budget"),
        (["--admin-token", "short"], "admin_token"),
        (["--db-statement-timeout", "0"], "db_statement_timeout"),
        (["--db-connect-timeout", "1"], "db_connect_timeout"),
        (["--watchdog-timeout", "12"], "watchdog_timeout"),
    ],
)
def test_bad_options_exit_2_naming_the_parameter(args: list[str], name: str) -> None:
    r = run(*args)
    assert r.returncode == 2
    assert name in r.stderr


def test_help_and_serve_subcommand() -> None:
    r = run("serve", "--help")
    assert r.returncode == 0 and "--database" in r.stdout
    assert run("frobnicate").returncode == 2


def test_console_script() -> None:
    # Installed next to this interpreter (a venv run without activating it has no PATH entry).
    beside = Path(sys.executable).parent / "reliability-lab"
    exe = str(beside) if beside.exists() else shutil.which("reliability-lab")
    if exe is None:
        pytest.skip("the package is not installed with its console script (a dev stage)")
    r = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--shutdown-budget" in r.stdout


def test_config_and_urls() -> None:
    assert parse_database_url("x.db") == ("sqlite", "x.db")
    assert parse_database_url("sqlite:////tmp/a.db") == ("sqlite", "/tmp/a.db")
    assert parse_database_url("postgresql://u@h/db")[0] == "postgresql"
    assert parse_database_url("memory") == parse_database_url(":memory:") == ("memory", ":memory:")
    with pytest.raises(ValueError, match="max_body_bytes"):
        ServiceConfig(max_body_bytes=0)
    with pytest.raises(ValueError, match="log_level"):
        ServiceConfig(log_level="loud")
    cfg = ServiceConfig(database="/tmp/x/orders.sqlite3")
    assert str(cfg.effective_ledger_path) == "/tmp/x/orders.sqlite3.ledger"
    assert cfg.host == "127.0.0.1"


@pytest.mark.parametrize("cls", [ServiceConfig, EdgeConfig])
def test_numeric_settings_name_the_setting_range_and_value(cls: type) -> None:
    """Each numeric setting of the service and its edge: a value just outside its range, NaN, a
    bool and a string each raise ValueError naming the setting, the range and the value."""
    module = importlib.import_module(cls.__module__)
    for name, lo, hi, seconds, lo_open in module._RANGES:
        what = "a finite number" if seconds else "an integer"
        span = f"{lo:g}, {hi:g}" if seconds else f"{lo}, {hi}"  # reals in the core's %g
        interval = f"{'(' if lo_open else '['}{span}]"
        below = lo if lo_open else lo - 1
        for bad in (below, hi + 1, math.nan, True, "5"):
            if not seconds and bad is math.nan:
                continue
            with pytest.raises(ValueError) as e:
                cls(**{name: bad})
            assert str(e.value) == f"{name} must be {what} in {interval}, got {bad!r}", name
