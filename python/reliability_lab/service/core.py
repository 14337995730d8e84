"""The order service behind the HTTP API: the live engine, the store, and the writer between them.

The request path does as little as possible: it submits the order to the live engine (a native
try-push: a full queue answers at once), queues the new row for the writer and waits for the
commit. One writer thread owns every write: each turn it takes the engine's order events and the
queued rows and writes them as one transaction (group commit), then wakes the requests whose
rows it committed. A POST is answered 202 only once its order is durable, so a crash can never
lose an order a client was told about.

Crash recovery: on start, orders the store holds as pending, queued or processing are submitted
again with their original charge key. Charges carry that key, and the payment provider's ledger
(a file that survives the crash) applies a key once, so re-driving an order never charges it
twice.
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
from reliability_lab.service.config import ServiceConfig
from reliability_lab.service.store import (
    TERMINAL,
    NewOrder,
    Store,
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
    """The engine's job queue is full: the order was not accepted."""


class NotAccepting(Exception):
    """The service is shutting down or not started: no new orders."""


@dataclass
class _PendingInsert:
    order: NewOrder
    future: asyncio.Future[None] | None
    loop: asyncio.AbstractEventLoop | None


@dataclass
class _Hooks:
    """Which optional live-engine hooks this build of the engine has."""

    idempotency_key: bool
    ledger_path: bool
    order_events: bool
    set_faults: bool
    internals: bool


def _detect_hooks() -> _Hooks:
    submit = inspect.signature(Lab.submit).parameters
    init = inspect.signature(Lab.__init__).parameters
    return _Hooks(
        idempotency_key="idempotency_key" in submit,
        ledger_path="ledger_path" in init,
        order_events="order_events" in init and hasattr(Lab, "take_order_events"),
        set_faults=hasattr(Lab, "set_faults"),
        internals=hasattr(Lab, "internals"),
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
    recovered: int = 0
    idempotent_replays: int = 0
    last_batch_s: float = 0.0
    batch_seconds_total: float = 0.0


class OrderService:
    """The live engine plus durable order storage.

    Use :meth:`start` then :meth:`submit` from the event loop; :meth:`drain` on shutdown.
    """

    def __init__(self, config: ServiceConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store if store is not None else Store(config.database)
        self.scenario = config.effective_scenario
        self.hooks = _detect_hooks()
        self.stats = ServiceStats()
        self.lab: Lab | None = None
        self._lab_started_wall = 0.0
        # Guards the engine-id map, the insert queue and submission, so that the writer never
        # sees an engine event for an order whose row it has not been handed yet.
        self._lock = threading.Lock()
        self._active: dict[int, _Active] = {}  # engine id -> order
        self._inserts: list[_PendingInsert] = []
        self._extra: list[Transition] = []
        self._recovered_ids: list[int] = []
        self._wake = threading.Event()
        self._stop_writer = threading.Event()
        self._writer: threading.Thread | None = None
        self._recovery: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._next_id = 1
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
        self._next_id = self.store.max_order_id() + 1
        active = self.store.active_orders()
        kwargs: dict[str, Any] = {}
        if self.hooks.ledger_path:
            ledger = self.config.effective_ledger_path
            ledger.parent.mkdir(parents=True, exist_ok=True)
            kwargs["ledger_path"] = str(ledger)
        if self.hooks.order_events:
            kwargs["order_events"] = True
        self.lab = Lab(self.scenario, shutdown_timeout=self.config.shutdown_budget, **kwargs)
        self.lab.start()
        self._lab_started_wall = time.time() - self.lab.now()
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
            database=self.store.dialect.name,
            next_id=self._next_id,
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

    def _recover(self, active: list[tuple[int, str]]) -> None:
        """Drives every order a previous run left unfinished again, with its original charge
        key. A full queue is waited out rather than rejecting: these orders were accepted."""
        lab = self.lab
        assert lab is not None
        for order_id, charge_key in active:
            while not self.draining:
                with self._lock:
                    try:
                        handle = self._engine_submit(lab, charge_key)
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

    def _engine_submit(self, lab: Lab, charge_key: str) -> OrderHandle:
        if self.hooks.idempotency_key:
            return lab.submit(idempotency_key=charge_key)  # type: ignore[call-arg,unused-ignore]
        return lab.submit()

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

    # --- orders ----------------------------------------------------------------------------

    def submit(
        self,
        *,
        customer_id: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str | None,
        request_hash: str,
    ) -> tuple[int, asyncio.Future[None]]:
        """Submits an order to the engine and queues its row; returns ``(order id, future)``,
        the future completing once the row is committed. Called on the event loop.

        Raises QueueFull (nothing stored, nothing charged) or NotAccepting.
        """
        lab = self.lab
        if lab is None or not self.accepting:
            raise NotAccepting("the service is not accepting orders")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        charge_key = charge_key_for(idempotency_key)
        with self._lock:
            try:
                handle = self._engine_submit(lab, charge_key)
            except LabClosedError:
                raise NotAccepting("the engine is shutting down") from None
            status = handle.status
            if status == "rejected":
                raise QueueFull(handle.reason or "queue_full")
            order_id = self._next_id
            self._next_id += 1
            order = NewOrder(
                id=order_id,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                charge_key=charge_key,
                customer_id=customer_id,
                amount_cents=amount_cents,
                currency=currency,
                # Accepted means queued; later states arrive as transitions from the engine.
                status="queued",
                created_at=time.time(),
            )
            self._inserts.append(_PendingInsert(order, fut, loop))
            self._active[handle.id] = _Active(order_id, handle, order.status)
            if not self.hooks.order_events:
                # Without the engine's event stream the first status is recorded here; with
                # it, the engine reports "queued" itself.
                self._extra.append(Transition(order_id, order.status, "", order.created_at))
        self._wake.set()
        return order_id, fut

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
            for eid, status, reason, t_s, attempts, charges in events:
                act = self._active.get(int(eid))
                if act is None:
                    continue  # a rejected submission, never stored
                out.append(
                    Transition(
                        act.order_id,
                        str(status),
                        str(reason),
                        base + float(t_s),
                        int(attempts),
                        int(charges),
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
                    )
                )
                done.append(eid)
            else:
                out.append(Transition(act.order_id, status, "", now))
        for eid in done:
            del self._active[eid]
        return out

    def _writer_loop(self) -> None:
        backoff = 0.05
        while True:
            self._wake.wait(0.02)
            self._wake.clear()
            stopping = self._stop_writer.is_set()
            with self._lock:
                transitions = self._take_events()
                # Taken after the events: every event above belongs to an order whose insert
                # was queued before it, so it is in this batch or an earlier one.
                inserts, self._inserts = self._inserts, []
                extra, self._extra = self._extra, []
                recovered, self._recovered_ids = self._recovered_ids, []
            if not (inserts or transitions or extra or recovered):
                if stopping:
                    return
                continue
            t0 = time.perf_counter()
            while True:
                try:
                    self.store.write_batch(
                        [p.order for p in inserts], extra + transitions, recovered
                    )
                    break
                except StoreError as e:
                    self.stats.store_errors += 1
                    log_event(
                        "store_write_failed",
                        logging.ERROR,
                        error=str(e),
                        rows=len(inserts),
                        transitions=len(transitions),
                    )
                    if self._stop_writer.is_set() and self.stats.store_errors > 50:
                        self._fail(inserts, e)
                        return
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                    # The connection may be dead (a restarted server): the batch is retried
                    # whole on a fresh one; nothing of a failed batch was committed.
                    with contextlib.suppress(StoreError):
                        self.store.reconnect_writer()
            backoff = 0.05
            self.stats.batches += 1
            self.stats.rows_written += len(inserts)
            self.stats.transitions_written += len(transitions) + len(extra)
            self.stats.last_batch_s = time.perf_counter() - t0
            self.stats.batch_seconds_total += self.stats.last_batch_s
            self._resolve(inserts, None)
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
                        )

    @staticmethod
    def _resolve(inserts: list[_PendingInsert], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for p in inserts:
            if p.future is not None and p.loop is not None:
                by_loop.setdefault(p.loop, []).append(p.future)
        for loop, futs in by_loop.items():
            # A closed loop raises RuntimeError: nobody waits for these any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, futs, error)

    def _fail(self, inserts: list[_PendingInsert], error: BaseException) -> None:
        self._resolve(inserts, error)

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
                "next_order_id": self._next_id,
                "writer_alive": self.writer_alive(),
                "database": self.store.dialect.name,
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


def _settle(futs: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for f in futs:
        if not f.done():
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error)


__all__ = [
    "NotAccepting",
    "OrderService",
    "QueueFull",
    "ServiceStats",
    "charge_key_for",
    "log_event",
]
