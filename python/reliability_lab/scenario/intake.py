"""The service's intake: how arriving orders are admitted, ordered and shed before a worker
takes them. ``Scenario.workers`` and ``Scenario.queue_capacity`` size the pool and the job
queue; :class:`Intake` holds the overload-control policies in front of them (``intake.*`` paths,
e.g. ``rl.sweep(sc, {"intake.discipline": [...]})``).
"""

from __future__ import annotations

from dataclasses import dataclass

from reliability_lab.scenario._validate import _instance
from reliability_lab.scenario.queue_discipline import QueueDiscipline
from reliability_lab.scenario.shedding import Shedding


@dataclass(frozen=True)
class Intake:
    """Overload control at the service's intake. The default admits every order the job queue
    has room for and serves them first come, first served (the behaviour of a scenario that
    does not mention ``intake``).

    Attributes:
        shedding: criticality classes, tenants and load shedding (:class:`Shedding`,
            ``intake.shedding.*`` paths); None: every order is ``default``, of no tenant, and
            only a full queue refuses it.
        discipline: the job queue's :class:`QueueDiscipline` (FIFO, LIFO, adaptive LIFO or
            CoDel; ``intake.discipline.*`` paths).
    """

    shedding: Shedding | None = None
    discipline: QueueDiscipline = QueueDiscipline()  # noqa: RUF009 (frozen: immutable)

    def __post_init__(self) -> None:
        if self.shedding is not None:
            _instance("shedding", self.shedding, (Shedding,), "a Shedding or None")
        _instance("discipline", self.discipline, (QueueDiscipline,), "a QueueDiscipline")
