"""The pytest plugin (reliability_lab.testing.plugin), run in inner pytest sessions.

Installed, the package registers the plugin through its ``pytest11`` entry point; from a source
tree (PYTHONPATH=python) the entry point is absent, so the inner sessions load it with ``-p``.
"""

from __future__ import annotations

import importlib.metadata
import re

import pytest

# Imported here, in the outer session, so that the inner in-process sessions (whose new imports
# pytester drops from sys.modules afterwards) never load a native extension (numpy's, scipy's)
# a second time: a later import in the outer session would fail.
import reliability_lab.testing.plugin as plugin
import reliability_lab.testing.strategies  # noqa: F401
from reliability_lab.sweep import t_quantile

t_quantile(0.975, 2)  # imports scipy.stats, as assert_slo's intervals do

pytest_plugins = ["pytester"]

PLUGIN = plugin.__name__


def _plugin_args() -> list[str]:
    installed = any(
        ep.value == PLUGIN for ep in importlib.metadata.entry_points(group="pytest11")
    )
    return [] if installed else ["-p", PLUGIN]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(
        *_plugin_args(), "-p", "no:cacheprovider",
        "-W", "ignore::pytest.PytestAssertRewriteWarning", *args
    )


def test_fixtures_are_available_and_labs_are_shut_down(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import reliability_lab as rl
        LABS = []

        def test_clock_and_inject(rl_clock, rl_inject):
            assert isinstance(rl_clock, rl.ManualClock) and rl_clock.now() == 0.0
            inj = rl_inject(rl.Faults(latency=rl.Constant(0.5)), seed=1)
            assert inj.call(lambda: 3) == 3
            assert rl_clock.now() == 0.5

        def test_lab(rl_lab):
            lab = rl_lab(rl.Scenario(duration=1.0))
            LABS.append(lab)
            assert lab.running
            assert lab.submit().wait(10.0)

        def test_lab_was_shut_down():
            assert LABS and not LABS[0].running

        def test_simulate(rl_simulate):
            res = rl_simulate(rl.Scenario(duration=1.0, seed=4))
            assert res.scenario.seed == 4
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=4)


def test_a_failing_test_reports_its_seeds_and_rerun_lines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import reliability_lab as rl

        def test_fails(rl_simulate):
            sc = rl.Scenario(duration=2.0, workers=3)
            rl_simulate(sc, seed=7)
            rl_simulate(sc, seed=8)
            assert False, "my own check"
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*reliability-lab runs*",
            "seed 7: rl.simulate(rl.Scenario().replace({'workers': 3, 'duration': 2.0}, seed=7))",
            "seed 8: *seed=8))",
            "*--rl-seed N reruns the test with seed N; seeds run: ?7, 8?*",
        ]
    )


def test_rl_seed_overrides_every_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import reliability_lab as rl

        def test_seed(rl_simulate):
            assert rl_simulate(rl.Scenario(duration=1.0), seed=5).scenario.seed == 3
        """
    )
    _run(pytester, "--rl-seed", "3").assert_outcomes(passed=1)
    _run(pytester).assert_outcomes(failed=1)


def test_a_breaker_that_never_trips_fails_assert_slo_with_shrunk_parameters(
    pytester: pytest.Pytester,
) -> None:
    # The deliberately wrong setting of examples/test_my_settings.py: retries behind a breaker
    # that never opens triple the load during the outage.
    pytester.makepyfile(
        """
        import reliability_lab as rl
        from hypothesis import HealthCheck, Phase, given, settings, strategies as st
        from reliability_lab.testing import assert_slo
        from reliability_lab.testing.strategies import st_faults, st_scenario

        NEVER_TRIPS = rl.Breaker(consecutive_failures=1_000_000)

        # No explain phase: it would rerun the failing case a hundred times to say which
        # arguments matter.
        @settings(max_examples=5, deadline=None, database=None,
                  phases=[Phase.generate, Phase.shrink],
                  suppress_health_check=[HealthCheck.too_slow])
        @given(st_scenario(
            arrivals=rl.Poisson(20.0), duration=10.0, workers=16, queue_capacity=256,
            order_deadline=0.0, seed=st.integers(0, 100),
            faults=st_faults(failure_rate=st.floats(0, 0.1), phases=[rl.Outage(2.0, 8.0)],
                             mix=rl.FailureMix(), latency=rl.Constant(0.01),
                             capacity=rl.Capacity(), ambiguous_rate=0.0),
            retry=rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.1)),
            breaker=NEVER_TRIPS, budget=None, bulkhead=None, throttle=None,
            attempt_timeout=0.0, fallback=rl.Fallback(), charges=False))
        def test_load_stays_bounded_during_an_outage(sc):
            assert_slo(sc, calls_per_order="<= 1.5", replications=3)
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # Hypothesis's report of the shrunk example ("Falsifying example" in older versions). Its
    # value is not checked: schemathesis's pytest plugin, installed with the test extra, blanks
    # the values of that report process-wide; the SLOError message below carries them.
    assert "Failing test case" in out or "Falsifying example" in out
    assert "SLO not met:" in out
    assert "calls_per_order <= 1.5: measured 2." in out
    assert re.search(r"95% interval \[[0-9.]+, [0-9.]+\] over 3 runs \(entirely outside", out)
    # Shrunk: seed 0 (so seeds 0, 1, 2), no background failures (failure_rate at its default,
    # so not in the diff), and the breaker named as the difference.
    assert "seeds: [0, 1, 2]" in out
    assert "payment.breaker = {'consecutive_failures': 1000000}" in out
    assert "payment.faults.failure_rate" not in out
    assert "rl.simulate(rl.Scenario().replace({" in out


def test_rl_service_serves_on_sqlite_and_is_stopped(pytester: pytest.Pytester) -> None:
    pytest.importorskip("fastapi")
    pytester.makepyfile(
        """
        import httpx
        import reliability_lab as rl
        PROCS = []

        def test_service(rl_service):
            svc = rl_service(rl.Scenario(workers=2))
            PROCS.append(svc)
            assert httpx.get(svc.url + "/livez", timeout=30).status_code == 200
            r = httpx.post(svc.url + "/orders", timeout=30,
                           json={"customer_id": "a", "amount_cents": 100, "currency": "EUR"})
            assert r.status_code in (200, 201, 202), r.text

        def test_stopped():
            assert PROCS and PROCS[0].proc.poll() is not None
        """
    )
    _run(pytester).assert_outcomes(passed=2)


def test_the_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    import sys
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the tomli backport
        import tomli as tomllib

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"reliability_lab": PLUGIN}
    assert {"pytest>=7", "hypothesis>=6.80"} <= set(project["optional-dependencies"]["testing"])
