"""The service's intake: how arriving orders are admitted, ordered and shed before a worker
takes them. ``Scenario.workers`` and ``Scenario.queue_capacity`` size the pool and the job
queue; :class:`Intake` holds the overload-control policies in front of them (``intake.*`` paths,
e.g. ``rl.sweep(sc, {"intake.discipline": [...]})``).
"""

from __future__ import annotations

from dataclasses import dataclass

from reliability_lab import _schema
from reliability_lab.scenario.limit import Limit, RateLimit
from reliability_lab.scenario.queue_discipline import QueueDiscipline
from reliability_lab.scenario.shedding import Shedding


@dataclass(frozen=True)
class Intake(_schema.Checked):
    """Overload control at the service's intake. The default admits every order the job queue
    has room for and serves them first come, first served (the behaviour of a scenario that
    does not mention ``intake``).

    Attributes:
        shedding: criticality classes, tenants and load shedding (:class:`Shedding`,
            ``intake.shedding.*`` paths); None: every order is ``default``, of no tenant, and
            only a full queue refuses it.
        discipline: the job queue's :class:`QueueDiscipline` (FIFO, LIFO, adaptive LIFO or
            CoDel; ``intake.discipline.*`` paths).
        limit: a server-side adaptive concurrency limit on the admitted orders not yet
            terminal (queued + processing): a :class:`~reliability_lab.scenario.Limit`, or None.
            An order over the limit is rejected at once with reason ``"limited"``.
        rate_limit: a rate limit on arriving orders (a :class:`~reliability_lab.scenario.
            RateLimit`), checked first: an order whose permit is due within ``max_wait`` waits
            for it (in the system, before the queue; in the live engine off the submitter's
            thread, the order ``pending`` meanwhile), then goes on through the other gates; any
            other is rejected with reason ``"rate_limited"``; None for none.

    Order of the gates: the rate limit, then the concurrency limit, then the queue's own
    capacity, then the shedder; the discipline orders what is queued. Per class (with
    ``shedding``), refusals by either limit count with the queue's own (``queue_full``).
    """

    shedding: Shedding | None = None
    discipline: QueueDiscipline = QueueDiscipline()  # noqa: RUF009 (frozen: immutable)
    limit: Limit | None = None
    rate_limit: RateLimit | None = None
