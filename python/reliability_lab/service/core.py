"""The order service behind the HTTP API: the live engine, the store, and the writer between them.

An order is durable before any dependency sees it. The request path queues the new row for the
writer and waits; one writer thread owns every write: each turn it takes the engine's order
events and the queued rows and writes them as one transaction (group commit). Only once a row
is committed does the writer hand the order to the engine (a native try-push) and wake the
request, which answers 202. A row whose request gave up waiting (the store was slow or down and
the request answered 503) is never handed to the engine: it is recorded as cancelled and its
Idempotency-Key released, so a 503 means nothing happened. The database assigns ids and
enforces Idempotency-Keys, so several servers on one database behave as one service.

Crash recovery: on start, orders the store holds as pending, queued or processing are submitted
again with their original charge key, criticality class and tenant. Charges carry that key, and
the payment provider's ledger (a file that survives the crash) applies a key once, so re-driving
an order never charges it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from reliability_lab.live import Lab, LabClosedError, OrderHandle, ShutdownReport
from reliability_lab.scenario.shedding import CRITICALITIES
from reliability_lab.service.config import ServiceConfig
from reliability_lab.service.store import (
    TERMINAL,
    ActiveOrder,
    Batch,
    Inserted,
    NewOrder,
    Store,
    StoreConstraintError,
    StoreError,
    Transition,
)

_log = logging.getLogger("reliability_lab.service")


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Logs one JSON line on the ``reliability_lab.service`` logger."""
    if _log.isEnabledFor(level):
        _log.log(level, json.dumps({"event": event, **fields}, sort_keys=True, default=str))


def charge_key_for(idempotency_key: str | None) -> str:
    """The key the order's charges carry. Derived from the client's Idempotency-Key when there
    is one, so that a client retrying after a lost response reuses it even if the first order
    was never stored; random otherwise. Hex only: safe in the ledger's line format."""
    if idempotency_key is None:
        return uuid.uuid4().hex
    return hashlib.sha256(b"idem:" + idempotency_key.encode()).hexdigest()[:32]


class QueueFull(Exception):
    """The engine refused the order at its intake (its reason is the message: ``queue_full``,
    ``shed``, ...): the order was not accepted."""

    @property
    def reason(self) -> str:
        """The engine's reason for the refusal."""
        return str(self.args[0]) if self.args else "queue_full"


class NotAccepting(Exception):
    """The service is shutting down or not started: no new orders."""


@dataclass(frozen=True)
class Accepted:
    """A POST's outcome: the order (new, or the one already holding its Idempotency-Key)."""

    order_id: int
    replayed: bool
    request_hash: str


@dataclass(eq=False)
class PendingInsert:
    """A POST waiting for its row: ``future`` completes with an :class:`Accepted` once the row
    is committed and the engine has the order, or fails with QueueFull, NotAccepting or
    StoreError. ``state`` (guarded by the service's lock): ``waiting`` (queued for the writer),
    ``writing``, ``voiding`` (stored, refused by the engine; the refusal is being written),
    ``done``, ``failed``, or ``abandoned`` (the request stopped waiting)."""

    order: NewOrder
    future: asyncio.Future[Accepted]
    loop: asyncio.AbstractEventLoop
    state: str = "waiting"
    result: Accepted | None = None


@dataclass
class _Hooks:
    """Which optional live-engine hooks this build of the engine has."""

    idempotency_key: bool
    ledger_path: bool
    order_events: bool
    set_faults: bool
    internals: bool
    origin: bool  # submit() takes criticality= and tenant= (intake.shedding)


def _detect_hooks() -> _Hooks:
    submit = inspect.signature(Lab.submit).parameters
    init = inspect.signature(Lab.__init__).parameters
    return _Hooks(
        idempotency_key="idempotency_key" in submit,
        ledger_path="ledger_path" in init,
        order_events="order_events" in init and hasattr(Lab, "take_order_events"),
        set_faults=hasattr(Lab, "set_faults"),
        internals=hasattr(Lab, "internals"),
        origin="criticality" in submit and "tenant" in submit,
    )


@dataclass
class _Active:
    """An order the engine is working on."""

    order_id: int
    handle: OrderHandle
    last_status: str = ""


@dataclass
class ServiceStats:
    """Counters the service keeps about itself (exported on /metrics)."""

    batches: int = 0
    rows_written: int = 0
    transitions_written: int = 0
    store_errors: int = 0
    constraint_errors: int = 0
    recovered: int = 0
    idempotent_replays: int = 0
    voided: int = 0
    last_batch_s: float = 0.0
    batch_seconds_total: float = 0.0


class OrderService:
    """The live engine plus durable order storage.

    Use :meth:`start` then :meth:`submit` from the event loop; :meth:`drain` on shutdown.
    """

    def __init__(self, config: ServiceConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = (
            store
            if store is not None
            else Store(
                config.database,
                statement_timeout=config.db_statement_timeout,
                connect_timeout=config.db_connect_timeout,
            )
        )
        self.scenario = config.effective_scenario
        self.hooks = _detect_hooks()
        self.stats = ServiceStats()
        self.lab: Lab | None = None
        self._lab_started_wall = 0.0
        self._capacity = self.scenario.workers + self.scenario.queue_capacity
        # Guards the engine-id map, the write queues and submission, so that the writer never
        # sees an engine event for an order whose row it has not written.
        self._lock = threading.Lock()
        self._active: dict[int, _Active] = {}  # engine id -> order
        self._inserts: list[PendingInsert] = []
        self._extra: list[Transition] = []
        self._recovered_ids: list[int] = []
        self._release: list[int] = []  # orders whose Idempotency-Key is to be released
        self._after_commit: list[tuple[PendingInsert, BaseException]] = []
        self._deliveries: list[_Delivery] | None = None  # collected by _hand_over
        self._wake = threading.Event()
        self._stop_writer = threading.Event()
        self._stop_at = 0.0
        self._writer: threading.Thread | None = None
        self._recovery: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        # Watchdog clocks (time.monotonic()): the writer's last turn, the engine's last progress.
        self._writer_beat = time.monotonic()
        self._progress_at = time.monotonic()
        #: Since when writes fail (monotonic seconds), or None while they succeed.
        self.write_failing_since: float | None = None
        self.started = False
        self.recovery_done = False
        self.draining = False
        self.drained = False
        self.shutdown_report: ShutdownReport | None = None
        self._drain_lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Opens the store (migrating it), starts the engine, the writer, and the recovery of
        orders a previous run left unfinished."""
        self.store.open()
        active = self.store.orders_to_recover()
        kwargs: dict[str, Any] = {}
        if self.hooks.ledger_path:
            ledger = self.config.effective_ledger_path
            ledger.parent.mkdir(parents=True, exist_ok=True)
            kwargs["ledger_path"] = str(ledger)
        if self.hooks.order_events:
            kwargs["order_events"] = True
        # Memory proportional to orders in flight whatever the run's length: the service holds
        # the handles it needs and the database is the record, so no ended order is kept
        # addressable by id and no per-order result row is kept (a user's scenario may ask for
        # them).
        kwargs["retain_orders"] = 0
        kwargs["max_order_records"] = 0
        self.lab = Lab(self.scenario, shutdown_timeout=self.config.shutdown_budget, **kwargs)
        self.lab.start()
        self._lab_started_wall = time.time() - self.lab.now()
        self._writer_beat = self._progress_at = time.monotonic()
        self._writer = threading.Thread(target=self._writer_loop, name="rlab-writer", daemon=True)
        self._writer.start()
        if self.store.sqlite_path is not None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="rlab-checkpoint", daemon=True
            )
            self._checkpointer.start()
        self.started = True
        log_event(
            "service_started",
            database=self.store.kind,
            to_recover=len(active),
            hooks=self.hooks.__dict__,
            ledger=str(self.config.effective_ledger_path) if self.hooks.ledger_path else None,
        )
        if active:
            self._recovery = threading.Thread(
                target=self._recover, args=(active,), name="rlab-recovery", daemon=True
            )
            self._recovery.start()
        else:
            self.recovery_done = True

    def _checkpoint_loop(self) -> None:
        # Keeps the SQLite WAL short, off the writer's commit path (see Store.checkpoint).
        while not self._stop_writer.wait(1.0):
            try:
                self.store.checkpoint()
            except Exception as e:  # the next round retries; a failing store shows in /readyz
                log_event("checkpoint_failed", logging.WARNING, error=str(e))

    def _recover(self, active: list[ActiveOrder]) -> None:
        """Drives every order a previous run left unfinished again, with its original charge
        key, class and tenant. A full queue (or the shedder) is waited out rather than
        rejecting: these orders were accepted."""
        lab = self.lab
        assert lab is not None
        for order in active:
            order_id, charge_key = order.id, order.charge_key
            criticality, tenant = self._recovery_origin(order)
            while not self.draining:
                with self._lock:
                    try:
                        handle = self._engine_submit(lab, charge_key, criticality, tenant)
                    except LabClosedError:
                        break
                    if handle.status != "rejected":
                        self._extra.append(Transition(order_id, "queued", "recovered", time.time()))
                        self._recovered_ids.append(order_id)
                        self._active[handle.id] = _Active(order_id, handle, "queued")
                        self.stats.recovered += 1
                        break
                time.sleep(0.02)  # the queue is full: let the workers make room
            if self.draining:
                break
        self._wake.set()
        self.recovery_done = True
        log_event("recovery_done", recovered=self.stats.recovered, found=len(active))

    def _recovery_origin(self, order: ActiveOrder) -> tuple[str, str | None]:
        """The class and tenant to re-drive ``order`` with: its own, unless the scenario this
        run serves no longer declares them (restarted with another scenario); then the
        defaults, logged, rather than an order stuck forever."""
        criticality, tenant = order.criticality, order.tenant
        if criticality not in CRITICALITIES:
            log_event(
                "recovery_origin_changed",
                logging.WARNING,
                order_id=order.id,
                field="criticality",
                value=criticality,
            )
            criticality = "default"
        if tenant is not None and tenant not in self.tenant_names():
            log_event(
                "recovery_origin_changed",
                logging.WARNING,
                order_id=order.id,
                field="tenant",
                value=tenant,
            )
            tenant = None
        return criticality, tenant

    def tenant_names(self) -> tuple[str, ...]:
        """The tenants an order may name: those of the scenario's ``intake.shedding``."""
        shedding = self.scenario.intake.shedding
        return tuple(t.name for t in shedding.tenants) if shedding is not None else ()

    def _engine_submit(
        self, lab: Lab, charge_key: str, criticality: str = "default", tenant: str | None = None
    ) -> OrderHandle:
        if not self._active:
            self._progress_at = time.monotonic()  # the watchdog measures from the first order
        origin: dict[str, Any] = {}
        if self.hooks.origin:
            origin = {"criticality": criticality, "tenant": tenant}
        if self.hooks.idempotency_key:
            return lab.submit(idempotency_key=charge_key, **origin)  # type: ignore[call-arg,unused-ignore]
        return lab.submit(**origin)

    @property
    def accepting(self) -> bool:
        """Whether new orders are taken."""
        return self.started and not self.draining and self.lab is not None and self.lab.running

    @property
    def active_count(self) -> int:
        """Orders the engine is working on."""
        return len(self._active)

    def writer_alive(self) -> bool:
        """Whether the writer thread is running."""
        return self._writer is not None and self._writer.is_alive()

    def liveness(self) -> dict[str, bool]:
        """The watchdog: whether the writer still takes turns and the engine's workers still
        make progress (or wait on a dependency call), each within ``config.watchdog_timeout``
        seconds. Every database call is bounded, so a slow or dead database cannot fail these;
        neither can a hanging dependency: only a stuck thread can."""
        limit = self.config.watchdog_timeout
        now = time.monotonic()
        writer_ok = True
        if self.started and not self.draining:  # (a drain stops the writer on purpose)
            writer_ok = self.writer_alive() and now - self._writer_beat <= limit
        workers_ok = True
        lab = self.lab
        if lab is not None and lab.running and self._active and now - self._progress_at > limit:
            # No order moved for that long. Workers waiting on a dependency call (a hang fault,
            # a slow provider) are the dependency's business, not a stuck pool.
            calls = 0
            if self.hooks.internals:
                deps = lab.internals().get("dependencies", {})  # type: ignore[attr-defined,unused-ignore]
                calls = sum(int(d.get("in_flight_calls", 0)) for d in deps.values())
            workers_ok = calls > 0
        return {"writer": writer_ok, "workers": workers_ok}

    # --- orders ----------------------------------------------------------------------------

    def submit(
        self,
        *,
        customer_id: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str | None,
        request_hash: str,
        criticality: str = "default",
        tenant: str | None = None,
    ) -> PendingInsert:
        """Queues a new order's row for the writer; returns the :class:`PendingInsert` whose
        future completes once the row is committed and the engine has the order (or the key
        named an existing order). Called on the event loop. If the caller stops waiting, it
        must call :meth:`abandon`.

        ``criticality`` and ``tenant`` (checked by the caller: a class name, and None or one of
        :meth:`tenant_names`) are stored with the order and given to the engine, whose shedder
        may refuse it (QueueFull with reason ``shed``, after the row was written: it is then
        recorded as rejected and its Idempotency-Key released).

        Raises QueueFull (the engine is full: nothing stored) or NotAccepting.
        """
        lab = self.lab
        if lab is None or not self.accepting:
            raise NotAccepting("the service is not accepting orders")
        if lab.in_flight >= self._capacity:
            # Surely refused by the engine: answer before spending a write on it.
            raise QueueFull("queue_full")
        loop = asyncio.get_running_loop()
        order = NewOrder(
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            charge_key=charge_key_for(idempotency_key),
            customer_id=customer_id,
            amount_cents=amount_cents,
            currency=currency,
            created_at=time.time(),
            criticality=criticality,
            tenant=tenant,
        )
        pending = PendingInsert(order, loop.create_future(), loop)
        with self._lock:
            self._inserts.append(pending)
        self._wake.set()
        return pending

    def abandon(self, pending: PendingInsert) -> Accepted | None:
        """The request stops waiting for ``pending`` (it answers 503). Returns the outcome if
        the order already reached the engine (then the answer must be 202 after all), else
        None: the order will never reach the engine (a row already written is recorded as
        cancelled, its Idempotency-Key released)."""
        with self._lock:
            if pending.state == "done":
                return pending.result
            if pending.state in ("waiting", "writing", "voiding"):
                pending.state = "abandoned"  # the writer skips or voids it
            return None

    # --- the writer ------------------------------------------------------------------------

    def _take_events(self) -> list[Transition]:
        """The engine's status changes since the last call, as transitions of our orders.
        Called with ``self._lock`` held."""
        out: list[Transition] = []
        lab = self.lab
        if lab is None:
            return out
        base = self._lab_started_wall
        if self.hooks.order_events:
            events = lab.take_order_events()  # type: ignore[attr-defined,unused-ignore]
            for eid, status, reason, t_s, attempts, charges, degraded in events:
                act = self._active.get(int(eid))
                if act is None:
                    continue  # a rejected submission, never stored
                if status != "queued":
                    self._progress_at = time.monotonic()
                out.append(
                    Transition(
                        act.order_id,
                        str(status),
                        str(reason),
                        base + float(t_s),
                        int(attempts),
                        int(charges),
                        bool(degraded),
                    )
                )
                if status in TERMINAL:
                    del self._active[int(eid)]
            return out
        # No event hook in this engine build: poll the status of every active order.
        now = time.time()
        done: list[int] = []
        for eid, act in self._active.items():
            status = act.handle.status
            if status == act.last_status:
                continue
            act.last_status = status
            if status != "queued":
                self._progress_at = time.monotonic()
            if status in TERMINAL:
                v = act.handle.view()
                out.append(
                    Transition(
                        act.order_id,
                        status,
                        v.reason,
                        base + v.end if v.end == v.end else now,
                        v.attempts,
                        v.charges,
                        bool(v.degraded),
                    )
                )
                done.append(eid)
            else:
                out.append(Transition(act.order_id, status, "", now))
        for eid in done:
            del self._active[eid]
        return out

    def _writer_loop(self) -> None:
        while True:
            self._writer_beat = time.monotonic()
            self._wake.wait(0.02)
            self._wake.clear()
            stopping = self._stop_writer.is_set()
            with self._lock:
                transitions = self._take_events()
                # Taken after the events: every event above belongs to an order whose row was
                # committed before it reached the engine.
                inserts = [p for p in self._inserts if p.state == "waiting"]
                for p in inserts:
                    p.state = "writing"
                self._inserts = []
                extra, self._extra = self._extra, []
                recovered, self._recovered_ids = self._recovered_ids, []
                release, self._release = self._release, []
                after, self._after_commit = self._after_commit, []
            if not (inserts or transitions or extra or recovered or release or after):
                if stopping:
                    return
                continue
            batch = Batch([p.order for p in inserts], extra + transitions, recovered, release)
            t0 = time.perf_counter()
            results = self._write(batch, inserts)
            if results is None:  # stopping, and the store never came back
                return
            self.stats.batches += 1
            self.stats.rows_written += sum(1 for r in results if r.created)
            self.stats.transitions_written += len(batch.transitions)
            self.stats.last_batch_s = time.perf_counter() - t0
            self.stats.batch_seconds_total += self.stats.last_batch_s
            self._hand_over(inserts, results)
            # Refusals written in this batch: their requests may answer now.
            for p, error in after:
                self._deliver(p, "failed", None, error)
            if self.config.access_log and _log.isEnabledFor(logging.INFO):
                for t in transitions:
                    if t.status in TERMINAL:
                        log_event(
                            "order_finished",
                            order_id=t.order_id,
                            status=t.status,
                            reason=t.reason,
                            attempts=t.attempts,
                            charges=t.charges,
                            degraded=t.degraded,
                        )

    def _write(self, batch: Batch, inserts: list[PendingInsert]) -> list[Inserted] | None:
        """Writes ``batch``, retrying while the store fails (a batch that breaks a constraint
        fails its new orders and is written without them). None: stopping, and the store did
        not come back in time."""
        backoff = 0.05
        while True:
            self._writer_beat = time.monotonic()
            try:
                results = self.store.write(batch)
                self.write_failing_since = None
                return results
            except StoreConstraintError as e:
                # Deterministic: the same batch would fail forever. Its new orders never
                # reached the engine: they fail (503, nothing happened); the rest is retried.
                self.stats.constraint_errors += 1
                log_event(
                    "store_constraint_error",
                    logging.ERROR,
                    error=str(e),
                    rows=len(batch.orders),
                    transitions=len(batch.transitions),
                )
                if batch.orders:
                    for p in inserts:
                        self._deliver(p, "failed", None, StoreError("the order was refused"))
                    inserts.clear()
                    batch = Batch((), batch.transitions, batch.recovered, batch.release_keys)
                    continue
                return []  # transitions the schema refuses: logged above, dropped
            except StoreError as e:
                self.stats.store_errors += 1
                if self.write_failing_since is None:
                    self.write_failing_since = time.monotonic()
                log_event(
                    "store_write_failed",
                    logging.ERROR,
                    error=str(e),
                    rows=len(batch.orders),
                    transitions=len(batch.transitions),
                )
                if self._stop_writer.is_set() and time.monotonic() > self._stop_at:
                    for p in inserts:
                        self._deliver(p, "failed", None, e)
                    log_event("writer_gave_up", logging.ERROR, transitions=len(batch.transitions))
                    return None
                time.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                # The connection may be dead (a restarted server): the batch is retried on a
                # fresh one (Store.write finds out whether a cut-short attempt committed).
                with contextlib.suppress(StoreError):
                    self.store.reconnect_writer()

    def _hand_over(self, inserts: list[PendingInsert], results: list[Inserted]) -> None:
        """After the commit: hands each new order to the engine, unless its request gave up
        (then, and when the engine refuses it, the order is recorded as cancelled or rejected
        and its Idempotency-Key released, in the next batch)."""
        if not inserts:
            return
        lab = self.lab
        now = time.time()
        self._deliveries = []
        with self._lock:
            for p, r in zip(inserts, results, strict=True):
                if not r.created:  # the key names an order already (maybe another server's)
                    self._deliver_locked(p, "done", Accepted(r.id, True, r.request_hash), None)
                    continue
                if p.state == "abandoned":
                    self._void(r.id, "cancelled", "not_stored", now)
                    continue
                try:
                    if lab is None:
                        raise LabClosedError("no engine")
                    handle = self._engine_submit(
                        lab, p.order.charge_key, p.order.criticality, p.order.tenant
                    )
                except LabClosedError:
                    self._void(r.id, "cancelled", "shutdown", now)
                    p.state = "voiding"
                    self._after_commit.append((p, NotAccepting("the engine is shutting down")))
                    continue
                except ValueError as e:
                    # A class or tenant the engine refuses (the request checked both against
                    # the same scenario, so never expected): the order fails, the writer lives.
                    log_event("engine_refused_origin", logging.ERROR, order_id=r.id, error=str(e))
                    self._void(r.id, "rejected", "invalid", now)
                    p.state = "voiding"
                    self._after_commit.append((p, StoreError("the order was refused")))
                    continue
                if handle.status == "rejected":
                    reason = handle.reason or "queue_full"
                    self._void(r.id, "rejected", reason, now)
                    p.state = "voiding"
                    self._after_commit.append((p, QueueFull(reason)))
                    continue
                self._active[handle.id] = _Active(r.id, handle, "queued")
                if not self.hooks.order_events:
                    # Without the engine's event stream the first status is recorded here;
                    # with it, the engine reports "queued" itself.
                    self._extra.append(Transition(r.id, "queued", "", now))
                self._deliver_locked(p, "done", Accepted(r.id, False, r.request_hash), None)
        deliveries, self._deliveries = self._deliveries, None
        _flush(deliveries or [])
        self._wake.set()

    def _void(self, order_id: int, status: str, reason: str, now: float) -> None:
        """Records a stored order that never reached the engine as terminal and frees its
        Idempotency-Key (next batch). Called with ``self._lock`` held."""
        self.stats.voided += 1
        self._extra.append(Transition(order_id, status, reason, now))
        self._release.append(order_id)

    def _deliver(
        self,
        p: PendingInsert,
        state: str,
        result: Accepted | None,
        error: BaseException | None,
    ) -> None:
        with self._lock:
            self._deliver_locked(p, state, result, error)

    def _deliver_locked(
        self, p: PendingInsert, state: str, result: Accepted | None, error: BaseException | None
    ) -> None:
        if p.state == "abandoned":
            return  # nobody waits; the request already answered
        p.state = state
        p.result = result
        item = (p, result, error)
        if self._deliveries is not None:
            self._deliveries.append(item)  # one wake-up of the loop per batch (_hand_over)
        else:
            _flush([item])

    # --- shutdown --------------------------------------------------------------------------

    def begin_drain(self) -> None:
        """Stops intake at once (readiness turns false). Safe to call from a signal handler."""
        self.draining = True

    def drain(self, budget: float | None = None) -> ShutdownReport | None:
        """Stops intake, gives in-flight orders ``budget`` seconds (default: the configured
        shutdown budget), records the rest as cancelled, flushes the writer and closes the
        store. Idempotent."""
        with self._drain_lock:
            if self.drained:
                return self.shutdown_report
            self.draining = True
            budget = self.config.shutdown_budget if budget is None else budget
            log_event("drain_started", budget_s=budget)
            if self._recovery is not None:
                self._recovery.join()
            if self.lab is not None:
                self.shutdown_report = self.lab.shutdown(budget)
            # Orders a recovery never got back into the engine are recorded as cancelled too.
            leftover: list[int] = []
            if self.started:
                try:
                    leftover = [oid for oid, _ in self.store.active_orders()]
                except Exception as e:  # the store is down: the next start re-drives them
                    log_event("drain_store_error", logging.ERROR, error=str(e))
            if self._writer is not None:
                # A store still down gets a few more seconds, then the writer gives up (the
                # next start re-drives what was not recorded).
                self._stop_at = time.monotonic() + max(5.0, self.store.statement_timeout)
                self._stop_writer.set()
                self._wake.set()
                self._writer.join()
            if self._checkpointer is not None:
                self._checkpointer.join()
            if leftover:
                try:
                    still = {o for o, _ in self.store.active_orders()}
                    now = time.time()
                    cancels = [
                        Transition(o, "cancelled", "shutdown", now) for o in leftover if o in still
                    ]
                    if cancels:
                        self.store.write_batch([], cancels)
                except Exception as e:
                    log_event("drain_store_error", logging.ERROR, error=str(e))
            self.store.close()
            self.drained = True
            rep = self.shutdown_report
            log_event(
                "drain_complete",
                finished_in_time=rep.finished_in_time if rep else 0,
                cancelled=rep.cancelled if rep else 0,
                timed_out=rep.timed_out if rep else False,
            )
            return rep

    # --- introspection ---------------------------------------------------------------------

    def internals(self) -> dict[str, Any]:
        """Engine and service internals for the debug endpoint."""
        lab = self.lab
        out: dict[str, Any] = {
            "service": {
                "accepting": self.accepting,
                "draining": self.draining,
                "recovery_done": self.recovery_done,
                "active_orders": len(self._active),
                "pending_inserts": len(self._inserts),
                "writer_alive": self.writer_alive(),
                "write_failing_s": (
                    None
                    if self.write_failing_since is None
                    else time.monotonic() - self.write_failing_since
                ),
                "liveness": self.liveness(),
                "database": self.store.kind,
                "wal_resets": self.store.wal_resets,
                "hooks": self.hooks.__dict__,
                "stats": dict(self.stats.__dict__),
            }
        }
        if lab is not None:
            engine: dict[str, Any] = {
                "running": lab.running,
                "arrived": lab.arrived,
                "in_flight": lab.in_flight,
                "uptime_s": lab.now(),
            }
            if self.hooks.internals:
                engine.update(lab.internals())  # type: ignore[attr-defined,unused-ignore]
            out["engine"] = engine
        return out

    def hash_request(self, payload: dict[str, Any]) -> str:
        """A stable digest of a validated request body (for Idempotency-Key reuse checks)."""
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


_Delivery = tuple[PendingInsert, Accepted | None, BaseException | None]


def _flush(items: list[_Delivery]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_Delivery]] = {}
    for item in items:
        by_loop.setdefault(item[0].loop, []).append(item)
    for loop, batch in by_loop.items():
        # A closed loop raises RuntimeError: nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, batch)


def _settle(items: list[_Delivery]) -> None:
    for p, result, error in items:
        if p.future.done():
            continue
        if error is not None:
            p.future.set_exception(error)
        else:
            p.future.set_result(result)  # type: ignore[arg-type]


__all__ = [
    "Accepted",
    "NotAccepting",
    "OrderService",
    "PendingInsert",
    "QueueFull",
    "ServiceStats",
    "charge_key_for",
    "log_event",
]
