"""Experiments that decide (reliability_lab.stats): warm-up deletion, replications, batch means,
common random numbers, Kim-Nelson selection, the metastability verdict. Statistical checks use
fixed seeds and binomial tolerances."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab.sweep import t_quantile


def binomial_band(p: float, m: int) -> float:
    """Three standard deviations of a proportion estimated from m trials."""
    return 3 * math.sqrt(p * (1 - p) / m)


# ------------------------------------------------------------------------------------------------
# Warm-up (MSER-5)


def test_mser5_finds_a_known_transient() -> None:
    # 2,000 N(0,1) observations, the first 200 biased by a bias decaying linearly from 8 to 0.
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(2000)
        x[:200] += np.linspace(8, 0, 200)
        d = rl.warmup_mser(x)
        assert d % 5 == 0
        assert 150 <= d <= 230  # the bias is below the noise's standard error from ~170 on
        # No transient: (almost) nothing deleted.
        assert rl.warmup_mser(rng.standard_normal(2000)) <= 50


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=10, max_size=400), st.integers(1, 10))
def test_mser_truncates_whole_batches_in_the_first_half(xs: list[float], batch: int) -> None:
    if len(xs) < 2 * batch:
        with pytest.raises(ValueError, match="at least"):
            rl.warmup_mser(xs, batch=batch)
        return
    d = rl.warmup_mser(xs, batch=batch)
    assert d % batch == 0
    assert 0 <= d <= len(xs) // 2


def test_mser_statistic_by_hand() -> None:
    # Batch means of 1: MSER(d) = sum of squared deviations of x[d:] / (n - d)^2; the step at the
    # start makes d = 2 the minimum.
    x = [10.0, 10.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
    stats = [np.sum((np.array(x[d:]) - np.mean(x[d:])) ** 2) / (len(x) - d) ** 2
             for d in range(4)]
    assert int(np.argmin(stats)) == 2
    assert rl.warmup_mser(x, batch=1) == 2


def test_warmup_of_a_run_reports_the_truncation_time() -> None:
    # The dependency is 3x slower for the first 20 s: the queue builds up, then drains by ~36 s.
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=50), workers=4, queue_capacity=100_000, duration=300, seed=1,
        dependencies=[rl.Dependency("server", faults=rl.Faults(
            latency=rl.Exponential(mean=0.05),
            phases=[rl.Brownout(start=0, end=20, failure_rate=0.0, latency_multiplier=3.0)]))],
    )
    r = rl.simulate(sc)
    assert r.orders is not None
    by_order = rl.warmup(r, "latency")
    by_sample = rl.warmup(r, "queue_depth")
    for w in (by_order, by_sample):
        assert 30 <= w.time <= 50, w
        assert w.reliable
    # Per order: the time is the arrival of the first kept order.
    arrivals = r.orders.sort_values("arrival")["arrival"].to_numpy()
    assert by_order.time == arrivals[by_order.index]
    # Per sample: the end of the last deleted interval.
    assert by_sample.time == r.timeseries["t"].to_numpy()[by_sample.index - 1]
    w, kept = rl.steady_values(r, "latency")
    assert w == by_order and len(kept) == w.n - w.index
    assert kept.mean() < r.orders["latency"].mean()  # the deleted part was the slow start


def test_replicate_with_warmup_deletion_reports_it_per_run() -> None:
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=50), workers=4, queue_capacity=100_000, duration=200,
        record_events=False,
        dependencies=[rl.Dependency("server", faults=rl.Faults(
            latency=rl.Exponential(mean=0.05),
            phases=[rl.Brownout(start=0, end=20, failure_rate=0.0, latency_multiplier=3.0)]))],
    )
    rep = rl.replicate(sc, "latency", relative=0.05, n_min=4, n_max=10, delete_warmup=True)
    assert rep.reached
    v = rep.values
    assert list(v.columns) == ["seed", "value", "warmup_index", "warmup_time", "warmup_reliable"]
    assert v["warmup_time"].between(30, 50).all()
    assert v["warmup_reliable"].all()
    first = rl.simulate(sc.replace(seed=int(v["seed"][0])))
    w, kept = rl.steady_values(first, "latency")
    assert v["value"][0] == kept.mean() and v["warmup_index"][0] == w.index
    # Steady state with 4 workers, 50/s at 50 ms: M/M/4 at 62.5% load, whose mean time in
    # system is 0.0607 s (Erlang C). Without the deletion the slow start weighs in (~0.9 s).
    assert rep.mean == pytest.approx(0.0607, rel=0.05)
    raw = rl.replicate(sc, "latency_mean", relative=0.05, n_min=4, n_max=10)
    assert raw.mean > 5 * rep.mean


def test_mser_flags_a_run_too_short_for_a_steady_state() -> None:
    x = np.linspace(10, 0, 100)  # a trend to the end: the minimum is at the search's edge
    w = rl.warmup(pd.DataFrame({"v": x}), "v")
    assert not w.reliable


# ------------------------------------------------------------------------------------------------
# Batch means and replications: coverage of the intervals


def ar1(phi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0] / math.sqrt(1 - phi * phi)  # start in steady state
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def test_batch_means_coverage_on_an_autocorrelated_series() -> None:
    m = 200
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(m):
        bm = rl.batch_means(ar1(0.5, 10_000, rng), n_batches=20)
        covered += bm.ci_low <= 0 <= bm.ci_high
    assert abs(covered / m - 0.95) <= binomial_band(0.95, m)


def test_batch_means_flags_correlated_batches() -> None:
    rng = np.random.default_rng(3)
    bm = rl.batch_means(ar1(0.995, 2_000, rng), n_batches=20)  # batches of 100 << memory
    assert not bm.independent
    assert "correlated" in bm.message
    ok = rl.batch_means(rng.standard_normal(2_000), n_batches=20)
    assert ok.independent and ok.batch_size == 100


def test_replicate_coverage_mm1_mean_sojourn() -> None:
    """200 intervals of the M/M/1 mean time in system (lambda = 5, mu = 10: W = 0.2 s), each
    from 5 runs of 1,000 s: about 95% must cover 0.2."""
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=5), workers=1, queue_capacity=10_000_000, duration=1000,
        record_events=False,
        dependencies=[rl.Dependency("server", faults=rl.Faults(latency=rl.Exponential(mean=0.1)))],
    )
    m = 200
    covered = 0
    for i in range(m):
        rep = rl.replicate(sc, "mean_sojourn", half_width=1.0, n_min=5,
                           seeds=range(5 * i, 5 * i + 5), max_workers=1)
        assert rep.n == 5 and rep.reached
        covered += rep.ci_low <= 0.2 <= rep.ci_high
    assert abs(covered / m - 0.95) <= binomial_band(0.95, m)


def normal_sample(mean: float, sd: float) -> Any:
    def sample(seed: int) -> float:
        return float(mean + sd * np.random.default_rng(seed).standard_normal())

    return sample


def test_replicate_stops_when_the_half_width_is_reached() -> None:
    rep = rl.replicate(normal_sample(10.0, 1.0), half_width=0.2, n_min=5, n_max=1000)
    assert rep.reached and rep.half_width <= 0.2
    assert rep.message.startswith("reached")
    # About (1.96 / 0.2)^2 = 96 runs are needed; the procedure neither stops early nor runs
    # far past it.
    assert 60 <= rep.n <= 160
    assert list(rep.values["seed"]) == list(range(rep.n)) == list(rep.seeds)
    assert abs(rep.mean - 10.0) <= rep.half_width * 2
    rel = rl.replicate(normal_sample(10.0, 1.0), relative=0.01, n_min=5, n_max=1000)
    assert rel.reached and rel.half_width <= 0.01 * abs(rel.mean)
    assert rel.target == pytest.approx(0.01 * abs(rel.mean))


def test_replicate_says_plainly_when_the_maximum_is_hit() -> None:
    rep = rl.replicate(normal_sample(10.0, 1.0), half_width=0.01, n_min=5, n_max=12)
    assert not rep.reached
    assert rep.n == 12 and rep.half_width > 0.01
    assert "not reached" in rep.message and "maximum of 12 runs" in rep.message
    assert "runs would be needed" in rep.message
    short = rl.replicate(normal_sample(0, 1), half_width=0.01, seeds=[1, 2, 3, 4, 5, 6])
    assert not short.reached and short.n == 6 and "end of the seeds" in short.message


def test_replicate_a_scenario_metric() -> None:
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=100), duration=20, workers=16,
        dependencies=[rl.Dependency("payment", faults=rl.Faults(failure_rate=0.2),
                                    retry=rl.RetryConfig(max_attempts=2))],
    )
    rep = rl.replicate(sc, "success_rate", half_width=0.005, n_max=50)
    assert rep.reached
    assert rep.mean == pytest.approx(1 - 0.2**2, abs=0.01)
    # The same seeds give the same numbers as simulate.
    first = rl.simulate(sc.replace(seed=int(rep.values["seed"][0]))).summary["success_rate"]
    assert rep.values["value"][0] == first

    def late_latency(r: rl.Result) -> float:
        return float(rl.steady_values(r, "latency")[1].mean())

    by_fn = rl.replicate(sc, late_latency, relative=0.05, n_max=30)
    assert by_fn.metric == "late_latency" and by_fn.reached


# ------------------------------------------------------------------------------------------------
# Common random numbers


def breaker_pair() -> tuple[rl.Scenario, rl.Scenario]:
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=100), duration=30, workers=16, queue_capacity=256,
        dependencies=[rl.Dependency(
            "payment",
            faults=rl.Faults(failure_rate=0.05, latency=rl.Exponential(mean=0.05),
                             phases=[rl.Outage(start=10, end=15)]),
            retry=rl.RetryConfig(max_attempts=3),
            breaker=rl.Breaker(consecutive_failures=0, failure_rate_threshold=0.5,
                               window_size=20, minimum_calls=10, open_for=1.0))],
    )
    return sc, sc.replace({"payment.breaker.open_for": 3.0})


def test_common_random_numbers_reduce_the_variance_of_a_difference() -> None:
    """Two breaker settings on the same seeds see the same arrivals and latency draws: the paired
    difference of the mean latency varies far less than with independent seeds."""
    a, b = breaker_pair()
    n = 40
    paired = rl.compare(a, b, "latency_mean", seeds=range(n))
    other = [rl.simulate(b.replace(seed=1000 + s)).summary["latency_mean"] for s in range(n)]
    independent = paired.values["a"].to_numpy() - np.asarray(other)
    var_independent = float(np.var(independent, ddof=1))
    assert paired.var_paired < 0.25 * var_independent  # measured: ~0.05
    assert paired.var_paired < 0.25 * paired.var_independent
    # The same arrivals: identical order counts on every seed.
    counts = rl.compare(a, b, "arrived", seeds=range(5))
    assert (counts.values["diff"] == 0).all()
    assert list(paired.values.columns) == ["seed", "a", "b", "diff"]
    assert paired.ci_low <= paired.diff <= paired.ci_high


def test_compare_paired_t_interval() -> None:
    a, b = breaker_pair()
    c = rl.compare(a, b, "payment.calls_per_order", seeds=range(8))
    d = c.values["diff"].to_numpy()
    h = t_quantile(0.975, 7) * d.std(ddof=1) / math.sqrt(8)
    assert c.half_width == pytest.approx(h)
    assert c.diff == pytest.approx(d.mean())
    assert c.significant == (c.ci_low > 0 or c.ci_high < 0)


# ------------------------------------------------------------------------------------------------
# Ranking and selection (Kim-Nelson)


def test_kn_selects_the_best_with_the_promised_probability() -> None:
    """The slippage configuration (the best exactly delta above k - 1 equal others) is the least
    favourable for indifference-zone procedures: PCS must still be >= 1 - alpha."""
    k, delta, alpha = 5, 0.5, 0.05
    mu = np.zeros(k)
    mu[2] = delta
    m = 500
    correct = 0
    for rep in range(m):
        z = np.random.default_rng(rep).standard_normal((3000, k))
        sel = rl.kn_select(lambda i, s, z=z: float(mu[i] + z[s, i]), k, delta=delta,
                           alpha=alpha, n0=10)
        assert sel.complete
        correct += sel.best == 2
    assert correct / m >= 1 - alpha - binomial_band(1 - alpha, m)


def test_kn_spends_runs_on_close_contenders_only() -> None:
    mu = [0.0, 0.3, -5.0, -5.0, 0.25]
    z = np.random.default_rng(0).standard_normal((5000, len(mu)))
    sel = rl.kn_select(lambda i, s: float(mu[i] + z[s, i]), len(mu), delta=0.2, n0=10)
    assert sel.runs[2] == sel.runs[3] == 10  # clear losers go at the first screening
    assert max(sel.runs[0], sel.runs[1], sel.runs[4]) > 10
    eliminated = set(sel.history["eliminated"])
    assert eliminated == set(range(len(mu))) - {sel.best}
    assert {2, 3} <= set(sel.history[sel.history["stage"] == 10]["eliminated"])
    # The constants of the paper: eta and h^2 for k = 5, alpha = 0.05, n0 = 10.
    eta = 0.5 * ((2 * 0.05 / 4) ** (-2 / 9) - 1)
    assert sel.eta == pytest.approx(eta) and sel.h2 == pytest.approx(2 * eta * 9)


def test_kn_minimize_and_common_random_numbers() -> None:
    # A shared component (the "same seed") cancels in the differences: with CRN the variances
    # of the differences are small and the procedure stops after the first stage.
    mu = [1.0, 0.6, 1.2]
    common = np.random.default_rng(1).normal(0, 5, 5000)
    own = np.random.default_rng(2).normal(0, 0.05, (5000, 3))
    sel = rl.kn_select(lambda i, s: float(mu[i] + common[s] + own[s, i]), 3, delta=0.1,
                       minimize=True)
    assert sel.best == 1
    assert sum(sel.runs) == 30
    assert sel.means[1] < sel.means[0]


def test_kn_says_when_max_runs_stops_it() -> None:
    z = np.random.default_rng(4).standard_normal((100, 3))
    sel = rl.kn_select(lambda i, s: float(z[s, i]), 3, delta=0.01, n0=5, max_runs=20)
    assert not sel.complete
    assert "max_runs (20) reached" in sel.message
    assert max(sel.runs) == 20


def test_select_best_on_a_scenario() -> None:
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=100), duration=20, workers=16,
        dependencies=[rl.Dependency("payment", faults=rl.Faults(failure_rate=0.3),
                                    retry=rl.RetryConfig(max_attempts=2))],
    )
    candidates = {
        "one attempt": {"payment.retry": None},
        "two": {"payment.retry.max_attempts": 2},
        "four": {"payment.retry.max_attempts": 4},
    }
    sel = rl.select_best(sc, candidates, "success_rate", delta=0.01, n0=5)
    assert sel.complete and sel.best == 2
    assert sel.candidate == {"payment.retry.max_attempts": 4}
    assert sel.means[2] == pytest.approx(1 - 0.3**4, abs=0.01)
    assert sel.runs[0] == 5  # 70% against 99%: gone at the first screening
    fewer = rl.select_best(sc, list(candidates.values()), "payment.calls_per_order",
                           delta=0.05, n0=5, minimize=True)
    assert fewer.best == 0


# ------------------------------------------------------------------------------------------------
# Metastability


def trigger_scenario(attempts: int) -> rl.Scenario:
    """tests/test_sim_model.py's metastable failure: 70% load on a dependency that slows 4x for
    2 s; with 5 attempts the retries keep it down after the trigger ended."""
    faults = rl.Faults(
        latency=rl.Exponential(mean=0.01), capacity=rl.Capacity(max_in_service=10),
        phases=(rl.Brownout(start=20, end=22, failure_rate=0.0, latency_multiplier=4.0),),
    )
    retry = None if attempts == 1 else rl.RetryConfig(
        max_attempts=attempts, backoff=rl.Backoff(initial=0.01, max_delay=0.05))
    return rl.Scenario(
        arrivals=rl.Poisson(rate=700), duration=60, workers=400, queue_capacity=1000, seed=5,
        order_deadline=1.0, record_orders=False,
        dependencies=(rl.Dependency("payment", faults=faults, attempt_timeout=0.2, retry=retry),),
    )


def test_metastability_recovered_and_metastable() -> None:
    calm = rl.metastability(rl.simulate(trigger_scenario(1)), trigger_start=20, trigger_end=22)
    assert calm.verdict == "recovered"
    assert 0 <= calm.time_to_recover <= 5
    assert calm.baseline == pytest.approx(700, rel=0.05)
    storm = rl.metastability(rl.simulate(trigger_scenario(5)), trigger_start=20, trigger_end=22)
    assert storm.verdict == "metastable"
    assert math.isnan(storm.time_to_recover)
    assert storm.final < 0.01 * storm.baseline
    assert "metastable" in storm.message


def synthetic(goodput_after: np.ndarray) -> pd.DataFrame:
    before = np.full(20, 100.0)
    trigger = np.zeros(5)
    completed = np.concatenate([before, trigger, goodput_after])
    return pd.DataFrame({"t": np.arange(1, len(completed) + 1, dtype=float),
                         "completed": completed})


def test_metastability_verdicts_on_synthetic_series() -> None:
    back = synthetic(np.concatenate([np.full(7, 20.0), np.full(30, 99.0)]))
    v = rl.metastability(back, trigger_start=20, trigger_end=25)
    assert v.verdict == "recovered" and v.time_to_recover == 7.0
    climbing = synthetic(np.linspace(0, 80, 37))
    v = rl.metastability(climbing, trigger_start=20, trigger_end=25)
    assert v.verdict == "recovering" and math.isnan(v.time_to_recover)
    assert "observe longer" in v.message
    # Noise around a degraded level is not a recovery under way.
    noisy = synthetic(30 + 8 * np.random.default_rng(4).standard_normal(37))  # +6.4/s
    assert rl.metastability(noisy, trigger_start=20, trigger_end=25).verdict == "metastable"
    stuck = synthetic(np.full(37, 30.0))
    assert rl.metastability(stuck, trigger_start=20, trigger_end=25).verdict == "metastable"
    # A dip after recovery resets the clock: recovered only from the last sustained return.
    dip = synthetic(np.concatenate([np.full(10, 100.0), np.full(3, 10.0), np.full(24, 100.0)]))
    v = rl.metastability(dip, trigger_start=20, trigger_end=25)
    assert v.verdict == "recovered" and v.time_to_recover == 13.0
    # An explicit baseline and threshold.
    assert rl.metastability(stuck, trigger_end=25, baseline=32.0,
                            threshold=0.9).verdict == "recovered"


# ------------------------------------------------------------------------------------------------
# Bad arguments name the argument, its allowed range and the value


@pytest.mark.parametrize(
    ("call", "exc", "words"),
    [
        (lambda: rl.warmup_mser([1.0, 2.0, 3.0]), ValueError, ["at least 10", "got 3"]),
        (lambda: rl.warmup_mser(range(20), batch=0), ValueError, ["batch", ">= 1", "got 0"]),
        (lambda: rl.warmup_mser([1.0] * 9 + [math.nan] * 2), ValueError, ["finite", "index 9"]),
        (lambda: rl.batch_means(range(100), n_batches=1), ValueError,
         ["n_batches", "[2, 100]", "got 1"]),
        (lambda: rl.batch_means(range(100), confidence=1.5), ValueError,
         ["confidence", "(0, 1)", "1.5"]),
        (lambda: rl.replicate(normal_sample(0, 1), half_width=-1), ValueError,
         ["half_width", "> 0", "-1"]),
        (lambda: rl.replicate(normal_sample(0, 1), half_width=1, relative=0.1), ValueError,
         ["exactly one of half_width and relative"]),
        (lambda: rl.replicate(normal_sample(0, 1), relative=2.0), ValueError,
         ["relative", "(0, 1)", "2.0"]),
        (lambda: rl.replicate(normal_sample(0, 1), half_width=1, n_min=1), ValueError,
         ["n_min", ">= 2", "got 1"]),
        (lambda: rl.replicate(normal_sample(0, 1), half_width=1, n_min=5, n_max=3), ValueError,
         ["n_max", ">= 5", "got 3"]),
        (lambda: rl.replicate(normal_sample(0, 1), half_width="1"), TypeError,
         ["half_width", "number", "'1'"]),
        (lambda: rl.replicate(rl.Scenario(duration=1), "no_such", half_width=1), ValueError,
         ["metric", "success_rate", "'no_such'"]),
        (lambda: rl.replicate(rl.Scenario(duration=1), 3, half_width=1), TypeError,
         ["metric", "3"]),
        (lambda: rl.replicate(rl.Scenario(duration=1), len, half_width=1, delete_warmup=True),
         TypeError, ["metric", "column name", "delete_warmup"]),
        (lambda: rl.replicate(normal_sample(0, 1), half_width=1, seeds=[-1, 2]), ValueError,
         ["seeds[]", "-1"]),
        (lambda: rl.compare(rl.Scenario(duration=1), rl.Scenario(duration=1), "goodput",
                            seeds=[1]), ValueError, ["seeds", "at least 2", "got 1"]),
        (lambda: rl.compare(rl.Scenario(), "b", "goodput"), TypeError, ["scenario_b", "str"]),
        (lambda: rl.kn_select(lambda i, s: 0.0, 2, delta=0.1, alpha=0.6), ValueError,
         ["alpha", "(0, 0.5)", "0.6"]),
        (lambda: rl.kn_select(lambda i, s: 0.0, 1, delta=0.1), ValueError, ["k", ">= 2", "1"]),
        (lambda: rl.kn_select(lambda i, s: 0.0, 3, delta=0.0), ValueError,
         ["delta", "> 0", "0.0"]),
        (lambda: rl.kn_select(lambda i, s: 0.0, 3, delta=1, n0=1), ValueError,
         ["n0", ">= 2", "got 1"]),
        (lambda: rl.select_best(rl.Scenario(duration=1), [{}], "goodput", delta=1), ValueError,
         ["candidates", "at least 2", "got 1"]),
        (lambda: rl.select_best(rl.Scenario(duration=1), [{}, {"payment.nope": 1}], "goodput",
                                delta=1), ValueError, ["candidates[1]", "payment.nope"]),
        (lambda: rl.metastability(synthetic(np.full(37, 1.0)), trigger_end=25, baseline=1,
                                  threshold=0), ValueError, ["threshold", "(0, 1]", "0"]),
        (lambda: rl.metastability(synthetic(np.full(37, 1.0)), trigger_end=25), ValueError,
         ["trigger_start", "baseline"]),
        (lambda: rl.metastability(synthetic(np.full(37, 1.0)), trigger_end=25, baseline=1,
                                  column="nope"), ValueError, ["column", "'nope'"]),
        (lambda: rl.metastability(synthetic(np.full(37, 1.0)), trigger_end=25, baseline=1,
                                  window=0.5), ValueError, ["window", "sample interval", "0.5"]),
        (lambda: rl.warmup(synthetic(np.full(37, 1.0)), "nope"), ValueError,
         ["column", "completed", "'nope'"]),
    ],
)
def test_bad_arguments(call: Any, exc: type[Exception], words: list[str]) -> None:
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_long_calls_show_a_progress_bar_unless_asked_not_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """replicate, compare and select_best count their runs on a tqdm bar (on stderr)."""
    rl.replicate(normal_sample(10.0, 1.0), half_width=0.5, n_min=5, n_max=50)
    assert "replicate" in capsys.readouterr().err
    rl.replicate(normal_sample(10.0, 1.0), half_width=0.5, n_min=5, n_max=50, progress=False)
    assert "replicate" not in capsys.readouterr().err
    a, b = breaker_pair()
    a, b = a.replace({"duration": 5.0}), b.replace({"duration": 5.0})
    rl.compare(a, b, "latency_mean", seeds=range(3))
    assert "compare" in capsys.readouterr().err
    rl.select_best(a, [{}, {"payment.breaker.open_for": 3.0}], "success_rate", delta=0.5,
                   n0=3, max_runs=5)
    assert "select_best" in capsys.readouterr().err
    rl.select_best(a, [{}, {"payment.breaker.open_for": 3.0}], "success_rate", delta=0.5,
                   n0=3, max_runs=5, progress=False)
    assert "select_best" not in capsys.readouterr().err
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match="progress must be a bool"):
            rl.replicate(normal_sample(0, 1), half_width=0.5, progress=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="progress must be a bool"):
            rl.compare(a, b, "latency_mean", progress=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="progress must be a bool"):
            rl.select_best(a, [{}, {}], "success_rate", delta=0.5,
                           progress=bad)  # type: ignore[arg-type]
