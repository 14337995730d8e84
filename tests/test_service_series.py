"""Service graphs (issue #14): the per-service time-series columns (``service.<name>.*``) and
the per-service Prometheus families of a simulated run."""

from __future__ import annotations

import pandas as pd
import pytest
import reliability_lab as rl
from prometheus_client.parser import text_string_to_metric_families

D = rl.Dependency

PER_INTERVAL = ("arrivals", "completed", "failed", "rejected", "expired")
AT_SAMPLE = ("queue_depth", "busy_workers", "in_flight")


def _graph(**kw: object) -> rl.Scenario:
    """root → a → b, with a queue small enough to reject, deadlines that expire, failures."""
    base: dict[str, object] = {
        "arrivals": rl.Poisson(150.0),
        "duration": 3.0,
        "seed": 5,
        "sample_every": 0.25,
        "dependencies": (D("payment"), D("to_a", service="a", attempt_timeout=0.05)),
        "services": (
            rl.Service(
                name="a",
                workers=2,
                queue_capacity=3,
                dependencies=(
                    D("to_b", service="b", retry=rl.RetryConfig(max_attempts=2)),
                    D("cache", faults=rl.Faults(latency=rl.Exponential(0.002))),
                ),
            ),
            rl.Service(
                name="b",
                workers=1,
                queue_capacity=4,
                deadline=0.03,
                dependencies=(
                    D("db", faults=rl.Faults(failure_rate=0.2, latency=rl.Exponential(0.008))),
                ),
            ),
        ),
    }
    base.update(kw)
    return rl.Scenario(**base)  # type: ignore[arg-type]


def test_columns_are_appended_per_service_and_absent_without_services() -> None:
    sc = _graph()
    cols = list(rl.simulate(sc).timeseries.columns)
    names = [f"service.{s}.{m}" for s in ("a", "b") for m in (*PER_INTERVAL, *AT_SAMPLE)]
    # Appended after every other column: the existing columns keep their indexes.
    assert cols[-len(names) :] == names
    assert not any(c.startswith("service.") for c in cols[: -len(names)])
    single = rl.simulate(rl.Scenario(duration=1.0, sample_every=0.25)).timeseries
    assert not any(c.startswith("service.") for c in single.columns)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_interval_columns_sum_to_the_service_totals(seed: int) -> None:
    r = rl.simulate(_graph(seed=seed))
    ts, s = r.timeseries, r.services
    for name in ("a", "b"):
        for m in PER_INTERVAL:
            assert ts[f"service.{name}.{m}"].sum() == s.loc[name, m], (name, m)
    # The scenario reaches every outcome this test is meant to cover.
    assert s.loc["a", "rejected"] > 0 and s.loc["b", "failed"] > 0
    assert s.loc["a", "completed"] > 0 and (s.loc[["a", "b"], "expired"].sum() > 0)


def test_each_row_conserves_requests_per_service() -> None:
    """At every sample: requests that arrived so far = those ended so far + those in flight;
    the queue and the busy workers stay within the service's sizes."""
    sc = _graph(seed=8)
    r = rl.simulate(sc)
    ts = r.timeseries
    assert len(ts) > 10
    for svc in sc.services:
        p = f"service.{svc.name}."
        ended = sum(ts[p + m].cumsum() for m in PER_INTERVAL[1:])
        pd.testing.assert_series_equal(
            ts[p + "arrivals"].cumsum(), ended + ts[p + "in_flight"], check_names=False
        )
        assert ((ts[p + "queue_depth"] >= 0) & (ts[p + "queue_depth"] <= svc.queue_capacity)).all()
        assert ((ts[p + "busy_workers"] >= 0) & (ts[p + "busy_workers"] <= svc.workers)).all()
        assert ts[p + "busy_workers"].max() > 0
        assert ts[p + "in_flight"].iloc[-1] == 0  # drained


def _parsed(r: rl.Result) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(r.metrics_text()):
        for smp in fam.samples:
            out.setdefault(smp.name, {})[tuple(sorted(smp.labels.items()))] = smp.value
    return out


def test_service_families_equal_the_service_table() -> None:
    r = rl.simulate(_graph())
    m = _parsed(r)
    s = r.services
    requests = m["rlab_service_requests_total"]
    # The service label takes exactly the declared services (and the root): bounded.
    assert {dict(k)["service"] for k in requests} == {"root", "a", "b"}
    for name in s.index:
        for outcome in ("completed", "failed", "rejected", "expired"):
            key = (("outcome", outcome), ("service", name))
            assert requests[key] == s.loc[name, outcome], (name, outcome)
        label = (("service", name),)
        assert m["rlab_service_latency_seconds_count"][label] == s.loc[name, "completed"]
        total = m["rlab_service_latency_seconds_sum"][label]
        assert total == pytest.approx(s.loc[name, "latency_mean"] * s.loc[name, "completed"])
        inf = m["rlab_service_latency_seconds_bucket"][(("le", "+Inf"), ("service", name))]
        assert inf == s.loc[name, "completed"]


def test_no_service_families_without_services() -> None:
    names = {f.name for f in rl.simulate(rl.Scenario(duration=1.0)).metrics}
    assert not any(n.startswith("rlab_service") for n in names)
