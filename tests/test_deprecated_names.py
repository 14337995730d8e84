"""The old public names (one release): each still works, warns naming its new name, and nothing
in the project uses it any more (pyproject's filterwarnings turns these warnings into errors
everywhere else in the suite)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import reliability_lab as rl
from reliability_lab import throttle as throttle_module
from reliability_lab.scenario import Dependency, Scenario

ROOT = Path(__file__).resolve().parent.parent


def test_throttle_config_is_throttle_and_warns() -> None:
    with pytest.warns(DeprecationWarning, match=r"ThrottleConfig is deprecated.*use reliab"):
        old = rl.ThrottleConfig
    assert old is rl.Throttle
    with pytest.warns(DeprecationWarning, match=r"use reliability_lab\.Throttle"):
        assert throttle_module.ThrottleConfig is rl.Throttle  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        rl.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_old_imports_keep_working() -> None:
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        "try:\n"
        "    from reliability_lab import ThrottleConfig\n"
        "except DeprecationWarning as e:\n"
        "    print(e)\n"
        "warnings.simplefilter('ignore')\n"
        "from reliability_lab import RateLimitConfig, ThrottleConfig\n"
        "from reliability_lab.throttle import ThrottleConfig as T2\n"
        "assert ThrottleConfig is T2\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "reliability_lab.ThrottleConfig is deprecated" in out
    assert "use reliability_lab.Throttle" in out


def test_a_retry_in_a_scenario_warns_and_becomes_its_config() -> None:
    backoff = rl.Backoff(initial=0.01, max_delay=0.1)
    with pytest.warns(DeprecationWarning, match=r"Dependency\.retry is deprecated.*RetryConfig"):
        dep = Dependency("payment", retry=rl.Retry(max_attempts=4, backoff=backoff))
    assert dep.retry == rl.RetryConfig(max_attempts=4, backoff=backoff)
    assert type(dep.retry) is rl.RetryConfig
    sc = Scenario(dependencies=[Dependency("payment")])
    with pytest.warns(DeprecationWarning):
        sc2 = sc.replace({"payment.retry": rl.Retry(max_attempts=2, retry_on="503")})
    assert sc2.dependencies[0].retry == rl.RetryConfig(max_attempts=2, retry_on=("503",))


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        (lambda: rl.Retry(timeout=1.0),
         "retry.timeout must be None in a scenario (use Dependency.attempt_timeout"),
        (lambda: rl.Retry(seed=1), "retry.seed must be None in a scenario"),
        (lambda: rl.Retry(clock=rl.ManualClock()), "retry.clock must be None in a scenario"),
        (lambda: rl.Retry(retry_on=[ValueError]),
         "retry.retry_on must hold outcome names in a scenario"),
    ],
)
def test_a_retry_with_runtime_settings_is_refused(retry: object, message: str) -> None:
    built = retry()  # type: ignore[operator]
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError) as info:
        Dependency("payment", retry=built)
    assert message in str(info.value)


def test_retry_from_config_and_back() -> None:
    cfg = rl.RetryConfig(max_attempts=5, backoff=rl.Backoff(jitter="none"),
                         retry_on=["timeout", "default", "503"], max_retry_after=2)
    assert cfg.retry_on[:2] == ("timeout", "connection_reset") and cfg.retry_on.count("503") == 1
    assert cfg.max_retry_after == 2.0 and isinstance(cfg.max_retry_after, float)
    clock = rl.ManualClock()
    retry = rl.Retry.from_config(cfg, clock=clock, seed=3)
    assert (retry.max_attempts, retry.clock, retry.seed) == (5, clock, 3)
    assert retry.to_config() == cfg
    with pytest.raises(TypeError, match="config must be a RetryConfig"):
        rl.Retry.from_config(rl.Retry())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_attempts must be"):
        rl.RetryConfig(max_attempts=0)
    with pytest.raises(ValueError, match="retry_on must hold outcome names"):
        rl.RetryConfig(retry_on=(ValueError,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff must be a Backoff"):
        rl.RetryConfig(backoff=None)  # type: ignore[arg-type]


def test_the_scenario_dict_form_of_a_retry_is_unchanged() -> None:
    cfg = rl.RetryConfig(max_attempts=4, retry_on=("503", "timeout"))
    d = Dependency("payment", retry=cfg).to_dict()["retry"]
    assert set(d) == {"max_attempts", "backoff", "retry_on", "max_retry_after"}
    assert (d["max_attempts"], d["retry_on"], d["max_retry_after"]) == (4, ["503", "timeout"], 60.0)
    assert set(d["backoff"]) == {"initial", "multiplier", "max_delay", "jitter", "jitter_factor"}
    assert Dependency.from_dict({"name": "payment", "retry": d}).retry == cfg
    assert "RetryConfig(max_attempts=4" in repr(Scenario(dependencies=[Dependency(retry=cfg)]))


# Python spellings of the old names; the C++ structs keep theirs (ThrottleConfig is C++'s name
# for rl.Throttle, RateLimitConfig the native policy's).
_OLD_USES = re.compile(
    r"rl\.ThrottleConfig\b|import[^\n]*\bThrottleConfig\b|\bThrottleConfig\("
    r"|rl\.RateLimitConfig\b|\bRateLimitConfig\(|RateLimiter\(permits="
    r"|retry=(rl\.)?Retry\(|\.retry\"?: (rl\.)?Retry\("
)
_ALLOWED = {
    "python/reliability_lab/rate_limit.py",  # the deprecated function itself
    "tests/test_deprecated_names.py",
    "tests/test_rate_limit.py",  # tests of the deprecated path
    "docs/architecture.md",  # its "Names" section lists the renames
}


def test_nothing_in_the_project_uses_an_old_name() -> None:
    found = []
    for top in ("python", "tests", "notebooks", "examples", "bench", "docs"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".py", ".ipynb", ".md") or "build" in path.parts:
                continue
            rel = path.relative_to(ROOT).as_posix()
            if rel in _ALLOWED:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _OLD_USES.search(line):
                    found.append(f"{rel}:{n}: {line.strip()}")
    for n, line in enumerate((ROOT / "README.md").read_text(encoding="utf-8").splitlines(), 1):
        if _OLD_USES.search(line):
            found.append(f"README.md:{n}: {line.strip()}")
    assert not found, "\n".join(found)
