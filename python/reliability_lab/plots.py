"""Plots of runs and sweeps (matplotlib). Each function returns what it drew on.

* :func:`timeline` — one run over time: arrivals, completions and failures by reason, queue
  depth and busy workers, a dependency's calls, retries and failures; its circuit breaker's
  state as coloured bands (closed / open / half-open) and the fault phases shaded.
* :func:`heatmap` — a metric over two swept parameters (mean across seeds).
* :func:`tradeoff` — a metric against a parameter (or another metric), one curve per value of
  ``by``, with confidence bands across seeds.
* :func:`optimization_history`, :func:`pareto` — an :func:`~reliability_lab.optimize.optimize`
  study: the objective per trial with the best so far; the trials and the feasible front.
* :func:`graph` — a run's service topology (:func:`service_graph`): each edge's calls per
  second and error rate, laid out in tiers by networkx.

Nothing here picks a backend: the functions work under Agg (files, tests, CI) as in Jupyter.
Figures are made with ``pyplot`` so that notebooks show them; close them (``plt.close(fig)``)
when making many in a script.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from reliability_lab.optimize import OptimizationResult
from reliability_lab.sim import Result
from reliability_lab.sweep import summarize

#: Colours of the breaker states in :func:`timeline`.
BREAKER_COLORS = {"closed": "#4caf50", "open": "#e53935", "half_open": "#ffb300"}
_STATE_CODES = {0: "closed", 1: "open", 2: "half_open"}
_PHASE_COLOR = "#9e9e9e"
_REASON_COLORS = {
    "exhausted": "#d62728",
    "breaker_open": "#9467bd",
    "permanent": "#8c564b",
    "budget": "#e377c2",
    "deadline": "#7f7f7f",
    "non_retryable": "#bcbd22",
    "queue_delay": "#17becf",
}


def _breaker_intervals(
    result: Result, dep: str, end: float
) -> list[tuple[float, float, str]]:
    """(start, end, state) intervals of ``dep``'s breaker, from the events when recorded, else
    from the sampled state."""
    ev = result.events
    if not ev.empty:
        b = ev[(ev["dependency"] == dep) & (ev["kind"] == "breaker")]
        if not b.empty:
            out = []
            t_prev, state = 0.0, "closed"
            for t, to in zip(b["t"].to_numpy(float), b["to"].astype(str), strict=True):
                out.append((t_prev, float(t), state))
                t_prev, state = float(t), to
            out.append((t_prev, end, state))
            return [iv for iv in out if iv[1] > iv[0]]
        if result.scenario.record_events:
            return [(0.0, end, "closed")]
    col = f"{dep}.breaker_state"
    ts = result.timeseries
    if col not in ts.columns or ts.empty:
        return []
    # Each row covers the interval since the previous one (regular, doubling late in a long
    # drain, partial at the end).
    t = ts["t"].to_numpy(float)
    starts = np.concatenate(([0.0], t[:-1]))
    return [
        (float(a), float(b), _STATE_CODES.get(int(code), "closed"))
        for a, b, code in zip(starts, t, ts[col], strict=True)
    ]


def _shade_phases(ax: Axes, result: Result, dep: str | None, label: bool) -> None:
    for d in result.scenario.dependencies:
        if dep is not None and d.name != dep:
            continue
        for p in d.faults.phases:
            ax.axvspan(p.start, p.end, color=_PHASE_COLOR, alpha=0.18, lw=0, zorder=0)
            if label:
                ax.text(
                    (p.start + p.end) / 2, 0.97, f"{d.name}: {p.name}",
                    transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8,
                    color="#424242",
                )


def timeline(
    result: Result,
    *,
    dependency: str | None = None,
    figsize: tuple[float, float] = (10.0, 7.0),
    title: str | None = None,
) -> Figure:
    """One run over time, in four panels sharing the time axis.

    1. The breaker's state as a coloured strip (green closed, red open, amber half-open).
    2. Orders per second: arrivals, completions, and failures by reason (plus queue-full
       rejections and expiries), stacked.
    3. Queue depth and busy workers (levels at each sample; the worker pool's size dashed).
    4. The dependency's calls, retries, failures and breaker rejections per second.

    Fault phases are shaded grey in every panel, and the breaker's open periods faintly red.

    Args:
        result: a run whose scenario sampled time series (``sample_every`` > 0).
        dependency: the dependency of panels 1 and 4 (default: the first one with a breaker,
            else the first).
        figsize: the figure's size in inches.
        title: the figure's title (default: a one-line summary of the run).

    Returns:
        The Figure (its axes are ``fig.axes``).
    """
    ts = result.timeseries
    if ts.empty:
        raise ValueError("result has no time series: run the scenario with sample_every > 0")
    sc = result.scenario
    names = [d.name for d in sc.dependencies]
    if dependency is None:
        with_breaker = [d.name for d in sc.dependencies if d.breaker is not None]
        dependency = with_breaker[0] if with_breaker else names[0]
    elif dependency not in names:
        raise ValueError(f"dependency must be one of {names}, got {dependency!r}")
    dep = dependency
    t = ts["t"].to_numpy(float)
    # Each row's flows cover the interval since the previous row: sample_every, longer late in
    # a long drain (Scenario.sample_every), shorter for the final partial row.
    step = np.diff(t, prepend=0.0)
    end = float(max(t[-1], result.summary["end_time"]))
    has_breaker = sc.dependency(dep).breaker is not None

    fig, axes = plt.subplots(
        4, 1, sharex=True, figsize=figsize,
        gridspec_kw={"height_ratios": [0.35, 2.2, 1.4, 1.6], "hspace": 0.12},
    )
    strip, flows, levels, calls = axes

    # 1. Breaker state strip.
    intervals = _breaker_intervals(result, dep, end) if has_breaker else []
    for a, b, state in intervals:
        strip.axvspan(a, b, color=BREAKER_COLORS.get(state, "white"), lw=0)
    strip.set_yticks([])
    strip.set_ylabel("breaker", rotation=0, ha="right", va="center", fontsize=9)
    if not has_breaker:
        strip.text(0.5, 0.5, f"{dep}: no breaker", transform=strip.transAxes, ha="center",
                   va="center", fontsize=8)
    else:
        strip.legend(
            handles=[Patch(color=c, label=s.replace("_", "-")) for s, c in BREAKER_COLORS.items()],
            loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, fontsize=8, frameon=False,
        )
    for ax in (flows, levels, calls):
        for a, b, state in intervals:
            if state == "open":
                ax.axvspan(a, b, color=BREAKER_COLORS["open"], alpha=0.07, lw=0, zorder=0)
    for ax in axes:
        _shade_phases(ax, result, None, label=ax is flows)

    # 2. Order flows per second.
    left = t - step
    bottom = np.zeros(len(t))
    layers: list[tuple[str, str, str]] = [("completed", "completed", "#2ca02c")]
    for col in ts.columns:
        if col.startswith("failed_") and ts[col].sum() > 0:
            reason = col[len("failed_"):]
            layers.append((col, f"failed: {reason}", _REASON_COLORS.get(reason, "#ff7f0e")))
    for col, label, color in (("rejected", "rejected: queue full", "#17becf"),
                              ("expired", "expired", "#aec7e8")):
        if col in ts.columns and ts[col].sum() > 0:
            layers.append((col, label, color))
    for col, label, color in layers:
        v = ts[col].to_numpy(float) / step
        flows.bar(left, v, width=step, bottom=bottom, align="edge", color=color, label=label,
                  lw=0)
        bottom = bottom + v
    flows.step(t, ts["arrivals"].to_numpy(float) / step, where="pre", color="black", lw=1.2,
               label="arrivals")
    flows.set_ylabel("orders / s")
    flows.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

    # 3. Queue depth and busy workers.
    levels.plot(t, ts["queue_depth"], color="#1f77b4", lw=1.2, label="queue depth")
    levels.plot(t, ts["busy_workers"], color="#ff7f0e", lw=1.2, label="busy workers")
    levels.axhline(sc.workers, color="#ff7f0e", ls="--", lw=0.8, label=f"workers ({sc.workers})")
    levels.set_ylabel("orders")
    levels.set_ylim(bottom=0)
    levels.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

    # 4. The dependency.
    for col, label, color in (
        (f"{dep}.calls", "calls", "#1f77b4"),
        (f"{dep}.retries", "retries", "#ff7f0e"),
        (f"{dep}.failures", "failures", "#d62728"),
        (f"{dep}.rejected_breaker", "breaker rejections", "#9467bd"),
    ):
        if col in ts.columns:
            calls.step(t, ts[col].to_numpy(float) / step, where="pre", color=color, lw=1.2,
                       label=label)
    calls.set_ylabel(f"{dep} / s")
    calls.set_ylim(bottom=0)
    calls.set_xlabel("time (s)")
    calls.set_xlim(0, end)
    calls.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

    if title is None:
        s = result.summary
        title = (
            f"{int(s['arrived'])} orders, success {s['success_rate']:.1%}, "
            f"{s['calls_per_order']:.2f} calls/order, p99 {s['latency_p99']:.3f} s"
        )
    strip.set_title(title, fontsize=10, loc="left")
    fig.subplots_adjust(left=0.08, right=0.8, top=0.93, bottom=0.08)
    return fig


def _label(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def heatmap(
    df: pd.DataFrame,
    x: str,
    y: str,
    metric: str,
    *,
    ax: Axes | None = None,
    cmap: str = "viridis",
    annotate: bool | None = None,
    fmt: str = ".2f",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Axes:
    """The mean of ``metric`` over the (``x``, ``y``) grid of a sweep, as coloured cells.

    Args:
        df: a sweep's DataFrame (several rows per cell, e.g. seeds, are averaged).
        x, y: the parameters on the horizontal and vertical axes (their values become
            categorical ticks, sorted).
        metric: the column to show.
        ax: draw here (default: a new figure).
        cmap, vmin, vmax: the colour scale.
        annotate: write each cell's value (default: when there are at most 150 cells).
        fmt: the format of the annotations.

    Returns:
        The Axes.
    """
    for c in (x, y, metric):
        if c not in df.columns:
            raise ValueError(f"column {c!r} is not in the DataFrame")
    table = df.pivot_table(index=y, columns=x, values=metric, aggfunc="mean", dropna=False)
    table = table.sort_index().sort_index(axis=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.5 * table.shape[1] + 2.5),
                                      max(3.0, 0.4 * table.shape[0] + 1.5)))
    values = table.to_numpy(float)
    im = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(table.shape[1]), [_label(v) for v in table.columns],
                  rotation=45 if table.shape[1] > 8 else 0)
    ax.set_yticks(range(table.shape[0]), [_label(v) for v in table.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.figure.colorbar(im, ax=ax, label=f"{metric} (mean)")
    if annotate is None:
        annotate = values.size <= 150
    if annotate:
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                if np.isfinite(v):
                    r, g, b, _ = im.cmap(im.norm(v))
                    light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5  # the cell's luminance
                    ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7,
                            color="black" if light else "white")
    return ax


def tradeoff(
    df: pd.DataFrame,
    x: str,
    y: str,
    by: str | None = None,
    *,
    ax: Axes | None = None,
    confidence: float = 0.95,
    logx: bool = False,
    markers: bool = True,
    labels: Sequence[str] | None = None,
) -> Axes:
    """``y`` against ``x``: the mean across the runs at each ``x`` (e.g. seeds) with its
    confidence band, one curve per value of ``by``.

    Args:
        df: a sweep's DataFrame.
        x: the horizontal axis: a swept parameter (numeric).
        y: the metric.
        by: one curve per value of this column (default: one curve).
        ax: draw here (default: a new figure).
        confidence: the band's level (Student's t interval of the mean), in (0, 1).
        logx: a logarithmic x axis.
        markers: mark the points.
        labels: the curves' legend labels (default: the values of ``by``, under the legend
            title ``by``).

    Returns:
        The Axes.
    """
    for c in (x, y) + ((by,) if by is not None else ()):
        if c not in df.columns:
            raise ValueError(f"column {c!r} is not in the DataFrame")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.0))
    groups: list[tuple[Any, pd.DataFrame]] = (
        [(None, df)] if by is None else list(df.groupby(by, sort=True))
    )
    if labels is not None and len(labels) != len(groups):
        raise ValueError(f"labels must have one entry per curve ({len(groups)}), got {len(labels)}")
    for k, (key, part) in enumerate(groups):
        s = summarize(part, x, y, confidence=confidence)
        xs = s[x].to_numpy(float)
        if labels is not None:
            label = labels[k]
        elif by is None:
            label = y
        else:
            label = _label(key[0] if isinstance(key, tuple) else key)
        (line,) = ax.plot(xs, s["mean"], marker="o" if markers else None, ms=3.5, lw=1.4,
                          label=label)
        ok = s["ci_low"].notna().to_numpy()
        if ok.any():
            ax.fill_between(xs[ok], s["ci_low"][ok], s["ci_high"][ok], color=line.get_color(),
                            alpha=0.2, lw=0)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    if by is not None or labels is not None:
        ax.legend(fontsize=8, title=by if labels is None else None, title_fontsize=8)
    return ax


def optimization_history(result: OptimizationResult, *, ax: Axes | None = None) -> Axes:
    """An :func:`~reliability_lab.optimize.optimize` study's objective per trial (feasible
    trials filled, infeasible hollow) and the best feasible value so far (one objective).

    Returns:
        The Axes.
    """
    if len(result.objectives) != 1:
        raise ValueError("optimization_history is for one objective: use pareto() for several")
    obj = result.objectives[0]
    t = result.trials
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.0))
    feasible = t["feasible"].to_numpy(bool)
    xs = t["trial"].to_numpy(float)
    ys = t[obj.metric].to_numpy(float)
    ax.scatter(xs[feasible], ys[feasible], s=14, color="C0", label="feasible")
    if (~feasible).any():
        ax.scatter(xs[~feasible], ys[~feasible], s=14, facecolors="none", edgecolors="C3",
                   label="infeasible")
    best = np.where(feasible, ys, np.nan)
    running = pd.Series(best).cummin() if obj.direction == "minimize" else (
        pd.Series(best).cummax())
    ax.step(xs, running.to_numpy(float), where="post", color="C1", lw=1.4, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{obj.metric} (mean over seeds)")
    ax.set_title(str(obj), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def pareto(
    result: OptimizationResult,
    x: str | None = None,
    y: str | None = None,
    *,
    ax: Axes | None = None,
) -> Axes:
    """Every trial of an :func:`~reliability_lab.optimize.optimize` study in (``x``, ``y``)
    (default: its first two objectives), the feasible Pareto front drawn as a line and the
    infeasible trials hollow.

    Returns:
        The Axes.
    """
    names = [o.metric for o in result.objectives]
    if x is None or y is None:
        if len(names) < 2:
            raise ValueError("pareto needs x and y for a one-objective study")
        x, y = x or names[0], y or names[1]
    t = result.trials
    for c in (x, y):
        if c not in t.columns:
            raise ValueError(f"column {c!r} is not in the trials")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.0))
    feasible = t["feasible"].to_numpy(bool)
    ax.scatter(t[x][feasible], t[y][feasible], s=14, color="C0", alpha=0.6, label="feasible")
    if (~feasible).any():
        ax.scatter(t[x][~feasible], t[y][~feasible], s=14, facecolors="none",
                   edgecolors="C3", label="infeasible")
    front = result.pareto.sort_values(x, kind="stable")
    ax.plot(front[x], front[y], marker="o", ms=5, color="C1", lw=1.4, label="Pareto front")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


#: The node id of the root service (the scenario itself) in :func:`service_graph`, as in
#: ``Result.services``.
ROOT = "root"


def service_graph(result: Result) -> nx.MultiDiGraph[str]:
    """The service topology of a run as a networkx graph, with each call's totals.

    Nodes: ``"root"`` (the scenario: it receives the orders), each service by its name, and
    each leaf dependency as ``"<caller>.<dependency>"`` (the caller being ``root`` or a
    service; names have no dots, so the ids cannot collide). Node attributes: ``kind``
    (``"root"``, ``"service"`` or ``"dependency"``), ``name``, ``layer`` (tiers from the root:
    0, 1, ...; the longest call path reaching the node), ``workers`` (services and root),
    ``replicas`` (a leaf's replica count, None without replicas).

    One edge per dependency, caller → callee (a service, or the leaf's node), keyed by the
    dependency's label in ``totals["dependencies"]`` (``dep`` at the root,
    ``<service>.<dep>`` below). Edge attributes: ``dependency`` (that label), ``calls``
    (attempts sent), ``failures`` (attempts that failed), ``rate`` (calls per second of the
    scenario's ``duration``), ``error_rate`` (failures / calls; NaN without calls).

    Args:
        result: a simulated run (a single-service scenario gives root → its leaves).

    Returns:
        A ``networkx.MultiDiGraph`` (two dependencies of one caller may call the same
        service).
    """
    sc = result.scenario
    totals = {d["name"]: d for d in result.totals["dependencies"]}
    g: nx.MultiDiGraph[str] = nx.MultiDiGraph()
    g.add_node(ROOT, kind="root", name=ROOT, workers=sc.workers)
    for svc in sc.services:
        g.add_node(svc.name, kind="service", name=svc.name, workers=svc.workers)
    tiers = [(ROOT, "", sc.dependencies)] + [
        (svc.name, f"{svc.name}.", svc.dependencies) for svc in sc.services
    ]
    for caller, prefix, deps in tiers:
        for dep in deps:
            label = f"{prefix}{dep.name}"
            if label not in totals:
                raise ValueError(f"dependency {label!r} is not in the result's totals")
            t = totals[label]
            if dep.service is not None:
                callee = dep.service
            else:
                callee = f"{caller}.{dep.name}"
                g.add_node(
                    callee, kind="dependency", name=dep.name,
                    replicas=dep.replicas.count if dep.replicas is not None else None,
                )
            calls, failures = int(t["calls"]), int(t["failures"])
            g.add_edge(
                caller, callee, key=label, dependency=label, calls=calls, failures=failures,
                rate=calls / sc.duration if sc.duration > 0 else math.nan,
                error_rate=failures / calls if calls else math.nan,
            )
    # The validator refuses cycles, so the generations are the tiers (longest path from root).
    for layer, nodes in enumerate(nx.topological_generations(g)):
        for n in nodes:
            g.nodes[n]["layer"] = layer
    return g


_NODE_COLORS = {"root": "#1565c0", "service": "#64b5f6", "dependency": "#e0e0e0"}


def graph(
    result: Result,
    *,
    ax: Axes | None = None,
    cmap: str = "RdYlGn_r",
    vmax: float | None = None,
) -> Axes:
    """A run's service topology, tiers left to right: the root (the orders), the services and
    the leaf dependencies, one arrow per dependency labelled with its calls per second (calls /
    the scenario's ``duration``) and error rate (failed attempts / attempts); the arrow's
    colour and width grow with the error rate. Services show their workers, leaves their
    replicas. The layout is networkx's ``multipartite_layout`` over :func:`service_graph`'s
    ``layer``.

    Args:
        result: a simulated run (a single-service scenario draws root → its leaves).
        ax: draw here (default: a new figure sized to the graph).
        cmap: the colour map of the error rate.
        vmax: the error rate at the top of the colour scale (default: the largest one seen,
            at least 5%).

    Returns:
        The Axes.
    """
    g = service_graph(result)
    # Within a tier, nodes in depth-first order of the declared dependencies, top to bottom
    # (an explicit order: networkx groups a "layer" attribute into sets, whose order varies
    # from run to run).
    tiers: dict[int, list[str]] = {}
    for n in nx.dfs_preorder_nodes(g, ROOT):
        tiers.setdefault(g.nodes[n]["layer"], []).insert(0, n)  # y grows upwards
    pos = nx.multipartite_layout(g, subset_key=tiers)
    layers = len(tiers)
    widest = max(len(t) for t in tiers.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 2.6 * layers + 1.0), max(3.0, 1.4 * widest + 1.0)))
    rates = [float(d["error_rate"]) for _, _, d in g.edges(data=True)]
    rates = [e for e in rates if not math.isnan(e)]
    top = vmax if vmax is not None else max([0.05, *rates])
    norm = Normalize(vmin=0.0, vmax=top)
    colormap = plt.get_cmap(cmap)
    node_size = 2600

    # Parallel edges (two dependencies of one caller calling the same service) bend apart.
    seen: dict[tuple[str, str], int] = {}
    for u, v, k, d in g.edges(keys=True, data=True):
        i = seen.get((u, v), 0)
        seen[(u, v)] = i + 1
        rad = 0.0 if i == 0 else 0.4 * ((i + 1) // 2) * (1 if i % 2 else -1)
        style = f"arc3,rad={rad}"
        err = d["error_rate"]
        color = "#9e9e9e" if math.isnan(err) else colormap(norm(err))
        width = 1.5 + (0.0 if math.isnan(err) else 4.5 * min(err / top, 1.0))
        nx.draw_networkx_edges(
            g, pos, edgelist=[(u, v, k)], ax=ax, edge_color=[color], width=width,
            arrows=True, arrowsize=14, node_size=node_size, connectionstyle=style,
        )
        text = f"{d['rate']:.3g}/s\n{'n/a' if math.isnan(err) else f'{err:.1%}'} err"
        if g.nodes[v]["kind"] == "service":  # the callee's box names the service, not the dep
            text = f"{k.rsplit('.', 1)[-1]}: {text}"
        nx.draw_networkx_edge_labels(
            g, pos, edge_labels={(u, v, k): text}, ax=ax, font_size=7, connectionstyle=style,
            node_size=node_size, rotate=False,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#bdbdbd", "lw": 0.5},
        )

    for kind, color in _NODE_COLORS.items():
        nodes = [n for n, d in g.nodes(data=True) if d["kind"] == kind]
        nx.draw_networkx_nodes(
            g, pos, nodelist=nodes, ax=ax, node_color=color, node_size=node_size,
            node_shape="o" if kind == "dependency" else "s", edgecolors="#424242",
            linewidths=0.8,
        )
    labels: dict[str, str] = {}
    for n, d in g.nodes(data=True):
        if d["kind"] == "root":
            labels[n] = f"orders\n{d['workers']} workers"
        elif d["kind"] == "service":
            labels[n] = f"{d['name']}\n{d['workers']} workers"
        else:
            labels[n] = d["name"] + (f"\n{d['replicas']} replicas" if d["replicas"] else "")
    for kind in _NODE_COLORS:
        nx.draw_networkx_labels(
            g, pos, labels={n: t for n, t in labels.items() if g.nodes[n]["kind"] == kind},
            ax=ax, font_size=8, font_color="white" if kind == "root" else "black",
        )
    sm = plt.cm.ScalarMappable(norm=norm, cmap=colormap)
    ax.figure.colorbar(sm, ax=ax, label="error rate (failed attempts / attempts)",
                       fraction=0.03, pad=0.01)
    ax.set_title(f"service graph: calls/s over {result.scenario.duration:g} s", fontsize=9)
    ax.margins(0.12)
    ax.set_axis_off()
    return ax


__all__ = [
    "BREAKER_COLORS",
    "graph",
    "heatmap",
    "optimization_history",
    "pareto",
    "service_graph",
    "timeline",
    "tradeoff",
]
