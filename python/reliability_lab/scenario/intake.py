"""The service's intake: how arriving orders are admitted, ordered and shed before a worker
takes them. ``Scenario.workers`` and ``Scenario.queue_capacity`` size the pool and the job
queue; :class:`Intake` holds the overload-control policies in front of them (``intake.*`` paths,
e.g. ``rl.sweep(sc, {"intake.discipline": [...]})``).
"""

from __future__ import annotations

from dataclasses import dataclass

from reliability_lab.scenario._validate import _instance
from reliability_lab.scenario.limit import Limit, RateLimit


@dataclass(frozen=True)
class Intake:
    """Overload control at the service's intake. The default admits every order the job queue
    has room for and serves them first come, first served (the behaviour of a scenario that
    does not mention ``intake``).

    Attributes:
        limit: a server-side adaptive concurrency limit on the admitted orders not yet
            terminal (queued + processing): a :class:`~reliability_lab.scenario.Limit`, or None.
            An order over the limit is rejected at once with reason ``"limited"``.
        rate_limit: a rate limit on arriving orders (a :class:`~reliability_lab.scenario.
            RateLimit`), checked first: an order whose permit is due within ``max_wait`` waits
            for it (in the system, before the queue), any other is rejected with reason
            ``"rate_limited"``; None for none. Waits (``max_wait > 0``) are simulator-only for
            now: the live engine refuses them (ValueError).
    """

    limit: Limit | None = None
    rate_limit: RateLimit | None = None

    def __post_init__(self) -> None:
        if self.limit is not None:
            _instance("limit", self.limit, (Limit,), "a Limit or None")
        if self.rate_limit is not None:
            _instance("rate_limit", self.rate_limit, (RateLimit,), "a RateLimit or None")

