"""The admin token stays out of the process list: a file or the environment, and a warning
when it is given on the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
from reliability_lab.service.cli import config_from_args
from reliability_lab.service.harness import ServiceProcess
from service_helpers import ADMIN_TOKEN, wait_for


def _token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "admin-token"
    p.write_text(text)
    p.chmod(mode)
    return p


def test_token_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _token_file(tmp_path, f"  {ADMIN_TOKEN}\n")
    assert config_from_args(["--admin-token-file", str(path)]).admin_token == ADMIN_TOKEN
    assert "warning" not in capsys.readouterr().err


def test_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RLAB_ADMIN_TOKEN", ADMIN_TOKEN)
    assert config_from_args([]).admin_token == ADMIN_TOKEN
    assert "warning" not in capsys.readouterr().err
    monkeypatch.delenv("RLAB_ADMIN_TOKEN")
    assert config_from_args([]).admin_token is None


def test_token_on_the_command_line_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RLAB_ADMIN_TOKEN", raising=False)
    assert config_from_args(["--admin-token", ADMIN_TOKEN]).admin_token == ADMIN_TOKEN
    err = capsys.readouterr().err
    assert "warning" in err and "process list" in err and ADMIN_TOKEN not in err


def test_file_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLAB_ADMIN_TOKEN", "from-the-environment")
    path = _token_file(tmp_path, ADMIN_TOKEN)
    assert config_from_args(["--admin-token-file", str(path)]).admin_token == ADMIN_TOKEN


def test_readable_token_file_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _token_file(tmp_path, ADMIN_TOKEN, mode=0o644)
    assert config_from_args(["--admin-token-file", str(path)]).admin_token == ADMIN_TOKEN
    assert "chmod 600" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["both", "empty", "missing", "short"])
def test_bad_token_sources_exit_2(tmp_path: Path, case: str) -> None:
    path = tmp_path / "admin-token"
    args = ["--admin-token-file", str(path)]
    if case == "both":
        _token_file(tmp_path, ADMIN_TOKEN)
        args += ["--admin-token", ADMIN_TOKEN]
    elif case == "empty":
        _token_file(tmp_path, " \n")
    elif case == "short":
        _token_file(tmp_path, "short")
    r = subprocess.run(
        [sys.executable, "-m", "reliability_lab.service", "--database", ":memory:", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    expected = {
        "both": "not both",
        "empty": "empty",
        "missing": "admin-token",
        "short": "admin_token",
    }[case]
    assert expected in r.stderr
    assert ADMIN_TOKEN not in r.stderr


def test_served_with_a_token_file_and_not_in_the_process_list(tmp_path: Path) -> None:
    path = _token_file(tmp_path, ADMIN_TOKEN + "\n")
    svc = ServiceProcess(
        database=str(tmp_path / "orders.sqlite3"),
        workdir=tmp_path,
        args=["--admin-token-file", str(path), "--ledger", str(tmp_path / "payments.ledger")],
        env={"RLAB_ADMIN_TOKEN": ""},
    )
    svc.start()
    try:
        assert svc.proc is not None
        cmdline = Path(f"/proc/{svc.proc.pid}/cmdline").read_bytes()
        assert ADMIN_TOKEN.encode() not in cmdline
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            wait_for(lambda: client.get("/startupz").status_code == 200, what="startup")
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            assert client.get("/debug/internals", headers=auth).status_code == 200
            wrong = {"Authorization": "Bearer not-the-token"}
            assert client.get("/debug/internals", headers=wrong).status_code == 403
    finally:
        assert svc.stop(timeout=60) == 0, svc.log_text()
    assert "process list" not in svc.log_text()
