"""Service graphs: a :class:`Service` is a tier the scenario's dependencies (or another
service's) can call, with its own worker pool, job queue and dependencies. The root service is
the :class:`~reliability_lab.scenario.Scenario` itself (it receives the arrivals); a dependency
with ``service="name"`` calls a service instead of a leaf fault model. A service has its own
intake (``Service.intake``: a rate limit, a queue discipline and a concurrency limit at its job
queue).

Both engines run it: :func:`~reliability_lab.simulate` in virtual time, and
:class:`~reliability_lab.Lab` on real threads (a worker pool and a bounded queue per service,
served by the service's own intake). A hedged or fanned-out call to a service sends each copy as
a request of its own, in both engines; a copy its caller stopped waiting for is dropped
unstarted, or its work counted wasted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reliability_lab import _schema
from reliability_lab.scenario.dependency import Dependency
from reliability_lab.scenario.intake import Intake

#: The most services a scenario may declare (the root not counted).
MAX_SERVICES = 256


@dataclass(frozen=True)
class Service:
    """One tier of a service graph: a small scenario without arrivals. A call to it (from a
    :class:`~reliability_lab.scenario.Dependency` with ``service=name``) is a request that
    joins the service's job queue, waits for one of its workers, and runs the service's
    dependencies in sequence through their own policies, as an order does at the root.

    The caller's remaining time travels with the call: the request's deadline is the calling
    attempt's timeout (or its order's deadline), capped by ``deadline``. A request whose caller
    gave up before a worker took it is dropped unstarted (status ``expired``); work done for a
    caller that gave up meanwhile is counted as wasted.

    How the request's end answers the calling attempt: completed → success; rejected (its job
    queue was full) → HTTP 503 (retryable, as a real server's overload answer); failed or
    expired on its own deadline → HTTP 503 (failed) / 504 (deadline); run out of the caller's
    time → the caller's own timeout (``timeout`` / ``deadline_exceeded``).

    Attributes:
        name: letters, digits and underscores; unique among the services; dependencies call
            the service by it (``Dependency(service=name)``) and its paths start with
            ``services[name]``.
        workers: the service's worker pool, in [1, 100000].
        queue_capacity: its bounded job queue, in [0, 1e7]; a request finding it full is
            rejected at once (HTTP 503 to its caller).
        deadline: seconds from a request's arrival to its own deadline, in [0, 1e6]; 0: only
            the caller's remaining time bounds it.
        dependencies: 1 to 16 dependencies with unique names, called in order by each
            request (``services[name].dependencies[dep]`` paths).
        intake: the service's own overload control at its job queue (an
            :class:`~reliability_lab.scenario.Intake`, ``services[name].intake.*`` paths):
            ``discipline`` orders the queue as at the root (LIFO, adaptive LIFO, CoDel; a
            request CoDel drops is rejected with reason ``queue_delay``, HTTP 503 to its
            caller), and ``limit`` caps the service's admitted requests (queued + processing;
            one over it is rejected at once with reason ``limited``, HTTP 503), learning from
            each request's sojourn time as the root's limit does. ``rate_limit`` is checked
            before ``limit``, as at the root: a request whose permit is due within its
            ``max_wait`` (and before the request's own deadline) waits for it, holding no
            worker, then meets the limit and the queue; any other is rejected at once with
            reason ``rate_limited`` (HTTP 503 to its caller); ``per_key`` limits each root
            order's key. ``shedding`` must be None at a service for now (ValueError).
    """

    name: str
    workers: int = 8
    queue_capacity: int = 64
    deadline: float = 0.0
    dependencies: Sequence[Dependency] = (Dependency("payment"),)
    intake: Intake = Intake()  # noqa: RUF009 (frozen: immutable)

    def __post_init__(self) -> None:
        _schema.check(self)  # the table beside ServiceConfig (cpp/rlab/model/service_graph.cc)
        # Not modelled at a service yet (worded as the native validator words it).
        if self.intake.shedding is not None:
            raise ValueError(
                f"services[{self.name}].intake.shedding must be None: load shedding is only "
                "modelled at the root's intake for now (set intake.shedding on the scenario)"
            )

    def to_dict(self) -> dict[str, Any]:
        """This service as a plain JSON-able dict (see :meth:`Scenario.to_dict`)."""
        out: dict[str, Any] = _schema.encode(self)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Service:
        """The inverse of :meth:`to_dict`."""
        from reliability_lab.scenario.model import _decode_config

        result: Service = _decode_config(cls, d, "")
        return result

    def __reduce__(self) -> tuple[Callable[..., Service], tuple[Any, ...]]:
        return (Service.from_dict, (self.to_dict(),))
