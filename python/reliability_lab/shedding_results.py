"""Per-class and per-tenant figures of a run with ``intake.shedding`` (both engines).

The native engines count, per criticality class and per tenant, the orders that arrived, were
admitted, shed, refused by a full queue, completed, and the latency of the completed ones
(``OriginStats`` in ``cpp/rlab/model/origin_stats.h``). This module turns those counts into
``Result.classes`` / ``Result.tenants`` and into ``class.<name>.*`` / ``tenant.<name>.*`` summary
keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from prometheus_client.core import CounterMetricFamily, Metric

from reliability_lab.scenario.shedding import CRITICALITIES

_COLUMNS = ["arrived", "admitted", "shed", "queue_full", "completed", "other_end"]


def origin_rows(raw: Mapping[str, Any], key: str, end: float) -> list[dict[str, Any]]:
    """One dict per class (``key="classes"``) or tenant (``key="tenants"``)."""
    rows = []
    for t in raw.get(key) or []:
        lat = t["latency"]
        has = bool(lat["count"])
        arrived = t["arrived"]
        row: dict[str, Any] = {"name": t["name"]}
        row.update({c: t[c] for c in _COLUMNS})
        row["success_rate"] = t["completed"] / arrived if arrived else math.nan
        row["goodput"] = t["completed"] / end if end > 0 else math.nan
        for q in ("mean", "p50", "p95", "p99"):
            row[f"latency_{q}"] = lat[q] if has else math.nan
        rows.append(row)
    return rows


def origin_tables(raw: Mapping[str, Any]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """``(classes, tenants)`` DataFrames indexed by name; ``(None, None)`` without shedding."""
    if not raw.get("classes"):
        return None, None
    end = float(raw["end"])
    out = []
    for key, index in (("classes", "criticality"), ("tenants", "tenant")):
        df = pd.DataFrame(origin_rows(raw, key, end)).set_index("name")
        df.index.name = index
        out.append(df)
    return out[0], out[1]


def origin_summary(raw: Mapping[str, Any]) -> dict[str, float]:
    """``class.<name>.<figure>`` and ``tenant.<name>.<figure>`` summary keys, and the shed
    orders by cause (``shed_occupancy``, ``shed_delay``, ``shed_fairness``)."""
    if not raw.get("classes"):
        return {}
    end = float(raw["end"])
    s: dict[str, float] = {}
    for key, prefix in (("classes", "class"), ("tenants", "tenant")):
        for row in origin_rows(raw, key, end):
            name = row.pop("name") or "_"
            for k, v in row.items():
                s[f"{prefix}.{name}.{k}"] = float(v)
    for cause, n in raw.get("shed_by_cause", {}).items():
        s[f"shed_{cause}"] = float(n)
    return s


def order_origin_columns(
    cols: Mapping[str, Any], tenant_names: list[str]
) -> dict[str, pd.Categorical]:
    """The orders table's ``criticality`` and ``tenant`` columns from the native codes."""
    return {
        "criticality": pd.Categorical.from_codes(
            cols["criticality"], categories=pd.Index(list(CRITICALITIES))
        ),
        "tenant": pd.Categorical.from_codes(cols["tenant"], categories=pd.Index(tenant_names)),
    }


#: The outcomes the intake families count, per class and per tenant.
ORIGIN_OUTCOMES = ("arrived", "admitted", "shed", "queue_full", "completed")


def origin_families(totals: Mapping[str, Any], prefix: str) -> list[Metric]:
    """``<prefix>_intake_orders{criticality, outcome}`` and, with declared tenants,
    ``<prefix>_intake_tenant_orders{tenant, outcome}`` (at most 64 tenants: bounded)."""
    if not totals.get("classes"):
        return []
    out: list[Metric] = []
    for key, name, label, doc in (
        ("classes", "intake_orders", "criticality", "criticality class"),
        ("tenants", "intake_tenant_orders", "tenant", "tenant"),
    ):
        rows = totals[key]
        if key == "tenants" and len(rows) == 1 and not rows[0]["name"]:
            continue  # no declared tenants
        family = CounterMetricFamily(
            f"{prefix}_{name}", f"Orders at the intake by {doc} and outcome.",
            labels=[label, "outcome"],
        )
        for row in rows:
            for outcome in ORIGIN_OUTCOMES:
                family.add_metric([row["name"], outcome], float(row[outcome]))
        out.append(family)
    return out
