"""The live engine: run a :class:`~reliability_lab.scenario.Scenario` on real threads.

::

    with rl.Lab(scenario) as lab:
        handles = lab.submit_many(100)      # or lab.submit(), or lab.start_load()
        handles[0].wait()
        print(lab.metrics_text())           # Prometheus exposition; lab.serve_metrics(9100)
    lab.result.summary                      # the same Result shape as simulate()

Orders go through a bounded job queue (a full queue rejects at once) to a pool of native worker
threads that never touch the GIL. Each worker runs the same per-order flow as the simulated
engine, but blocking: a dependency call really takes its latency, a backoff really sleeps, and
fault phases start and end on the wall clock, measured from the start of the lab.

Leaving the ``with`` block shuts the lab down: intake stops, the workers get ``shutdown_timeout``
seconds to finish what they hold and what is queued, the rest is cancelled, and every thread is
joined. This also happens when the block exits through an exception, and at once (no grace time)
on ``KeyboardInterrupt``. Afterwards every submitted order is in exactly one terminal state.

Memory follows the orders in flight, not the orders run, so a lab can run for days: an order's
slot is released once it has ended and is older than the ``retain_orders`` most recent orders
(handles keep answering; only looking an old order up by id stops working), an idempotency key
is freed when its order ends, the payment ledger remembers the pairs of orders in flight plus
the ``idempotency_window`` most recent ones (the durable file is the record), and the result's
``orders`` table keeps the ``max_order_records`` most recent orders (``scenario.record_orders``
off keeps none), and its events keep the 65,536 most recent breaker transitions (the
``rlab_breaker_transitions`` counters count every one). The counts are in
``internals()["memory"]``. At shutdown the lab checks that every order that arrived is in
exactly one terminal state, and raises if not (an engine bug).

Logs are JSON lines on the ``reliability_lab`` logger: breaker transitions, retry loops given up,
and shutdown progress. Callbacks (``on_transition``) run on the lab's log thread with no native
lock held.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, overload

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest, start_http_server
from prometheus_client.registry import Collector, CollectorRegistry

from reliability_lab import _core
from reliability_lab._core import LabClosedError
from reliability_lab.breaker import Breaker
from reliability_lab.metrics import LATENCY_BOUNDS
from reliability_lab.scenario import Faults, Scenario
from reliability_lab.sim import Result, _build_result

_log = logging.getLogger("reliability_lab")

#: The terminal order states: every order ends in exactly one of them.
TERMINAL_STATES = frozenset({"completed", "failed", "rejected", "expired", "cancelled"})

# Waits are cut into slices this long, so that Ctrl-C is noticed between them.
_WAIT_SLICE = 0.05


def _log_event(event: str, **fields: Any) -> None:
    if _log.isEnabledFor(logging.INFO):
        _log.info(json.dumps({"event": event, **fields}, sort_keys=True))


@dataclass(frozen=True)
class OrderView:
    """A snapshot of one order. Times are seconds since the lab started; ``nan`` until known.

    Attributes:
        id: the order's id (its submission index).
        status: ``pending``, ``queued``, ``processing`` or one of :data:`TERMINAL_STATES`.
            ``pending``: admitted, not yet queued (waiting for its ``intake.rate_limit``
            permit; no event in :meth:`Lab.take_order_events` until it is queued).
        reason: why it failed, was rejected or cancelled (``""`` otherwise).
        arrival, start, end: when it was submitted, taken by a worker, and became terminal.
        attempts: dependency attempts made (once terminal).
        degraded: completed on a fallback.
        charges, applied_charges: committed charges, and those the ledger applied.
    """

    id: int
    status: str
    reason: str
    arrival: float
    start: float
    end: float
    attempts: int
    degraded: bool
    charges: int
    applied_charges: int


# OrderHandle.view() builds OrderViews. (LabClosedError, which the native submit raises, is a
# native class: a ReliabilityLabError and a RuntimeError.)
_core._bind_live(OrderView)


@dataclass(frozen=True)
class ShutdownReport:
    """How a shutdown went.

    Attributes:
        finished_in_time: orders that became terminal normally during the grace time.
        cancelled: orders cancelled because the grace time ran out.
        timed_out: whether the grace time ran out with work left.
        elapsed: seconds the shutdown took.
    """

    finished_in_time: int
    cancelled: int
    timed_out: bool
    elapsed: float


#: A submitted order: ``.id``, ``.status``, ``.reason``, ``.done()``, ``.view()`` (an
#: :class:`OrderView`) and ``.wait(timeout=None)`` (the GIL released, Ctrl-C interrupts it).
#: ``OrderHandle(engine, order_id)`` makes the handle of an existing order. A native type: one is
#: made per ``lab.submit()``, which builds no Python frame (see ``Lab.__init__``).
OrderHandle = _core.OrderHandle


class OrderHandles(Sequence[OrderHandle]):
    """The handles of a batch from :meth:`Lab.submit_many`, made on access: a batch of a million
    orders builds no million Python objects up front (that would cost more than the orders).
    The batch holds its orders' slots, so its handles answer however long ago they ended."""

    __slots__ = ("_batch", "_engine", "_ids")

    def __init__(
        self, engine: _core.LiveEngine, ids: NDArray[np.int64], batch: _core._OrderBatch
    ) -> None:
        self._engine = engine
        self._ids = ids
        self._ids.flags.writeable = False
        self._batch = batch

    @property
    def ids(self) -> NDArray[np.int64]:
        """The orders' ids (read-only)."""
        return self._ids

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    @overload
    def __getitem__(self, index: int) -> OrderHandle: ...
    @overload
    def __getitem__(self, index: slice) -> OrderHandles: ...
    def __getitem__(self, index: int | slice) -> OrderHandle | OrderHandles:
        if isinstance(index, slice):
            return OrderHandles(self._engine, self._ids[index], self._batch)
        return self._batch.handle(int(self._ids[index]))

    def __iter__(self) -> Iterator[OrderHandle]:
        make = self._batch.handle
        for i in self._ids.tolist():
            yield make(i)

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until every order of the batch is terminal, at most ``timeout`` seconds in all
        (``None``: no limit); returns whether they all are."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for handle in self:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not handle.wait(left):
                return False
        return True

    def __repr__(self) -> str:
        return f"OrderHandles(n={len(self)})"


def _wait_sliced(wait: Callable[[float], bool], timeout: float | None) -> bool:
    """Runs a native wait in short slices, so that Ctrl-C raises KeyboardInterrupt between them."""
    if timeout is not None and not (math.isfinite(timeout) and timeout >= 0):
        raise ValueError(f"timeout must be None or a finite number >= 0, got {timeout!r}")
    remaining = math.inf if timeout is None else timeout
    while True:
        step = min(_WAIT_SLICE, remaining)
        if wait(step):
            return True
        remaining -= step
        if remaining <= 0:
            return False


class LiveCollector(Collector):
    """A prometheus_client collector reading the live engine's native metrics registry.

    Family names and labels are those of the simulated engine's metrics (see
    :mod:`reliability_lab.metrics`), plus live-only gauges (queue depth, busy workers, ...).
    """

    def __init__(self, engine: _core.LiveEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        for fam in self._engine.metrics():
            name, help_text, labels = fam["name"], fam["help"], fam["labels"]
            metric: Metric
            if fam["type"] == "counter":
                metric = CounterMetricFamily(name, help_text, labels=labels)
                for values, value, _, _, _ in fam["series"]:
                    metric.add_metric(values, value)
            elif fam["type"] == "gauge":
                metric = GaugeMetricFamily(name, help_text, labels=labels)
                for values, value, _, _, _ in fam["series"]:
                    metric.add_metric(values, value)
            else:
                metric = HistogramMetricFamily(name, help_text, labels=labels)
                for values, _, cumulative, total, count in fam["series"]:
                    buckets = [
                        (repr(float(b)), float(n))
                        for b, n in zip(fam["bounds"], cumulative, strict=True)
                    ]
                    buckets.append(("+Inf", float(count)))
                    metric.add_metric(values, buckets, sum_value=total)
            yield metric


class Lab:
    """A scenario running live: real threads, real sleeps, Prometheus metrics, graceful shutdown.

    Args:
        scenario: what to run (its arrivals drive :meth:`start_load`; its workers, queue, deadline
            and dependencies drive everything else).
        shutdown_timeout: the grace time, in seconds, that leaving the ``with`` block gives the
            workers before cancelling what is left.
        log_interval: seconds between checks for breaker transitions and retry loops given up,
            which are logged (and passed to ``on_transition``) from a background thread.
        on_transition: called as ``on_transition(t, dependency, from_state, to_state)`` for every
            breaker transition, on the log thread, with no native lock held.
        ledger_path: the simulated payment provider's durable ledger, an append-only file (one
            ``<dependency>\t<idempotency key>`` line per APPLIED charge, so a pair written twice is
            a double charge). Loaded at construction (a malformed line raises ValueError); each
            applied charge is written with one ``write(2)`` before the charging attempt's response
            reaches the order, so a ``kill -9`` loses none. ``None``: in memory.
        ledger_fsync: also ``fdatasync`` every ledger line (survives power loss; slower).
        order_events: record every order status change for :meth:`take_order_events`.
        retain_orders: how many of the most recent orders stay addressable by id
            (:meth:`handle`, :attr:`handles`, ``OrderHandle(engine, id)``) once they have ended;
            older ended orders release their slot (about 70 bytes). A handle already taken keeps
            answering whatever its age. Orders in flight are always addressable. ``>= 0``.
        max_order_records: with ``scenario.record_orders``, the result's ``orders`` table keeps
            the most recent ``max_order_records`` orders (32 bytes each, so the default bounds it
            to 32 MB); its index is the order id. Summary, time series and metrics count every
            order regardless. ``>= 0``. A long run with bounded memory sets
            ``scenario.record_orders=False`` (or this to 0).
        idempotency_window: besides the charges of orders in flight, how many of the most
            recently applied ``(dependency, idempotency key)`` pairs the payment ledger remembers
            to deduplicate later charges (about 100 bytes each). A key reused after that many
            other charges is charged again (and written again to the ledger file, where an
            offline check finds it). ``>= 0``.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        shutdown_timeout: float = 5.0,
        log_interval: float = 0.1,
        on_transition: Callable[[float, str, str, str], None] | None = None,
        ledger_path: str | os.PathLike[str] | None = None,
        ledger_fsync: bool = False,
        order_events: bool = False,
        retain_orders: int = 100_000,
        max_order_records: int = 1_000_000,
        idempotency_window: int = 100_000,
    ) -> None:
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
        for name, value in (
            ("retain_orders", retain_orders),
            ("max_order_records", max_order_records),
            ("idempotency_window", idempotency_window),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if not 0 <= value <= 2**62:
                raise ValueError(f"{name} must be in [0, 2**62], got {value!r}")
        if not (math.isfinite(shutdown_timeout) and shutdown_timeout >= 0):
            raise ValueError(
                f"shutdown_timeout must be a finite number >= 0, got {shutdown_timeout!r}"
            )
        if not (math.isfinite(log_interval) and log_interval > 0):
            raise ValueError(f"log_interval must be a finite number > 0, got {log_interval!r}")
        self.scenario = scenario
        self.shutdown_timeout = float(shutdown_timeout)
        self._log_interval = float(log_interval)
        self._on_transition = on_transition
        self._engine = _core.LiveEngine(
            scenario.compiled(),
            sample_every=float(scenario.sample_every) if scenario.sample_every else 0.0,
            record_orders=bool(scenario.record_orders),
            record_events=bool(scenario.record_events),
            latency_bounds=list(LATENCY_BOUNDS),
            ledger_path="" if ledger_path is None else os.fspath(ledger_path),
            ledger_fsync=bool(ledger_fsync),
            order_events=bool(order_events),
            retain_orders=retain_orders,
            max_order_records=max_order_records,
            idempotency_window=idempotency_window,
        )
        # The native submit itself, so that ``lab.submit()`` runs no Python frame: it validates its
        # arguments, raises LabClosedError and returns an OrderHandle as the method below says.
        self.submit = self._engine.submit  # type: ignore[method-assign]
        self._collector = LiveCollector(self._engine)
        self._started = False
        self._report: ShutdownReport | None = None
        self._result: Result | None = None
        self._lock = threading.Lock()  # serialises start and shutdown
        self._stop_logging = threading.Event()
        self._log_thread: threading.Thread | None = None
        self._given_up: dict[tuple[str, str], float] = {}
        # Every tier's dependencies by the engine's label ("payment"; "<service>.<dependency>"
        # for a service's own) and the scenario path of each.
        self._dep_paths: dict[str, str] = {d.name: d.name for d in scenario.dependencies}
        deps = {d.name: d for d in scenario.dependencies}
        for svc in scenario.services:
            for d in svc.dependencies:
                label = f"{svc.name}.{d.name}"
                self._dep_paths[label] = f"services[{svc.name}].dependencies[{d.name}]"
                deps[label] = d
        # The fault models in force (set_faults replaces them while the lab runs).
        self._faults = {label: d.faults for label, d in deps.items()}
        # The breaker parameters in force (set_breaker replaces them while the lab runs).
        self._breakers = {label: d.breaker for label, d in deps.items()}
        self._breaker_lock = threading.Lock()
        self._dashboards: list[Any] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Lab:
        """Starts the worker threads; the lab's clock (and its fault phases) starts now."""
        with self._lock:
            if self._report is not None:
                raise LabClosedError("the lab was shut down; create a new Lab to run again")
            if self._started:
                return self
            self._engine.start()
            self._started = True
            self._log_thread = threading.Thread(
                target=self._log_loop, name="reliability_lab-log", daemon=True
            )
            self._log_thread.start()
        _log_event(
            "lab_started",
            workers=self.scenario.workers,
            queue_capacity=self.scenario.queue_capacity,
            dependencies=[d.name for d in self.scenario.dependencies],
        )
        return self

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Ctrl-C means "stop now": no grace time. Any other exit lets in-flight work finish.
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        self.shutdown(0.0 if interrupted else self.shutdown_timeout)

    def shutdown(self, timeout: float | None = 5.0) -> ShutdownReport:
        """Stops intake and the load generators, gives the workers ``timeout`` seconds (``None``:
        no limit) to finish in-flight and queued orders, cancels the rest and joins every thread.

        Idempotent: later calls return the first call's report.
        """
        if timeout is not None and not (math.isfinite(timeout) and timeout >= 0):
            raise ValueError(f"timeout must be None or a finite number >= 0, got {timeout!r}")
        with self._lock:
            if self._report is not None:
                return self._report
            _log_event(
                "shutdown_started",
                timeout=timeout,
                in_flight=self._engine.in_system,
                arrived=self._engine.arrived,
            )
            for board in self._dashboards:
                board.dashboard.record_shutdown_started()
            raw = self._engine.shutdown(timeout)
            self._stop_logging.set()
            if self._log_thread is not None:
                self._log_thread.join()
            self._poll_logs()  # what happened after the log thread's last look
            internal_error = raw.pop("internal_error")
            self._report = ShutdownReport(**raw)
            _log_event("shutdown_complete", **raw)
        for board in self._dashboards:  # their streams see the end, then they stop
            board.stop()
        self._dashboards.clear()
        if internal_error:
            # An engine bug (the end-of-run conservation check failed): never silently.
            _log.error(json.dumps({"event": "internal_error", "error": internal_error}))
            raise RuntimeError(f"reliability_lab internal error: {internal_error}")
        return self._report

    @property
    def running(self) -> bool:
        """Whether the lab is started and not shut down."""
        return self._started and self._report is None

    # --- orders ----------------------------------------------------------------------------

    def submit(
        self,
        key: int | None = None,
        idempotency_key: str | None = None,
        *,
        criticality: str | None = None,
        tenant: str | None = None,
    ) -> OrderHandle:
        """Submits one order and returns its handle at once. ``key`` (an integer in
        [0, 2**31 - 1]) selects the order's fallback-cache entry; default: derived from the id. A
        full queue rejects the order (status ``rejected``, reason ``queue_full``); a lab that is
        not running raises :class:`LabClosedError`.

        ``idempotency_key`` is the key the order's charges carry to the payment ledger (1 to 200
        printable ASCII characters, no spaces); orders sharing it are charged once by a
        dependency with ``idempotency_keys=True``. Default: derived from the order's id, unique
        to this lab. Invalid arguments raise ValueError naming the parameter (TypeError for an
        ``idempotency_key`` that is not a str).

        With ``intake.shedding``, ``criticality`` (``"critical"``, ``"default"`` or
        ``"sheddable"``; default ``"default"``) and ``tenant`` (the name of one of
        ``intake.shedding.tenants``; default the first) set the order's class and tenant, and
        the shedder may refuse it (status ``rejected``, reason ``shed``). Without shedding they
        are recorded only. An unknown class or tenant raises ValueError.
        """
        # Documentation only: __init__ puts the native submit, which behaves as described, on
        # every instance.
        return self._engine.submit(
            key, idempotency_key, criticality=criticality, tenant=tenant
        )

    def submit_many(self, n: int) -> OrderHandles:
        """Submits ``n`` orders in one native call (the GIL released) and returns their handles
        (a sequence made on access; ``.ids`` is the id array, ``.wait()`` waits for all). With
        ``intake.shedding``, each order's class and tenant are drawn from the scenario's
        ``traffic`` weights, as the load generators do."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        ids, batch = self._engine.submit_many(n)  # LabClosedError unless running
        return OrderHandles(self._engine, ids, batch)

    def handle(self, order_id: int) -> OrderHandle:
        """The handle of order ``order_id`` (from Python or from a load generator). KeyError for
        an id never submitted, or for an ended order older than the last ``retain_orders``."""
        if not 0 <= order_id < self._engine.arrived:
            raise KeyError(f"no order with id {order_id}")
        return OrderHandle(self._engine, order_id)

    @property
    def handles(self) -> list[OrderHandle]:
        """Handles of every order still addressable by id (in flight, or among the last
        ``retain_orders``: every order of a short run), load generators' included, in id
        order."""
        return self._engine.handles()

    @property
    def arrived(self) -> int:
        """Orders submitted so far (accepted or rejected)."""
        return int(self._engine.arrived)

    @property
    def in_flight(self) -> int:
        """Admitted orders not yet terminal."""
        return int(self._engine.in_system)

    def now(self) -> float:
        """Seconds since the lab started (the clock of fault phases and order times)."""
        return float(self._engine.now())

    # --- load ------------------------------------------------------------------------------

    def start_load(self) -> None:
        """Starts the scenario's native load generator (open-loop arrivals on one thread, or one
        thread per closed-loop client) for ``scenario.duration`` seconds from now."""
        self._engine.start_load()  # LabClosedError unless running

    def stop_load(self) -> None:
        """Stops the load generators and joins them."""
        self._engine.stop_load()

    @property
    def arrival_rate(self) -> float:
        """The open-loop arrival rate :meth:`start_load` generates, in orders per second (that of
        the scenario's Poisson or constant arrivals until :meth:`set_arrival_rate` changes it; 0
        for arrivals without one rate)."""
        return float(self._engine.arrival_rate)

    def set_arrival_rate(self, rate: float) -> None:
        """Changes the load generator's arrival rate (Poisson or constant arrivals), before
        :meth:`start_load` or while it runs: the generator draws its next arrival from now at
        the new rate. ValueError naming ``arrivals.rate`` and its range for a bad rate;
        TypeError unless a number; RuntimeError for arrivals without one rate (a schedule, a
        trace, closed-loop clients)."""
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise TypeError(f"arrivals.rate must be a number, got {type(rate).__name__}")
        self._engine.set_arrival_rate(float(rate))
        _log_event("arrival_rate_changed", rate=float(rate))

    @property
    def load_running(self) -> bool:
        """Whether a load generator is still producing orders."""
        return bool(self._engine.load_running())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Waits until the load generators are done and no order is in flight; returns whether
        that happened within ``timeout`` seconds (``None``: no limit)."""
        return _wait_sliced(self._engine.wait_idle, timeout)

    # --- service hooks ---------------------------------------------------------------------

    def take_order_events(self) -> list[tuple[int, str, str, float, int, int, bool]]:
        """The order status changes since the last call, oldest first, as tuples
        ``(id, status, reason, t, attempts, charges, degraded)``: ``queued`` and ``processing``
        (reason ``""``, attempts and charges 0, not degraded) and the terminal state with its
        reason, attempts, committed charges and whether it completed on a fallback. ``t`` is
        seconds since the lab started. Empty unless the lab was created with
        ``order_events=True``; take them regularly, they are kept until taken."""
        return self._engine.take_order_events()

    def set_faults(self, dependency: str, faults: Faults) -> None:
        """Replaces ``dependency``'s fault model while the lab runs (the chaos switch). Attempts
        that start afterwards use it; those in progress finish with the old one. Its phases are
        on the lab's clock (seconds since start), like the scenario's. In a service graph a
        service's own dependency is named ``"<service>.<dependency>"`` (here, in
        :meth:`set_breaker` and in the results).

        Raises KeyError for an unknown dependency, TypeError unless ``faults`` is a
        :class:`~reliability_lab.scenario.Faults`, and ValueError naming the dotted path
        (``payment.faults.failure_rate ...``) for an invalid model.
        """
        if dependency not in self._dep_paths:
            names = ", ".join(self._dep_paths)
            raise KeyError(f"no dependency named {dependency!r} (have: {names})")
        if not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults, got {type(faults).__name__}")
        changed = self.scenario.replace({f"{self._dep_paths[dependency]}.faults": faults})
        self._engine.set_faults(dependency, changed.compiled())
        self._faults[dependency] = faults
        _log_event("faults_changed", dependency=dependency, failure_rate=faults.failure_rate)

    def faults(self, dependency: str) -> Faults:
        """The fault model ``dependency`` runs with now (the scenario's, or the last one
        :meth:`set_faults` gave it). KeyError for an unknown dependency."""
        if dependency not in self._faults:
            raise KeyError(f"no dependency named {dependency!r} (have: {', '.join(self._faults)})")
        return self._faults[dependency]

    def set_breaker(self, dependency: str, breaker: Breaker | Mapping[str, Any]) -> Breaker:
        """Changes ``dependency``'s circuit breaker parameters while the lab runs (the control
        room's knob) and returns the :class:`~reliability_lab.breaker.Breaker` now in force.

        ``breaker`` is a whole ``Breaker``, or a dict of some of its fields (seconds for times,
        as in the scenario) merged into the current one: ``{"consecutive_failures": 3}``.

        The breaker keeps its state (closed, open, half-open) and its run of trips; what it
        measured under the old parameters is dropped: the consecutive-failure run, the window
        and the half-open probes restart, and calls already admitted are not counted. An open
        breaker's current period is re-measured from its trip with the new ``open_for``.

        Raises KeyError for an unknown dependency, ValueError for a dependency without a breaker
        (one cannot be added at run time) or for an invalid value, naming the dotted path as the
        scenario does (``payment.breaker.open_for must be ...``), and TypeError for another type.
        Nothing changes when it raises.
        """
        if dependency not in self._breakers:
            names = ", ".join(self._breakers)
            raise KeyError(f"no dependency named {dependency!r} (have: {names})")
        current = self._breakers[dependency]
        if current is None:
            raise ValueError(
                f"{dependency}.breaker is None in the scenario: a breaker cannot be added while "
                "the lab runs, only changed"
            )
        if isinstance(breaker, Breaker):
            fields = breaker.to_dict()
        elif isinstance(breaker, Mapping):
            fields = {**current.to_dict(), **breaker}
        else:
            raise TypeError(f"breaker must be a Breaker or a dict, got {type(breaker).__name__}")
        d = self.scenario.to_dict()
        service, _, name = dependency.rpartition(".")
        tier = d if not service else next(s for s in d["services"] if s["name"] == service)
        next(dep for dep in tier["dependencies"] if dep["name"] == name)["breaker"] = fields
        # The scenario's converter checks every field under its dotted path before anything
        # changes; the Breaker built after it can no longer fail.
        compiled = _core.compile_scenario(d)
        new = Breaker(**fields)
        with self._breaker_lock:  # concurrent changes: the last one applied is the one recorded
            self._engine.set_breaker(dependency, compiled)
            self._breakers[dependency] = new
        _log_event(
            "breaker_changed",
            dependency=dependency,
            consecutive_failures=new.consecutive_failures,
            open_for=new.open_for,
        )
        return new

    def breaker(self, dependency: str) -> Breaker | None:
        """The breaker parameters ``dependency`` runs with now (the scenario's, or the last ones
        :meth:`set_breaker` gave it); None without a breaker. KeyError for an unknown
        dependency."""
        if dependency not in self._breakers:
            names = ", ".join(self._breakers)
            raise KeyError(f"no dependency named {dependency!r} (have: {names})")
        return self._breakers[dependency]

    def dashboard(
        self, *, open: bool = False, host: str = "127.0.0.1", port: int = 0, interval: float = 0.5
    ) -> Any:
        """Serves the control room of this lab (the page of ``reliability-lab serve``'s
        ``/dashboard``: live charts, breaker bands, event log, fault controls) from a background
        thread on ``host:port`` (loopback and a free port by default), until the lab shuts down.

        Returns a ``LabDashboard``: ``.url`` (with the controls' random admin token in its
        fragment), ``.token``, ``.stop()``. In a notebook it displays the page in an IFrame; with
        ``open=True`` a browser opens it. Needs the ``service`` extra (FastAPI, uvicorn).

        ``interval``: seconds between samples, in [0.05, 60].
        """
        from reliability_lab.service.dashboard import LabDashboard

        if self._report is not None:
            raise LabClosedError("the lab was shut down; create a new Lab to run again")
        board = LabDashboard(self, host, port, interval)
        self._dashboards.append(board)
        _log_event("dashboard_serving", url=board.url.split("#")[0])
        if open:
            import webbrowser

            webbrowser.open(board.url)
        return board

    def internals(self) -> dict[str, Any]:
        """A snapshot of the engine's insides, for a debug endpoint: ``running``,
        ``queue_depth``, ``queue_capacity``, ``workers``, ``busy_workers``, ``in_flight``,
        ``arrived``, ``dependencies`` (name -> ``breaker_state`` (None without a breaker),
        ``in_flight_calls``, ``faults_version``), ``ledger`` (``path``, ``entries``,
        ``double_charged``, ``write_errors``, ``tracked``), ``order_events_pending``, and
        ``memory``: ``order_slots`` (allocated in the order table, whole chunks of 1024),
        ``retained_orders`` (addressable by id), ``recorded_orders`` (records of released
        orders kept for the result), ``idempotency_keys_held`` (by orders not yet ended) and
        ``ledger_tracked`` (pairs the ledger remembers). Each stays bounded by the orders in
        flight plus the configured history sizes."""
        return self._engine.internals()

    # --- results and metrics ---------------------------------------------------------------

    @property
    def result(self) -> Result:
        """The run's :class:`~reliability_lab.sim.Result` (available after shutdown)."""
        if self._report is None:
            raise RuntimeError("the result is available after shutdown()")
        if self._result is None:
            raw = self._engine.result(
                list(LATENCY_BOUNDS), with_orders=bool(self.scenario.record_orders)
            )
            first_id = int(raw.pop("orders_first_id"))
            result = _build_result(self.scenario, raw)
            if result.orders is not None:
                # The most recent max_order_records orders: the index says which ones.
                result.orders.index = pd.RangeIndex(
                    first_id, first_id + len(result.orders), name="order"
                )
            self._result = result
        return self._result

    @property
    def collector(self) -> Collector:
        """The prometheus_client collector over the native registry (register it anywhere)."""
        return self._collector

    def metrics(self) -> list[Metric]:
        """The current metric families."""
        return list(self._collector.collect())

    def metrics_text(self) -> str:
        """The current metrics in Prometheus text exposition format."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._collector)
        return generate_latest(registry).decode()

    def serve_metrics(self, port: int, addr: str = "127.0.0.1") -> tuple[Any, threading.Thread]:
        """Serves ``/metrics`` over HTTP on ``addr:port`` (port 0 picks a free port; read it from
        ``server.server_port``) from a daemon thread. Returns ``(server, thread)``; call
        ``server.shutdown()`` to stop it. Binds to localhost unless told otherwise."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._collector)
        server, thread = start_http_server(port, addr=addr, registry=registry)
        _log_event("metrics_serving", addr=addr, port=server.server_port)
        return server, thread

    # --- logging ---------------------------------------------------------------------------

    def _log_loop(self) -> None:
        while not self._stop_logging.wait(self._log_interval):
            self._poll_logs()

    def _poll_logs(self) -> None:
        # No native lock is held here: take_transitions and metrics copy out and return.
        for t, dep, frm, to in self._engine.take_transitions():
            _log_event("breaker_transition", t=t, dependency=dep, **{"from": frm, "to": to})
            if self._on_transition is not None:
                try:
                    self._on_transition(t, dep, frm, to)
                except Exception:  # a listener's bug must not stop the logging
                    _log.exception("on_transition raised")
        for fam in self._engine.metrics():
            if fam["name"] != "rlab_retry_attempts":
                continue
            for (dep, result), value, _, _, _ in fam["series"]:
                if result in ("exhausted", "budget_exhausted", "deadline"):
                    before = self._given_up.get((dep, result), 0.0)
                    if value > before:
                        self._given_up[(dep, result)] = value
                        _log_event(
                            "retries_given_up",
                            dependency=dep,
                            result=result,
                            count=int(value - before),
                            total=int(value),
                        )

    def __repr__(self) -> str:
        state = "running" if self.running else ("shut down" if self._report else "not started")
        return f"Lab({state}, arrived={self.arrived}, in_flight={self.in_flight})"


__all__ = [
    "TERMINAL_STATES",
    "Lab",
    "LabClosedError",
    "LiveCollector",
    "OrderHandle",
    "OrderHandles",
    "OrderView",
    "ShutdownReport",
]
