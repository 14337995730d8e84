"""Durable order storage: SQLite (one file, the default), PostgreSQL (psycopg 3), or an
in-memory SQLite database (``--database memory``: nothing survives the process).

Two tables hold the truth: ``orders`` (one row per accepted order, its latest status) and
``order_transitions`` (every status change, append-only). ``schema_version`` records which
migrations ran; :meth:`Store.open` applies the missing ones in a transaction, so an older file or
database is brought up to date on start.

Writes go through :meth:`Store.write_batch`, called by the service's single writer thread: a
batch of new orders and transitions is one transaction (group commit), which keeps the commit
cost off the request path. The database assigns order ids (an identity sequence in PostgreSQL,
the rowid in SQLite) and enforces Idempotency-Keys (a unique column: a new order whose key is
taken is not inserted, the batch answers the existing order instead), so several servers on one
database are one service. Reads use a small pool of separate connections (SQLite in WAL mode
lets readers run beside the writer). Every statement is parameterised; SQL text is never built
from request data.

Every database call is bounded: PostgreSQL connections get a connect timeout, TCP keepalives, a
TCP user timeout and a server-side ``statement_timeout``; and since a frozen server enforces
nothing, a client-side deadline shuts the connection's socket down when a call outlives it.
SQLite waits for locks at most its busy timeout.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlparse

#: Every order status, in lifecycle order. ``pending``: stored, not yet handed to the engine.
STATUSES = (
    "pending",
    "queued",
    "processing",
    "completed",
    "failed",
    "rejected",
    "expired",
    "cancelled",
)
#: Statuses after which an order never changes again.
TERMINAL = frozenset({"completed", "failed", "rejected", "expired", "cancelled"})
#: Statuses of orders that a restart drives again.
ACTIVE = ("pending", "queued", "processing")

#: The ``database`` values that select the in-memory store.
MEMORY_URLS = ("memory", ":memory:", "sqlite:///:memory:")


@dataclass(frozen=True)
class NewOrder:
    """An order to insert (the database assigns its id)."""

    idempotency_key: str | None
    request_hash: str
    charge_key: str
    customer_id: str
    amount_cents: int
    currency: str
    created_at: float
    status: str = "pending"
    #: The order's criticality class (``intake.shedding``): ``critical``, ``default`` or
    #: ``sheddable``.
    criticality: str = "default"
    #: The tenant the client named (one of ``intake.shedding.tenants``), or None: the engine's
    #: default tenant (the first declared).
    tenant: str | None = None


class ActiveOrder(NamedTuple):
    """An order a restart drives again, with what the engine needs to submit it as before."""

    id: int
    charge_key: str
    criticality: str
    tenant: str | None


@dataclass(frozen=True)
class Inserted:
    """What :meth:`Store.write_batch` did with one :class:`NewOrder`.

    Attributes:
        id: the new order's id, or the id of the order that already holds its Idempotency-Key.
        created: whether this batch inserted the row (False: the key was taken).
        request_hash: the request hash of the order stored under that id.
    """

    id: int
    created: bool
    request_hash: str


@dataclass(frozen=True)
class Transition:
    """One status change of an order (``at``: Unix seconds; ``degraded``: it completed on a
    fallback)."""

    order_id: int
    status: str
    reason: str
    at: float
    attempts: int = 0
    charges: int = 0
    degraded: bool = False


@dataclass
class Batch:
    """One transaction of the writer.

    In order: the Idempotency-Keys of the ``release_keys`` order ids are cleared (orders that
    never reached the engine: a retry with the key makes a new order); new orders are inserted
    unless their key is taken (then :class:`Inserted` names the existing order); ``recovered``
    order ids get ``runs`` + 1; transitions are appended and each updates its order's row
    unless the order is already terminal.
    """

    orders: Sequence[NewOrder] = ()
    transitions: Sequence[Transition] = ()
    recovered: Sequence[int] = ()
    release_keys: Sequence[int] = ()
    ids: list[int] | None = None  # PostgreSQL: the ids reserved for ``orders``
    tried: bool = False  # an attempt was made: if it failed, it may still have committed


class _Conn(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


# A constant, not request data: safe to splice into statements.
_TERMINAL_SQL = "('completed', 'failed', 'rejected', 'expired', 'cancelled')"

_ORDER_COLUMNS = (
    "id, idempotency_key, request_hash, charge_key, customer_id, amount_cents, currency, "
    "status, reason, attempts, charges, runs, created_at, updated_at, degraded, criticality, "
    "tenant"
)


@dataclass(frozen=True)
class _Dialect:
    name: str
    migrations: tuple[tuple[int, tuple[str, ...]], ...]
    param: str  # the driver's placeholder; statements are written with "?" and converted once

    def sql(self, text: str) -> str:
        return text if self.param == "?" else text.replace("?", self.param)


def _schema_v1(bigint: str, identity: str, real: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE orders (
            id {bigint} PRIMARY KEY,
            idempotency_key TEXT UNIQUE,
            request_hash TEXT NOT NULL,
            charge_key TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            amount_cents {bigint} NOT NULL,
            currency TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            charges INTEGER NOT NULL DEFAULT 0,
            runs INTEGER NOT NULL DEFAULT 1,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL)""",
        # Serves GET /orders?status=... in id order and the recovery scan of active orders.
        "CREATE INDEX orders_status_id ON orders (status, id)",
        f"""CREATE TABLE order_transitions (
            id {identity},
            order_id {bigint} NOT NULL REFERENCES orders (id),
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            at {real} NOT NULL,
            attempts INTEGER NOT NULL,
            charges INTEGER NOT NULL)""",
        "CREATE INDEX order_transitions_order ON order_transitions (order_id, id)",
    )


# v2: the degraded flag; PostgreSQL order ids come from a sequence (v1 servers computed
# max(id) + 1 at start, which two servers on one database both did). In SQLite an INTEGER
# PRIMARY KEY inserted without a value is already max(rowid) + 1 inside the write lock.
_SQLITE_V2 = ("ALTER TABLE orders ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0",)
_POSTGRES_V2 = (
    "ALTER TABLE orders ADD COLUMN degraded BOOLEAN NOT NULL DEFAULT false",
    "CREATE SEQUENCE orders_id_seq AS BIGINT OWNED BY orders.id",
    "SELECT setval('orders_id_seq', COALESCE((SELECT MAX(id) FROM orders), 0) + 1, false)",
    "ALTER TABLE orders ALTER COLUMN id SET DEFAULT nextval('orders_id_seq')",
)

# v3: each order's criticality class and tenant (intake.shedding), so that a restart re-drives
# it as the same class of the same tenant. Rows of older servers are ``default``, of no tenant:
# what the engine made of them. The same statements in both dialects.
_V3 = (
    "ALTER TABLE orders ADD COLUMN criticality TEXT NOT NULL DEFAULT 'default'",
    "ALTER TABLE orders ADD COLUMN tenant TEXT",
)

SQLITE = _Dialect(
    "sqlite",
    ((1, _schema_v1("INTEGER", "INTEGER PRIMARY KEY", "REAL")), (2, _SQLITE_V2), (3, _V3)),
    "?",
)
POSTGRES = _Dialect(
    "postgresql",
    (
        (
            1,
            _schema_v1(
                "BIGINT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "DOUBLE PRECISION"
            ),
        ),
        (2, _POSTGRES_V2),
        (3, _V3),
    ),
    "%s",
)


class StoreError(RuntimeError):
    """The store could not be opened, read or written (maybe transient: retry)."""


class StoreConstraintError(StoreError):
    """A write broke a constraint of the schema: retrying the same batch fails the same way."""


def parse_database_url(url: str) -> tuple[str, str]:
    """``(dialect, target)``: a SQLite file path, a PostgreSQL conninfo URL, or
    ``("memory", ":memory:")``.

    Accepts ``sqlite:///relative.db``, ``sqlite:////absolute.db``, a bare path,
    ``postgresql://`` / ``postgres://`` URLs, and ``memory`` / ``:memory:`` /
    ``sqlite:///:memory:`` (an in-memory database that lives as long as the process). Anything
    else is a ValueError naming the parameter.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("database must be a SQLite path or URL, memory, or a postgresql:// URL")
    if url in MEMORY_URLS:
        return "memory", ":memory:"
    scheme = urlparse(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql", url
    if scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise ValueError(f"database: a SQLite URL is sqlite:///PATH, got {url!r}")
        return "sqlite", path
    if scheme and len(scheme) > 1:  # one letter would be a Windows drive, not a scheme
        raise ValueError(
            f"database: unsupported scheme {scheme!r}; use a SQLite path, sqlite:///PATH, "
            "memory or postgresql://..."
        )
    return "sqlite", url


class _Deadlines:
    """Client-side deadlines for PostgreSQL calls: one thread shuts down the socket of a
    connection whose call outlives its deadline. A stopped or partitioned server enforces no
    ``statement_timeout`` and its kernel may keep ACKing keepalives; the shutdown makes the
    blocked driver call fail at once (the connection is then broken and replaced)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, Any] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, conn: Any, seconds: float) -> int:
        token = next(self._ids)
        with self._cv:
            self._armed[token] = conn
            when = time.monotonic() + seconds
            earliest = not self._heap or when < self._heap[0][0]
            heapq.heappush(self._heap, (when, token))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rlab-db-deadlines", daemon=True
                )
                self._thread.start()
            if earliest:  # else the thread already wakes up in time (no wake-up per call)
                self._cv.notify()
        return token

    def disarm(self, token: int) -> bool:
        """Whether the call finished before its deadline (False: its socket was shut down)."""
        with self._cv:
            return self._armed.pop(token, None) is not None

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # disarmed in time
                if not self._heap:
                    self._cv.wait()
                    continue
                when, token = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._cv.wait(delay)
                    continue
                heapq.heappop(self._heap)
                # Under the lock: the caller's disarm() waits for this, so the connection
                # cannot be closed (and its descriptor reused by another socket) meanwhile.
                _shutdown_socket(self._armed.pop(token))


def _shutdown_socket(conn: Any) -> None:
    with contextlib.suppress(Exception):
        fd = conn.pgconn.socket
        # A dup of the descriptor: shutdown() acts on the socket, closing the dup does not.
        s = socket.socket(fileno=os.dup(fd))
        try:
            s.shutdown(socket.SHUT_RDWR)
        finally:
            s.close()


_DEADLINES = _Deadlines()
_ID_BLOCK = 64  # PostgreSQL order ids reserved per round trip


def _existing_pg(conn: Any, o: NewOrder) -> Inserted:
    """The order holding ``o``'s Idempotency-Key (its insert was skipped: the key is taken)."""
    row = conn.execute(
        "SELECT id, request_hash FROM orders WHERE idempotency_key = %s", (o.idempotency_key,)
    ).fetchone()
    if row is None:  # taken, then released again before we looked: the client retries
        raise StoreError("an Idempotency-Key changed hands during the write")
    return Inserted(int(row[0]), False, str(row[1]))


class Store:
    """Orders and their transitions in SQLite, PostgreSQL or memory.

    Args:
        url: see :func:`parse_database_url`.
        read_connections: the most read connections open at once, in [1, 64].
        statement_timeout: seconds any one database call may take (server-side
            ``statement_timeout``, client-side deadline, SQLite busy timeout), in (0, 600].
        connect_timeout: seconds a PostgreSQL connection may take to open, in [1, 600]
            (libpq counts whole seconds, at least 2).
        wal_max_bytes: the SQLite write-ahead log is checkpointed, restarted and truncated to
            this size when it grows past it, in [1 MiB, 1 GiB].
    """

    def __init__(
        self,
        url: str,
        *,
        read_connections: int = 4,
        statement_timeout: float = 5.0,
        connect_timeout: float = 3.0,
        wal_max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if (
            isinstance(read_connections, bool)
            or not isinstance(read_connections, int)
            or not (1 <= read_connections <= 64)
        ):
            raise ValueError(
                f"read_connections must be an integer in [1, 64], got {read_connections!r}"
            )
        _check_seconds("statement_timeout", statement_timeout, 0.0, 600.0, open_low=True)
        _check_seconds("connect_timeout", connect_timeout, 1.0, 600.0)
        if (
            isinstance(wal_max_bytes, bool)
            or not isinstance(wal_max_bytes, int)
            or not (1 << 20 <= wal_max_bytes <= 1 << 30)
        ):
            raise ValueError(
                f"wal_max_bytes must be an integer in [1048576, 1073741824], got {wal_max_bytes!r}"
            )
        kind, target = parse_database_url(url)
        self.dialect = POSTGRES if kind == "postgresql" else SQLITE
        self.memory = kind == "memory"
        self.target = target
        self.statement_timeout = float(statement_timeout)
        self.connect_timeout = float(connect_timeout)
        self.wal_max_bytes = wal_max_bytes
        self._max_readers = read_connections
        self._readers: queue.LifoQueue[_Conn] = queue.LifoQueue()
        self._opened_readers = 0
        self._reader_lock = threading.Lock()
        self._reader_sem = threading.BoundedSemaphore(read_connections)
        # The in-memory database is one connection: every call takes this lock.
        self._mem_lock = threading.Lock()
        self._ping_lock = threading.Lock()
        self._ping_conn: _Conn | None = None
        self._writer: _Conn | None = None
        self._id_pool: list[int] = []
        self._checkpoint_lock = threading.Lock()
        self.wal_resets = 0
        self._closed = False

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL and memory."""
        return Path(self.target) if self.dialect is SQLITE and not self.memory else None

    @property
    def kind(self) -> str:
        """``sqlite``, ``postgresql`` or ``memory``."""
        return "memory" if self.memory else self.dialect.name

    # --- connections -----------------------------------------------------------------------

    def _pg_params(self) -> dict[str, Any]:
        """Connection parameters bounding every call; those the URL sets itself win."""
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self.target)
        ms = max(1, int(self.statement_timeout * 1000))
        params: dict[str, Any] = {
            "connect_timeout": max(2, round(self.connect_timeout)),
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            # Unacknowledged data fails the connection after this (a partitioned server).
            "tcp_user_timeout": ms,
            "application_name": "reliability-lab",
        }
        out = {k: v for k, v in params.items() if k not in given}
        options = str(given.get("options", ""))
        extra = f"-c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms * 2}"
        out["options"] = f"{options} {extra}".strip()
        return out

    def _connect(self, *, writer: bool = False) -> _Conn:
        if self.dialect is SQLITE:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is one transaction.
            conn = sqlite3.connect(
                self.target,
                timeout=self.statement_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            if self.memory:
                return conn
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a killed process (it is in the OS page cache
            # and the WAL); only a power loss can roll back the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.statement_timeout * 1000)}")
            if writer:
                # No automatic checkpoints in the commit path: a checkpoint syncs the WAL, and a
                # commit that runs one makes every request waiting on it slow. The service runs
                # passive checkpoints from its own thread, and the writer restarts the log when
                # it grows past wal_max_bytes anyway (see _bound_wal).
                conn.execute("PRAGMA wal_autocheckpoint=0")
                conn.execute(f"PRAGMA journal_size_limit={self.wal_max_bytes}")
            return conn
        import psycopg

        return psycopg.connect(self.target, autocommit=False, **self._pg_params())

    @contextmanager
    def _bounded(self, conn: _Conn) -> Iterator[None]:
        """A PostgreSQL call on ``conn`` that fails once it outlives the statement timeout
        (plus a margin, so that a live server's own timeout speaks first)."""
        if self.dialect is not POSTGRES:
            yield
            return
        token = _DEADLINES.arm(conn, self.statement_timeout + 0.5)
        try:
            yield
        finally:
            if not _DEADLINES.disarm(token):
                raise StoreError("the database did not answer in time")

    def open(self) -> None:
        """Connects the writer and creates or migrates the schema."""
        if self.sqlite_path is not None:
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = self._connect(writer=True)
            with self._bounded(self._writer):
                self._migrate(self._writer)
            if self.dialect is POSTGRES:
                # A batch is one statement (see _write_pg): in autocommit mode the statement is
                # its own transaction, committed in the same round trip.
                self._writer.autocommit = True  # type: ignore[attr-defined]
        except Exception as e:
            raise StoreError(f"cannot open the {self.kind} store: {e}") from e

    def reconnect_writer(self) -> None:
        """Replaces the writer's connection (after a failure: a PostgreSQL server that went
        away and came back leaves the old connection dead). Raises StoreError if it cannot."""
        if self._closed:
            raise StoreError("the store is closed")
        if self.memory:
            return  # the connection is the database
        old, self._writer = self._writer, None
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        try:
            conn = self._connect(writer=True)
            if self.dialect is POSTGRES:
                conn.autocommit = True  # type: ignore[attr-defined]
        except Exception as e:
            raise StoreError(f"cannot reconnect: {e}") from e
        self._writer = conn

    def _migrate(self, conn: _Conn) -> None:
        d = self.dialect
        self._begin(conn)
        try:
            if d is POSTGRES:
                # Two servers starting at once against one database must not both migrate.
                conn.execute("SELECT pg_advisory_xact_lock(715517)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, applied_at "
                + ("REAL" if d is SQLITE else "DOUBLE PRECISION")
                + " NOT NULL)"
            )
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = int(row[0]) if row and row[0] is not None else 0
            for version, statements in d.migrations:
                if version <= current:
                    continue
                for stmt in statements:
                    conn.execute(stmt)
                conn.execute(
                    d.sql("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)"),
                    (version, time.time()),
                )
            conn.commit() if d is POSTGRES else conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise

    def _begin(self, conn: _Conn) -> None:
        if self.dialect is SQLITE:
            # IMMEDIATE takes the write lock up front: no deadlock-prone lock upgrade mid-batch.
            conn.execute("BEGIN IMMEDIATE")

    def _commit(self, conn: _Conn) -> None:
        if self.dialect is SQLITE:
            conn.execute("COMMIT")
        else:
            conn.commit()

    def _rollback(self, conn: _Conn) -> None:
        try:
            if self.dialect is SQLITE:
                if getattr(conn, "in_transaction", True):
                    conn.execute("ROLLBACK")
            else:
                conn.rollback()
        except Exception:  # the transaction may already be gone with the connection
            pass

    @contextmanager
    def _reader(self, wait: float | None = None) -> Iterator[_Conn]:
        if self._closed:
            raise StoreError("the store is closed")
        wait = self.statement_timeout if wait is None else wait
        if self.memory:
            if not self._mem_lock.acquire(timeout=wait):
                raise StoreError("the store is busy")
            try:
                assert self._writer is not None
                yield self._writer
            finally:
                self._mem_lock.release()
            return
        if not self._reader_sem.acquire(timeout=wait):
            raise StoreError("every read connection is busy")
        try:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                try:
                    conn = self._connect()
                except Exception as e:
                    raise StoreError(f"cannot connect: {e}") from e
                with self._reader_lock:
                    self._opened_readers += 1
            ok = False
            try:
                with self._bounded(conn):
                    yield conn
                    if self.dialect is POSTGRES:
                        # End the read transaction psycopg opened: the next read sees new commits.
                        conn.rollback()
                ok = True
            finally:
                if ok and not self._closed:
                    self._readers.put(conn)
                else:
                    with contextlib.suppress(Exception):
                        conn.close()
        finally:
            self._reader_sem.release()

    def _read(self, fn: Callable[[_Conn], Any]) -> Any:
        for attempt in (0, 1):
            try:
                with self._reader() as conn:
                    return fn(conn)
            except StoreError:
                raise
            except Exception as e:
                if attempt == 0 and self._disconnected(e):
                    # A server that restarted left every pooled connection dead: drop them
                    # and try once more on a fresh one. (Not after a deadline: that is a
                    # StoreError, and a second wait would double the request's.)
                    self._drop_idle_readers()
                    continue
                raise StoreError(f"read failed: {e}") from e
        raise AssertionError("unreachable")

    def _disconnected(self, e: Exception) -> bool:
        if self.dialect is not POSTGRES:
            return False
        import psycopg

        return isinstance(e, psycopg.OperationalError)

    def _drop_idle_readers(self) -> None:
        while True:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                conn.close()

    # --- writes (the writer thread only) ---------------------------------------------------

    def write_batch(
        self,
        orders: Sequence[NewOrder],
        transitions: Sequence[Transition] = (),
        recovered: Sequence[int] = (),
        release_keys: Sequence[int] = (),
    ) -> list[Inserted]:
        """Writes one batch as one transaction (see :class:`Batch`) and returns what became of
        each new order. Raises StoreConstraintError when the batch breaks a constraint
        (retrying it cannot help), StoreError on any other failure."""
        return self.write(Batch(orders, transitions, recovered, release_keys))

    def write(self, batch: Batch) -> list[Inserted]:
        """Writes ``batch``; after a StoreError, call again with the same object to retry (a
        PostgreSQL attempt cut short may have committed: the retry finds out first)."""
        if self.memory:
            with self._mem_lock:
                return self._write(batch)
        return self._write(batch)

    def _write(self, batch: Batch) -> list[Inserted]:
        conn = self._writer
        if conn is None:
            raise StoreError("the store is not open")
        orders = batch.orders
        keys = [o.idempotency_key for o in orders if o.idempotency_key is not None]
        if len(keys) != len(set(keys)):
            raise StoreConstraintError("a batch holds two new orders with one Idempotency-Key")
        # The row keeps an order's latest state: its first terminal transition in this batch
        # if it has one, else its last. (A terminal row never changes again: the UPDATE's guard
        # keeps a late or replayed event from reviving it.)
        latest: dict[int, Transition] = {}
        for t in batch.transitions:
            prev = latest.get(t.order_id)
            if prev is None or prev.status not in TERMINAL:
                latest[t.order_id] = t
        if self.dialect is POSTGRES:
            import psycopg

            try:
                with self._bounded(conn):
                    if orders and batch.ids is None:
                        batch.ids = self._reserve_ids(conn, len(orders))
                    if batch.tried and batch.ids:
                        done = self._committed_pg(conn, batch)
                        if done is not None:
                            return done
                    batch.tried = True
                    try:
                        return self._write_pg(conn, batch, latest)
                    except psycopg.errors.UniqueViolation as e:
                        # Our reserved ids are taken: the attempt that was cut short
                        # committed after all, late (a frozen server that resumed).
                        done = None
                        if batch.ids and e.diag.constraint_name == "orders_pkey":
                            done = self._committed_pg(conn, batch)
                        if done is None:
                            raise
                        return done
            except psycopg.errors.IntegrityError as e:
                raise StoreConstraintError(f"write failed: {e}") from e
            except StoreError:
                raise
            except Exception as e:
                raise StoreError(f"write failed: {e}") from e
        try:
            self._begin(conn)
            cur: Any = conn.cursor()  # type: ignore[attr-defined]
            out = self._write_sqlite(cur, batch, list(latest.values()))
            self._commit(conn)
        except sqlite3.IntegrityError as e:
            self._rollback(conn)
            raise StoreConstraintError(f"write failed: {e}") from e
        except Exception as e:
            self._rollback(conn)
            raise StoreError(f"write failed: {e}") from e
        self._bound_wal(conn)
        return out

    def _reserve_ids(self, conn: Any, n: int) -> list[int]:
        """``n`` order ids from the database's sequence, taken in blocks: each server on the
        database draws its own, so ids never collide (unused ones leave gaps)."""
        while len(self._id_pool) < n:
            rows = conn.execute(
                "SELECT nextval('orders_id_seq') FROM generate_series(1, %s)",
                (max(n, _ID_BLOCK),),
            ).fetchall()
            self._id_pool.extend(int(r[0]) for r in rows)
        ids, self._id_pool = self._id_pool[:n], self._id_pool[n:]
        return ids

    @staticmethod
    def _committed_pg(conn: Any, batch: Batch) -> list[Inserted] | None:
        """After an attempt that failed without an answer: the batch's results if it did
        commit (one statement: all of it or nothing), else None."""
        assert batch.ids is not None
        rows = conn.execute(
            "SELECT id FROM orders WHERE id = ANY(%s::bigint[])", (batch.ids,)
        ).fetchall()
        if not rows:
            return None
        mine = {int(r[0]) for r in rows}
        out: list[Inserted] = []
        for oid, o in zip(batch.ids, batch.orders, strict=True):
            if oid in mine:
                out.append(Inserted(oid, True, o.request_hash))
            else:
                out.append(_existing_pg(conn, o))
        return out

    @staticmethod
    def _write_sqlite(cur: Any, batch: Batch, latest: Sequence[Transition]) -> list[Inserted]:
        if batch.release_keys:
            cur.executemany(
                "UPDATE orders SET idempotency_key = NULL WHERE id = ?",
                [(i,) for i in batch.release_keys],
            )
        out: list[Inserted] = []
        # One statement per order (in-process, cheap): each needs its rowid or its conflict.
        # The write lock (BEGIN IMMEDIATE) makes insert-or-find atomic across processes.
        for o in batch.orders:
            cur.execute(
                "INSERT INTO orders (idempotency_key, request_hash, charge_key, customer_id, "
                "amount_cents, currency, status, reason, attempts, charges, runs, created_at, "
                "updated_at, degraded, criticality, tenant) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, '', 0, 0, 1, ?, ?, 0, ?, ?) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                (
                    o.idempotency_key,
                    o.request_hash,
                    o.charge_key,
                    o.customer_id,
                    o.amount_cents,
                    o.currency,
                    o.status,
                    o.created_at,
                    o.created_at,
                    o.criticality,
                    o.tenant,
                ),
            )
            if cur.rowcount == 1:
                out.append(Inserted(int(cur.lastrowid), True, o.request_hash))
            else:
                row = cur.execute(
                    "SELECT id, request_hash FROM orders WHERE idempotency_key = ?",
                    (o.idempotency_key,),
                ).fetchone()
                out.append(Inserted(int(row[0]), False, str(row[1])))
        if batch.recovered:
            cur.executemany(
                "UPDATE orders SET runs = runs + 1 WHERE id = ?", [(i,) for i in batch.recovered]
            )
        if batch.transitions:
            cur.executemany(
                "INSERT INTO order_transitions (order_id, status, reason, at, attempts, charges) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (t.order_id, t.status, t.reason, t.at, t.attempts, t.charges)
                    for t in batch.transitions
                ],
            )
        if latest:
            cur.executemany(
                "UPDATE orders SET status = ?, reason = ?, attempts = ?, charges = ?, "
                f"updated_at = ?, degraded = ? WHERE id = ? AND status NOT IN {_TERMINAL_SQL}",
                [
                    (t.status, t.reason, t.attempts, t.charges, t.at, int(t.degraded), t.order_id)
                    for t in latest
                ],
            )
        return out

    @staticmethod
    def _write_pg(conn: Any, batch: Batch, latest: dict[int, Transition]) -> list[Inserted]:
        # Over the network, and every round trip makes the writer win the GIL back from a busy
        # event loop: the whole batch is ONE statement (data-modifying CTEs over unnest()ed
        # arrays), autocommitted. The CTEs share one snapshot: the new orders have no
        # transitions yet (the engine sees an order only once its row is committed), and the
        # UPDATE only touches older orders.
        orders, ids = batch.orders, batch.ids or []
        if batch.release_keys:
            # Its own statement: the keys are free before this batch's inserts look at them.
            # (Idempotent: a retry of the whole batch repeats it harmlessly.)
            conn.execute(
                "UPDATE orders SET idempotency_key = NULL WHERE id = ANY(%s::bigint[])",
                (list(batch.release_keys),),
            )
        bump = set(batch.recovered)
        upd_ids = list(latest) + [i for i in bump if i not in latest]
        upd = [latest.get(i) for i in upd_ids]
        transitions = batch.transitions
        rows = conn.execute(
            f"""WITH ins AS (
                INSERT INTO orders (id, idempotency_key, request_hash, charge_key, customer_id,
                    amount_cents, currency, status, created_at, updated_at, criticality, tenant)
                SELECT id, ik, rh, ck, cu, am, cur, st, ca, ca, cr, te FROM unnest(
                    %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],
                    %s::bigint[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::text[])
                    WITH ORDINALITY AS v(id, ik, rh, ck, cu, am, cur, st, ca, cr, te, n)
                    ORDER BY n
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id
            ), tr AS (
                INSERT INTO order_transitions (order_id, status, reason, at, attempts, charges)
                SELECT oid, st, re, ts, att, ch FROM unnest(
                    %s::bigint[], %s::text[], %s::text[], %s::float8[], %s::int[], %s::int[])
                WITH ORDINALITY AS t(oid, st, re, ts, att, ch, n) ORDER BY n
            ), up AS (
                UPDATE orders AS o SET status = COALESCE(u.st, o.status),
                    reason = COALESCE(u.re, o.reason), attempts = COALESCE(u.att, o.attempts),
                    charges = COALESCE(u.ch, o.charges), updated_at = COALESCE(u.ts, o.updated_at),
                    degraded = COALESCE(u.dg, o.degraded), runs = o.runs + u.bump
                FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::int[],
                    %s::float8[], %s::bool[], %s::int[]) AS u(id, st, re, att, ch, ts, dg, bump)
                WHERE o.id = u.id AND o.status NOT IN {_TERMINAL_SQL}
            ) SELECT id FROM ins""",
            (
                ids,
                [o.idempotency_key for o in orders],
                [o.request_hash for o in orders],
                [o.charge_key for o in orders],
                [o.customer_id for o in orders],
                [o.amount_cents for o in orders],
                [o.currency for o in orders],
                [o.status for o in orders],
                [o.created_at for o in orders],
                [o.criticality for o in orders],
                [o.tenant for o in orders],
                [t.order_id for t in transitions],
                [t.status for t in transitions],
                [t.reason for t in transitions],
                [t.at for t in transitions],
                [t.attempts for t in transitions],
                [t.charges for t in transitions],
                upd_ids,
                [t.status if t else None for t in upd],
                [t.reason if t else None for t in upd],
                [t.attempts if t else None for t in upd],
                [t.charges if t else None for t in upd],
                [t.at if t else None for t in upd],
                [t.degraded if t else None for t in upd],
                [1 if i in bump else 0 for i in upd_ids],
            ),
        ).fetchall()
        created = {int(r[0]) for r in rows}
        return [
            Inserted(oid, True, o.request_hash) if oid in created else _existing_pg(conn, o)
            for oid, o in zip(ids, orders, strict=True)
        ]

    def _bound_wal(self, conn: _Conn) -> None:
        """Resets the SQLite WAL once it outgrows ``wal_max_bytes``. Passive checkpoints (see
        :meth:`checkpoint`) copy pages back without blocking anyone, but cannot reset the log
        while readers and the writer keep using it, so under steady load it would grow without
        bound. A RESTART checkpoint waits (at most the busy timeout) for the readers of older
        snapshots to finish and copies the rest back, so that the next commit starts the log
        over, truncated to ``journal_size_limit``. It runs on the writer's connection between
        batches (a few tens of ms, mostly the fsync, every few MB of log)."""
        path = self.sqlite_path
        if path is None:
            return
        try:
            size = os.stat(f"{path}-wal").st_size
        except OSError:
            return
        if size <= self.wal_max_bytes:
            return
        # One checkpoint at a time: SQLite answers BUSY at once, without waiting, to a second.
        with self._checkpoint_lock, contextlib.suppress(sqlite3.Error):
            row = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            if row is not None and int(row[0]) == 0:
                self.wal_resets += 1

    # --- reads -----------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Copies the SQLite WAL back into the database file without blocking the writer
        (a passive checkpoint, on a read connection). A no-op for PostgreSQL and memory."""
        if self.sqlite_path is not None and self._checkpoint_lock.acquire(blocking=False):
            try:  # (skipped while the writer restarts the log)
                self._read(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
            finally:
                self._checkpoint_lock.release()

    def ping(self, timeout: float = 1.0) -> bool:
        """Whether a round trip to the database works within ``timeout`` seconds (on its own
        connection: a busy read pool does not fail it). Never blocks longer than that, give
        or take the connect timeout when the connection must be opened again; a ping already
        under way answers False to the others."""
        if self._closed:
            return False
        if self.memory:
            return True
        if not self._ping_lock.acquire(timeout=min(timeout, 0.05)):
            return False
        try:
            conn = self._ping_conn
            if conn is None:
                conn = self._ping_conn = self._connect()
            if self.dialect is POSTGRES:
                conn.autocommit = True  # type: ignore[attr-defined]
                token = _DEADLINES.arm(conn, timeout)
                try:
                    ok = conn.execute("SELECT 1").fetchone()[0] == 1
                finally:
                    if not _DEADLINES.disarm(token):
                        ok = False
            else:
                ok = conn.execute("SELECT 1").fetchone()[0] == 1
            if not ok:
                raise StoreError("no answer in time")
            return True
        except Exception:
            old, self._ping_conn = self._ping_conn, None
            if old is not None:
                with contextlib.suppress(Exception):
                    old.close()
            return False
        finally:
            self._ping_lock.release()

    def max_order_id(self) -> int:
        """The highest order id stored (0 when empty)."""
        row = self._read(lambda c: c.execute("SELECT MAX(id) FROM orders").fetchone())
        return int(row[0]) if row and row[0] is not None else 0

    def get_order(self, order_id: int, *, with_transitions: bool = True) -> dict[str, Any] | None:
        """One order as a dict (with its ``transitions`` in order), or None."""
        d = self.dialect

        def q(c: _Conn) -> dict[str, Any] | None:
            row = c.execute(
                d.sql(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?"), (order_id,)
            ).fetchone()
            if row is None:
                return None
            out = _order_dict(row)
            if with_transitions:
                rows = c.execute(
                    d.sql(
                        "SELECT status, reason, at, attempts, charges FROM order_transitions "
                        "WHERE order_id = ? ORDER BY id"
                    ),
                    (order_id,),
                ).fetchall()
                out["transitions"] = [
                    {"status": r[0], "reason": r[1], "at": r[2], "attempts": r[3], "charges": r[4]}
                    for r in rows
                ]
            return out

        result: dict[str, Any] | None = self._read(q)
        return result

    def find_by_idempotency_key(self, key: str) -> tuple[int, str] | None:
        """``(order id, request hash)`` of the order created with this key, or None."""
        d = self.dialect
        row = self._read(
            lambda c: c.execute(
                d.sql("SELECT id, request_hash FROM orders WHERE idempotency_key = ?"), (key,)
            ).fetchone()
        )
        return (int(row[0]), str(row[1])) if row else None

    def recent_idempotency_keys(self, limit: int) -> list[tuple[str, int, str]]:
        """``(key, order id, request hash)`` of the newest ``limit`` orders created with an
        Idempotency-Key, newest first."""
        d = self.dialect
        rows = self._read(
            lambda c: c.execute(
                d.sql(
                    "SELECT idempotency_key, id, request_hash FROM orders "
                    "WHERE idempotency_key IS NOT NULL ORDER BY id DESC LIMIT ?"
                ),
                (limit,),
            ).fetchall()
        )
        return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    def list_orders(self, *, status: str | None, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Orders with ``id > after_id`` in id order (optionally of one status), at most
        ``limit``."""
        d = self.dialect
        if status is None:
            sql, params = (
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        else:
            sql, params = (
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (status, after_id, limit),  # type: ignore[assignment]
            )
        rows = self._read(lambda c: c.execute(d.sql(sql), params).fetchall())
        return [_order_dict(r) for r in rows]

    def active_orders(self) -> list[tuple[int, str]]:
        """``(id, charge key)`` of every order not yet terminal, in id order."""
        d = self.dialect
        rows = self._read(
            lambda c: c.execute(
                d.sql("SELECT id, charge_key FROM orders WHERE status IN (?, ?, ?) ORDER BY id"),
                ACTIVE,
            ).fetchall()
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def orders_to_recover(self) -> list[ActiveOrder]:
        """Every order not yet terminal, in id order, with its charge key, class and tenant."""
        d = self.dialect
        rows = self._read(
            lambda c: c.execute(
                d.sql(
                    "SELECT id, charge_key, criticality, tenant FROM orders "
                    "WHERE status IN (?, ?, ?) ORDER BY id"
                ),
                ACTIVE,
            ).fetchall()
        )
        return [
            ActiveOrder(int(r[0]), str(r[1]), str(r[2]), None if r[3] is None else str(r[3]))
            for r in rows
        ]

    def count_by_status(self) -> dict[str, int]:
        """How many orders are in each status."""
        rows = self._read(
            lambda c: c.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall()
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def close(self) -> None:
        """Closes every connection (idempotent)."""
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._ping_lock.acquire(timeout=2.0):
            try:
                if self._ping_conn is not None:
                    with contextlib.suppress(Exception):
                        self._ping_conn.close()
                    self._ping_conn = None
            finally:
                self._ping_lock.release()
        while True:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                break
            with contextlib.suppress(Exception):
                conn.close()


def _check_seconds(
    name: str, value: object, low: float, high: float, *, open_low: bool = False
) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and (low < value if open_low else low <= value)
        and value <= high
    )
    if not ok:
        lo = "(" if open_low else "["
        raise ValueError(
            f"{name} must be a number of seconds in {lo}{low:g}, {high:g}], got {value!r}"
        )


def _order_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": int(row[0]),
        "idempotency_key": row[1],
        "customer_id": row[4],
        "amount_cents": int(row[5]),
        "currency": row[6],
        "status": row[7],
        "reason": row[8],
        "attempts": int(row[9]),
        "charges": int(row[10]),
        "runs": int(row[11]),
        "created_at": float(row[12]),
        "updated_at": float(row[13]),
        "degraded": bool(row[14]),
        "criticality": row[15],
        "tenant": row[16],
    }


__all__ = [
    "ACTIVE",
    "MEMORY_URLS",
    "STATUSES",
    "TERMINAL",
    "ActiveOrder",
    "Batch",
    "Inserted",
    "NewOrder",
    "Store",
    "StoreConstraintError",
    "StoreError",
    "Transition",
    "parse_database_url",
]
