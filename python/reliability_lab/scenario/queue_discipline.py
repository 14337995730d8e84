"""Queue disciplines: the order in which a waiting line is served, and when it drops instead.

One :class:`QueueDiscipline` object describes a line wherever the lab has one: the service's
job queue (``Scenario.intake.discipline``, paths ``intake.discipline.*``) and a capacity-limited
dependency's line (``Capacity.discipline``, paths ``<dependency>.faults.capacity.discipline.*``).
One object rather than flat fields (``intake.codel_target``,
``capacity.codel_target``...) keeps a discipline's parameters, validation and codec in one
place and spelled the same in both. The C++ policy is ``cpp/rlab/policy/queue_discipline.h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reliability_lab import _schema

QueueDisciplineKind = Literal["fifo", "lifo", "adaptive_lifo", "codel"]


@dataclass(frozen=True)
class QueueDiscipline(_schema.Checked):
    """Which waiting order a free worker takes next, and which it drops instead of serving.

    - ``"fifo"``: the oldest first (the default; exactly the lab's behaviour without it).
    - ``"lifo"``: the newest first.
    - ``"adaptive_lifo"``: FIFO while the line is short, LIFO once a queue is forming (its
      oldest order has waited ``lifo_threshold`` or more), so the freshest requests, whose
      callers still wait, go first under congestion (B. Maurer, "Fail at Scale", ACM Queue
      2015).
    - ``"codel"``: FIFO, and an order is dropped at dequeue once the queueing delay stayed at
      or above ``codel_target`` for ``codel_interval``; while dropping, the next drop comes
      ``codel_interval / sqrt(n)`` after the n-th (Nichols and Jacobson, "Controlling Queue
      Delay", ACM Queue 2012; RFC 8289). At the intake a dropped order ends ``rejected`` with
      reason ``"queue_delay"`` (no dependency is called, nothing is charged); in a dependency's
      line the dropped call fails at once with 503.

    Attributes:
        kind: ``"fifo"``, ``"lifo"``, ``"adaptive_lifo"`` or ``"codel"``.
        codel_target: CoDel's acceptable standing queue delay, seconds in (0, 1e6]
            (RFC 8289: 5 ms).
        codel_interval: CoDel's sliding window, seconds in (0, 1e6] (RFC 8289: 100 ms; about a
            round trip of the callers).
        lifo_threshold: adaptive LIFO serves LIFO while the oldest waiting order has waited at
            least this long, seconds in [0, 1e6].
    """

    kind: QueueDisciplineKind = "fifo"
    codel_target: float = 0.005
    codel_interval: float = 0.1
    lifo_threshold: float = 0.005
