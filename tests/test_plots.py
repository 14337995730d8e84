"""Plots render under Agg to PNG files, return what they drew on, and show what they claim."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import reliability_lab as rl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from reliability_lab import plots


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def scenario() -> rl.Scenario:
    return rl.Scenario(
        arrivals=rl.Poisson(rate=100), duration=30, workers=8, queue_capacity=64, seed=3,
        dependencies=(
            rl.Dependency(
                "payment",
                faults=rl.Faults(failure_rate=0.1, latency=rl.Exponential(mean=0.02),
                                 phases=(rl.Outage(start=10, end=18),)),
                retry=rl.RetryConfig(
                    max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.1)
                ),
                breaker=rl.Breaker(consecutive_failures=5, open_for=2.0),
            ),
        ),
    )


def _png(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 5_000 < len(data) < 400_000


def test_timeline_renders_breaker_bands_phases_and_flows(tmp_path: Path) -> None:
    r = rl.simulate(scenario())
    fig = plots.timeline(r)
    assert isinstance(fig, Figure)
    strip, flows, levels, calls = fig.axes[:4]
    # The strip holds one band per breaker interval, coloured by state; open and half-open occur.
    colors = {tuple(np.round(p.get_facecolor()[:3], 3)) for p in strip.patches}
    rgb = {s: tuple(np.round(matplotlib.colors.to_rgb(c), 3))
           for s, c in plots.BREAKER_COLORS.items()}
    assert rgb["open"] in colors and rgb["closed"] in colors and rgb["half_open"] in colors
    # The outage is labelled and shaded.
    assert any("outage" in t.get_text() for t in flows.texts)
    labels = flows.get_legend_handles_labels()[1]
    assert "arrivals" in labels and "completed" in labels
    assert any(lbl.startswith("failed: breaker_open") for lbl in labels)
    assert "queue depth" in levels.get_legend_handles_labels()[1]
    assert "breaker rejections" in calls.get_legend_handles_labels()[1]
    assert calls.get_xlim() == (0.0, pytest.approx(r.summary["end_time"]))
    _png(fig, tmp_path / "timeline.png")


def test_timeline_without_breaker_or_events(tmp_path: Path) -> None:
    sc = scenario().replace({"payment.breaker": None, "record_events": False})
    fig = plots.timeline(rl.simulate(sc))
    assert "no breaker" in fig.axes[0].texts[0].get_text()
    _png(fig, tmp_path / "plain.png")
    # Events off but a breaker: the sampled state is drawn instead.
    sc2 = scenario().replace({"record_events": False})
    fig2 = plots.timeline(rl.simulate(sc2))
    assert len(fig2.axes[0].patches) > 10


def test_timeline_rejects_runs_without_time_series() -> None:
    r = rl.simulate(scenario().replace({"sample_every": 0.0}))
    with pytest.raises(ValueError, match="sample_every"):
        plots.timeline(r)
    with pytest.raises(ValueError, match="dependency must be one of"):
        plots.timeline(rl.simulate(scenario()), dependency="nope")


@pytest.fixture(scope="module")
def swept() -> pd.DataFrame:
    return rl.sweep(
        scenario().replace(duration=10),
        {"payment.breaker.consecutive_failures": [1, 3, 5, 10],
         "payment.faults.failure_rate": [0.05, 0.3]},
        seeds=range(3), progress=False,
    )


def test_heatmap(swept: pd.DataFrame, tmp_path: Path) -> None:
    ax = plots.heatmap(swept, "payment.breaker.consecutive_failures",
                       "payment.faults.failure_rate", "success_rate")
    assert isinstance(ax, Axes)
    image = ax.images[0].get_array()
    assert image.shape == (2, 4)
    expected = swept.groupby(["payment.faults.failure_rate",
                              "payment.breaker.consecutive_failures"])["success_rate"].mean()
    assert image[0, 0] == pytest.approx(expected.loc[(0.05, 1)])
    assert image[1, 3] == pytest.approx(expected.loc[(0.3, 10)])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "3", "5", "10"]
    assert len(ax.texts) == 8
    _png(ax.figure, tmp_path / "heatmap.png")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in the DataFrame"):
        plots.heatmap(swept, "x", "payment.faults.failure_rate", "success_rate")


def test_tradeoff_curves_with_bands(swept: pd.DataFrame, tmp_path: Path) -> None:
    ax = plots.tradeoff(swept, "payment.breaker.consecutive_failures", "success_rate",
                        by="payment.faults.failure_rate")
    assert len(ax.lines) == 2
    assert len(ax.collections) == 2  # one confidence band per curve
    mean = swept[swept["payment.faults.failure_rate"] == 0.05].groupby(
        "payment.breaker.consecutive_failures")["success_rate"].mean()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), mean.to_numpy())
    assert ax.get_legend().get_title().get_text() == "payment.faults.failure_rate"
    _png(ax.figure, tmp_path / "tradeoff.png")  # type: ignore[arg-type]
    one = plots.tradeoff(swept, "payment.breaker.consecutive_failures", "success_rate",
                         logx=True)
    assert len(one.lines) == 1 and one.get_xscale() == "log"
    with pytest.raises(ValueError, match="one entry per curve"):
        plots.tradeoff(swept, "payment.breaker.consecutive_failures", "success_rate",
                       by="payment.faults.failure_rate", labels=["a"])


def three_tiers() -> rl.Scenario:
    """orders → inventory → db → disk, plus a replicated leaf at the root, a cache under
    inventory, and two dependencies of the root calling inventory (parallel edges)."""
    D = rl.Dependency
    retry = rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.05))
    return rl.Scenario(
        arrivals=rl.Poisson(rate=50), duration=20, workers=16, seed=11, sample_every=0.0,
        dependencies=(
            D("inv", service="inventory", retry=retry),
            D("stock", service="inventory"),
            D("payment", replicas=rl.Replicas(count=3), faults=rl.Faults(failure_rate=0.05)),
        ),
        services=(
            rl.Service(name="inventory", workers=8, dependencies=(
                D("to_db", service="db", retry=retry), D("cache"))),
            rl.Service(name="db", workers=4, dependencies=(
                D("disk", faults=rl.Faults(failure_rate=0.2)),)),
        ),
    )


def test_service_graph_nodes_edges_and_rates() -> None:
    r = rl.simulate(three_tiers())
    g = plots.service_graph(r)
    assert dict(g.nodes(data="kind")) == {
        "root": "root", "inventory": "service", "db": "service",
        "root.payment": "dependency", "inventory.cache": "dependency", "db.disk": "dependency",
    }
    # Tiers read left to right: the longest call path from the root.
    assert dict(g.nodes(data="layer")) == {
        "root": 0, "inventory": 1, "root.payment": 1, "db": 2, "inventory.cache": 2,
        "db.disk": 3,
    }
    assert g.nodes["root.payment"]["replicas"] == 3
    assert g.nodes["inventory.cache"]["replicas"] is None
    assert g.nodes["db"]["workers"] == 4
    assert sorted((u, v, k) for u, v, k in g.edges(keys=True)) == [
        ("db", "db.disk", "db.disk"),
        ("inventory", "db", "inventory.to_db"),
        ("inventory", "inventory.cache", "inventory.cache"),
        ("root", "inventory", "inv"),
        ("root", "inventory", "stock"),
        ("root", "root.payment", "payment"),
    ]
    totals = {d["name"]: d for d in r.totals["dependencies"]}
    for _, _, k, e in g.edges(keys=True, data=True):
        t = totals[k]
        assert (e["calls"], e["failures"]) == (t["calls"], t["failures"])
        assert e["rate"] == t["calls"] / 20.0
        assert e["error_rate"] == t["failures"] / t["calls"]
    # The faults show where they are: the disk fails, the cache does not, retries add calls.
    assert g.edges["db", "db.disk", "db.disk"]["error_rate"] == pytest.approx(0.2, abs=0.05)
    assert g.edges["inventory", "inventory.cache", "inventory.cache"]["error_rate"] == 0.0
    assert g.edges["root", "inventory", "inv"]["calls"] >= r.summary["arrived"]


def test_graph_draws_every_node_and_labelled_edge(tmp_path: Path) -> None:
    r = rl.simulate(three_tiers())
    ax = plots.graph(r)
    assert isinstance(ax, Axes)
    texts = [t.get_text() for t in ax.texts]
    for label in ("orders\n16 workers", "inventory\n8 workers", "db\n4 workers",
                  "payment\n3 replicas", "cache", "disk"):
        assert label in texts
    g = plots.service_graph(r)
    for _, v, k, e in g.edges(keys=True, data=True):
        label = f"{e['rate']:.3g}/s\n{e['error_rate']:.1%} err"
        if v in ("inventory", "db"):
            label = f"{k.rsplit('.', 1)[-1]}: {label}"
        assert label in texts, label
    # Tiers left to right: each edge's caller is left of its callee.
    xs = {t.get_text().split("\n")[0]: t.get_position()[0] for t in ax.texts}
    assert xs["orders"] < xs["inventory"] < xs["db"] < xs["disk"]
    # Within a tier, top to bottom in the order the dependencies are declared (not the order
    # of a set, which varies with PYTHONHASHSEED).
    ys = {t.get_text().split("\n")[0]: t.get_position()[1] for t in ax.texts}
    assert ys["inventory"] > ys["payment"]
    assert ys["db"] > ys["cache"]
    _png(ax.figure, tmp_path / "graph.png")  # type: ignore[arg-type]


def test_graph_of_a_single_service_scenario(tmp_path: Path) -> None:
    r = rl.simulate(scenario().replace(duration=5))
    g = plots.service_graph(r)
    assert list(g.edges(keys=True)) == [("root", "root.payment", "payment")]
    assert g.nodes["root.payment"]["layer"] == 1
    ax = plots.graph(r)
    assert "payment" in [t.get_text() for t in ax.texts]
    _png(ax.figure, tmp_path / "single.png")  # type: ignore[arg-type]
