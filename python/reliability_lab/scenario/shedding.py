"""Criticality classes, tenants and load shedding at the intake (``intake.shedding``).

Every order carries a criticality class (``"critical"``, ``"default"`` or ``"sheddable"``,
after the criticality levels of Google's RPC stack: "Site Reliability Engineering", ch. 21
"Handling Overload") and a tenant. The simulated engine draws both per arrival from the
``traffic`` weights below; the live engine's load generator does the same, and
``Lab.submit(criticality=..., tenant=...)`` sets them by hand. The shedder
(``cpp/rlab/policy/load_shedder.h``, the same in both engines) refuses an arriving order
(status ``rejected``, reason ``shed``) when

- its class's ``max_occupancy`` of the job queue is already taken (lowest class first: by
  default sheddable at 50%, default at 80%, critical only when the queue is full, which stays
  ``queue_full``); or
- the recent queueing delay (the smallest delay of the orders that left the queue during the last
  ``delay_interval``, CoDel's standing-queue estimate) exceeds its class's ``max_queue_delay``; or
- the queue is congested (at least ``fair_share_above`` of it taken) and the order's tenant
  already holds its weighted fair share of the queue among the tenants with orders queued, or
  holds more of it (weighted) than every other tenant with orders queued.

A noisy tenant is one whose ``traffic`` (what it sends) exceeds its ``weight`` (what it is
entitled to): ``Tenant("noisy", weight=1, traffic=10)`` sends ten times its share. A time-limited
burst of all traffic is a :class:`~reliability_lab.Schedule` on ``Scenario.arrivals``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reliability_lab import _schema

#: The criticality classes, lowest index most critical (the core's ``Criticality``).
CRITICALITIES: tuple[str, ...] = ("critical", "default", "sheddable")
#: The most tenants a scenario may declare (the core's ``kMaxTenants``).
MAX_TENANTS = 64


def _tenant_labels(names: Sequence[object]) -> list[str]:
    """How tenants are named in paths: by name when unique, by index otherwise (as phases)."""
    labels = []
    for i, name in enumerate(names):
        unique = isinstance(name, str) and name != "" and names.count(name) == 1
        labels.append(f"tenants[{name}]" if unique else f"tenants[{i}]")
    return labels


@dataclass(frozen=True)
class ShedClass(_schema.Checked):
    """One criticality class: its share of the arrivals and when it is shed.

    Attributes:
        traffic: relative weight of the class among arrivals, in [0, 1e9] (the three classes'
            weights must not all be 0).
        max_occupancy: the class is refused while the job queue already holds this fraction of
            ``queue_capacity``, in (0, 1]; 1 means only a full queue refuses it (``queue_full``).
        max_queue_delay: seconds; the class is refused while the recent queueing delay exceeds
            it, in (0, 1e6]; None: never by delay.
    """

    traffic: float = 1.0
    max_occupancy: float = 1.0
    max_queue_delay: float | None = None


@dataclass(frozen=True)
class Tenant(_schema.Checked):
    """A named source of orders.

    Attributes:
        name: letters, digits and underscores (1 to 64), unique among the tenants.
        weight: the tenant's share of a congested queue, relative to the other tenants', in
            (0, 1e9].
        traffic: relative weight of the tenant among arrivals, in [0, 1e9].
    """

    name: str
    weight: float = 1.0
    traffic: float = 1.0


@dataclass(frozen=True)
class Shedding(_schema.Checked):
    """Criticality classes, tenants and the shedding policy of the intake.

    Attributes:
        critical: the most important class (default: no traffic, refused only by a full queue).
        default: the class of ordinary traffic (default: all traffic, refused above 80%).
        sheddable: the class shed first (default: no traffic, refused above 50%).
        delay_interval: seconds over which the recent queueing delay is measured, in (0, 1e6].
        fair_share_above: the queue occupancy, in [0, 1], from which each tenant is held to its
            fair share; None: no per-tenant fairness.
        tenants: the tenants (at most 64; none: one anonymous tenant).
    """

    critical: ShedClass = ShedClass(0.0, 1.0)
    default: ShedClass = ShedClass(1.0, 0.8)
    sheddable: ShedClass = ShedClass(0.0, 0.5)
    delay_interval: float = 0.1
    fair_share_above: float | None = 0.5
    tenants: tuple[Tenant, ...] = ()

    def tenant_names(self) -> list[str]:
        """The tenants' names in declaration order (``[""]`` without tenants)."""
        return [t.name for t in self.tenants] or [""]
