"""Service graphs: the per-service table of a run, simulated or live (``Result.services``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

#: The columns of ``Result.services``, in order.
SERVICE_COLUMNS = (
    "arrivals",
    "completed",
    "failed",
    "rejected",
    "expired",
    "in_flight",
    "amplification",
    "latency_mean",
    "latency_p50",
    "latency_p99",
    "wasted",
    "wasted_seconds",
    "dropped_unstarted",
)


def service_frame(totals: Mapping[str, Any]) -> pd.DataFrame:
    """One row per service, the root (``"root"``, the scenario itself: its rows are the orders)
    first: ``arrivals`` (requests that reached it, rejected ones included), ``completed``,
    ``failed``, ``rejected`` (refused at once by its full job queue, its ``intake.limit`` or
    its ``intake.rate_limit``, or dropped by its ``intake.discipline``: see
    ``failed_<reason>``), ``expired`` (dropped
    unstarted: its caller had given up, or its deadline passed), ``in_flight`` (0 after a
    drained run),
    ``amplification`` (arrivals per user order: the calls each order causes at this tier),
    ``latency_mean`` / ``latency_p50`` / ``latency_p99`` (seconds, arrival to end, completed
    requests), ``wasted`` / ``wasted_seconds`` (requests a worker ran for a caller that had
    given up, and their worker time), ``dropped_unstarted``, and ``failed_<reason>`` for each
    failure reason seen. Empty for a single-service scenario."""
    rows = totals.get("services") or []
    if not rows:
        empty: pd.DataFrame = pd.DataFrame(
            columns=list(SERVICE_COLUMNS), index=pd.Index([], name="service")
        )
        return empty
    orders = rows[0]["arrived"]
    data: dict[str, dict[str, float]] = {}
    for s in rows:
        st, lat = s["statuses"], s["latency"]
        row: dict[str, float] = {
            "arrivals": s["arrived"],
            "completed": st["completed"],
            "failed": st["failed"],
            "rejected": st["rejected"],
            "expired": st["expired"],
            "in_flight": s["in_flight"],
            "amplification": s["arrived"] / orders if orders else math.nan,
            "latency_mean": lat["mean"] if lat["count"] else math.nan,
            "latency_p50": lat["p50"] if lat["count"] else math.nan,
            "latency_p99": lat["p99"] if lat["count"] else math.nan,
            "wasted": s["wasted"],
            "wasted_seconds": s["wasted_seconds"],
            "dropped_unstarted": s["dropped_unstarted"],
        }
        for reason, n in s["reasons"].items():
            if n:
                row[f"failed_{reason}"] = n
        data[s["name"]] = row
    out: pd.DataFrame = pd.DataFrame.from_dict(data, orient="index").fillna(0)
    out.index.name = "service"
    return out
