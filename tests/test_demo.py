"""The main demo runs all three parts and rejects bad options."""

from __future__ import annotations

import pytest
from reliability_lab import demo


def test_demo_runs_every_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--orders", "20", "--live-seconds", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "== Part 1" in out and "== Part 2" in out and "== Part 3" in out
    assert "retry x4 + breaker(5 in a row)" in out
    assert 'rlab_worker_jobs_total{status="completed"}' in out
    assert "shutdown:" in out and "cancelled" in out


@pytest.mark.parametrize("value", ["-1", "nan", "4000"])
def test_demo_rejects_bad_live_seconds(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        demo.main(["--live-seconds", value])
    assert e.value.code == 2
    assert "--live-seconds must be in [0, 3600]" in capsys.readouterr().err
