"""Durable order storage: SQLite (one file, the default) or PostgreSQL (psycopg 3).

Two tables hold the truth: ``orders`` (one row per accepted order, its latest status) and
``order_transitions`` (every status change, append-only). ``schema_version`` records which
migrations ran; :meth:`Store.open` applies the missing ones in a transaction, so an older file or
database is brought up to date on start.

Writes go through :meth:`Store.write_batch`, called by the service's single writer thread: a
batch of new orders and transitions is one transaction (group commit), which keeps the commit
cost off the request path. Reads use a small pool of separate connections (SQLite in WAL mode
lets readers run beside the writer). Every statement is parameterised; SQL text is never built
from request data.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

#: Every order status, in lifecycle order.
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


@dataclass(frozen=True)
class NewOrder:
    """An accepted order, as first written."""

    id: int
    idempotency_key: str | None
    request_hash: str
    charge_key: str
    customer_id: str
    amount_cents: int
    currency: str
    status: str
    created_at: float


@dataclass(frozen=True)
class Transition:
    """One status change of an order (``at``: Unix seconds)."""

    order_id: int
    status: str
    reason: str
    at: float
    attempts: int = 0
    charges: int = 0


class _Conn(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


# A constant, not request data: safe to splice into statements.
_TERMINAL_SQL = "('completed', 'failed', 'rejected', 'expired', 'cancelled')"

_ORDER_COLUMNS = (
    "id, idempotency_key, request_hash, charge_key, customer_id, amount_cents, currency, "
    "status, reason, attempts, charges, runs, created_at, updated_at"
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


SQLITE = _Dialect(
    "sqlite",
    ((1, _schema_v1("INTEGER", "INTEGER PRIMARY KEY", "REAL")),),
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
    ),
    "%s",
)


class StoreError(RuntimeError):
    """The store could not be opened or written."""


def parse_database_url(url: str) -> tuple[str, str]:
    """``(dialect, target)``: a SQLite file path, or a PostgreSQL conninfo URL.

    Accepts ``sqlite:///relative.db``, ``sqlite:////absolute.db``, a bare path, and
    ``postgresql://`` / ``postgres://`` URLs. Anything else is a ValueError naming the parameter.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("database must be a SQLite path or URL, or a postgresql:// URL")
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
            f"database: unsupported scheme {scheme!r}; use a SQLite path, sqlite:///PATH "
            "or postgresql://..."
        )
    return "sqlite", url


class Store:
    """Orders and their transitions in SQLite or PostgreSQL.

    Args:
        url: see :func:`parse_database_url`.
        read_connections: the most read connections open at once (readers wait beyond that).
    """

    def __init__(self, url: str, *, read_connections: int = 4) -> None:
        if (
            isinstance(read_connections, bool)
            or not isinstance(read_connections, int)
            or not (1 <= read_connections <= 64)
        ):
            raise ValueError(
                f"read_connections must be an integer in [1, 64], got {read_connections!r}"
            )
        kind, target = parse_database_url(url)
        self.dialect = SQLITE if kind == "sqlite" else POSTGRES
        self.target = target
        self._max_readers = read_connections
        self._readers: queue.LifoQueue[_Conn] = queue.LifoQueue()
        self._opened_readers = 0
        self._reader_lock = threading.Lock()
        self._reader_sem = threading.BoundedSemaphore(read_connections)
        self._writer: _Conn | None = None
        self._closed = False

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL."""
        return Path(self.target) if self.dialect is SQLITE else None

    # --- connections -----------------------------------------------------------------------

    def _connect(self, *, writer: bool = False) -> _Conn:
        if self.dialect is SQLITE:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is one transaction.
            conn = sqlite3.connect(
                self.target, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a killed process (it is in the OS page cache
            # and the WAL); only a power loss can roll back the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            if writer:
                # No automatic checkpoints in the commit path: a checkpoint syncs the WAL, and a
                # commit that runs one makes every request waiting on it slow. The service calls
                # checkpoint() from its own thread instead.
                conn.execute("PRAGMA wal_autocheckpoint=0")
            return conn
        import psycopg

        pg = psycopg.connect(self.target, autocommit=False, connect_timeout=10)
        return pg

    def open(self) -> None:
        """Connects the writer and creates or migrates the schema."""
        if self.dialect is SQLITE:
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = self._connect(writer=True)
            self._migrate(self._writer)
            if self.dialect is POSTGRES:
                # A batch is one statement (see _write_pg): in autocommit mode the statement is
                # its own transaction, committed in the same round trip.
                self._writer.autocommit = True  # type: ignore[attr-defined]
        except Exception as e:
            raise StoreError(f"cannot open the {self.dialect.name} store: {e}") from e

    def reconnect_writer(self) -> None:
        """Replaces the writer's connection (after a failure: a PostgreSQL server that went
        away and came back leaves the old connection dead). Raises StoreError if it cannot."""
        if self._closed:
            raise StoreError("the store is closed")
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
                conn.execute("ROLLBACK")
            else:
                conn.rollback()
        except Exception:  # the transaction may already be gone with the connection
            pass

    @contextmanager
    def _reader(self) -> Iterator[_Conn]:
        if self._closed:
            raise StoreError("the store is closed")
        with self._reader_sem:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                conn = self._connect()
                with self._reader_lock:
                    self._opened_readers += 1
            ok = False
            try:
                yield conn
                ok = True
            finally:
                if self.dialect is POSTGRES:
                    # End the read transaction psycopg opened, so the next read sees new commits.
                    self._rollback(conn)
                if ok and not self._closed:
                    self._readers.put(conn)
                else:
                    conn.close()

    def _read(self, fn: Callable[[_Conn], Any]) -> Any:
        with self._reader() as conn:
            return fn(conn)

    # --- writes (the writer thread only) ---------------------------------------------------

    def write_batch(
        self,
        orders: Sequence[NewOrder],
        transitions: Sequence[Transition],
        recovered: Sequence[int] = (),
    ) -> None:
        """Writes one batch as one transaction: new orders, then transitions (each also updates
        its order's row unless the order is already terminal), then ``recovered`` order ids
        (their ``runs`` count goes up by one). Raises StoreError on failure, writing nothing."""
        conn = self._writer
        if conn is None:
            raise StoreError("the store is not open")
        d = self.dialect
        # The row keeps an order's latest state: its first terminal transition in this batch
        # if it has one, else its last. (A terminal row never changes again: the UPDATE's guard
        # keeps a late or replayed event from reviving it.)
        latest: dict[int, Transition] = {}
        for t in transitions:
            prev = latest.get(t.order_id)
            if prev is None or prev.status not in TERMINAL:
                latest[t.order_id] = t
        if d is POSTGRES:
            try:
                self._write_pg(conn, orders, transitions, latest, recovered)
            except Exception as e:  # one autocommitted statement: nothing was written
                raise StoreError(f"write failed: {e}") from e
            return
        try:
            self._begin(conn)
            cur: Any = conn.cursor()  # type: ignore[attr-defined]
            self._write_sqlite(cur, orders, transitions, list(latest.values()), recovered)
            self._commit(conn)
        except Exception as e:
            self._rollback(conn)
            raise StoreError(f"write failed: {e}") from e

    @staticmethod
    def _write_sqlite(
        cur: Any,
        orders: Sequence[NewOrder],
        transitions: Sequence[Transition],
        latest: Sequence[Transition],
        recovered: Sequence[int],
    ) -> None:
        # In-process: executemany is a tight C loop over one prepared statement.
        if orders:
            cur.executemany(
                f"INSERT INTO orders ({_ORDER_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', 0, 0, 1, ?, ?)",
                [
                    (
                        o.id,
                        o.idempotency_key,
                        o.request_hash,
                        o.charge_key,
                        o.customer_id,
                        o.amount_cents,
                        o.currency,
                        o.status,
                        o.created_at,
                        o.created_at,
                    )
                    for o in orders
                ],
            )
        if recovered:
            cur.executemany(
                "UPDATE orders SET runs = runs + 1 WHERE id = ?", [(i,) for i in recovered]
            )
        if transitions:
            cur.executemany(
                "INSERT INTO order_transitions (order_id, status, reason, at, attempts, charges) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (t.order_id, t.status, t.reason, t.at, t.attempts, t.charges)
                    for t in transitions
                ],
            )
        if latest:
            cur.executemany(
                "UPDATE orders SET status = ?, reason = ?, attempts = ?, charges = ?, "
                f"updated_at = ? WHERE id = ? AND status NOT IN {_TERMINAL_SQL}",
                [(t.status, t.reason, t.attempts, t.charges, t.at, t.order_id) for t in latest],
            )

    @staticmethod
    def _write_pg(
        conn: Any,
        orders: Sequence[NewOrder],
        transitions: Sequence[Transition],
        latest: dict[int, Transition],
        recovered: Sequence[int],
    ) -> None:
        # Over the network, and every round trip makes the writer win the GIL back from a busy
        # event loop: the whole batch is ONE statement (data-modifying CTEs over unnest()ed
        # arrays), autocommitted. The CTEs share one snapshot, so the UPDATE cannot see rows
        # the INSERT adds: new orders are inserted already in their latest state, and only
        # older orders are updated.
        new_ids = {o.id for o in orders}
        ins_state = [latest.get(o.id) for o in orders]
        bump = set(recovered)
        upd_ids = [i for i in latest if i not in new_ids] + [
            i for i in bump if i not in latest and i not in new_ids
        ]
        upd = [latest.get(i) for i in upd_ids]
        conn.execute(
            f"""WITH ins AS (
                INSERT INTO orders ({_ORDER_COLUMNS})
                SELECT id, ik, rh, ck, cu, am, cur, st, re, att, ch, 1, ca, ua FROM unnest(
                    %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[],
                    %s::text[], %s::text[], %s::text[], %s::int[], %s::int[], %s::float8[],
                    %s::float8[])
                AS v(id, ik, rh, ck, cu, am, cur, st, re, att, ch, ca, ua)
            ), tr AS (
                INSERT INTO order_transitions (order_id, status, reason, at, attempts, charges)
                SELECT oid, st, re, ts, att, ch FROM unnest(
                    %s::bigint[], %s::text[], %s::text[], %s::float8[], %s::int[], %s::int[])
                WITH ORDINALITY AS v(oid, st, re, ts, att, ch, n) ORDER BY n
            ), up AS (
                UPDATE orders AS o SET status = COALESCE(v.st, o.status),
                    reason = COALESCE(v.re, o.reason), attempts = COALESCE(v.att, o.attempts),
                    charges = COALESCE(v.ch, o.charges), updated_at = COALESCE(v.ts, o.updated_at),
                    runs = o.runs + v.bump
                FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::int[],
                    %s::float8[], %s::int[]) AS v(id, st, re, att, ch, ts, bump)
                WHERE o.id = v.id AND o.status NOT IN {_TERMINAL_SQL}
            ) SELECT 1""",
            (
                [o.id for o in orders],
                [o.idempotency_key for o in orders],
                [o.request_hash for o in orders],
                [o.charge_key for o in orders],
                [o.customer_id for o in orders],
                [o.amount_cents for o in orders],
                [o.currency for o in orders],
                [t.status if t else o.status for o, t in zip(orders, ins_state, strict=True)],
                [t.reason if t else "" for t in ins_state],
                [t.attempts if t else 0 for t in ins_state],
                [t.charges if t else 0 for t in ins_state],
                [o.created_at for o in orders],
                [t.at if t else o.created_at for o, t in zip(orders, ins_state, strict=True)],
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
                [1 if i in bump else 0 for i in upd_ids],
            ),
        )

    # --- reads -----------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Copies the SQLite WAL back into the database file without blocking the writer
        (a passive checkpoint, on a read connection). A no-op for PostgreSQL."""
        if self.dialect is SQLITE:
            self._read(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())

    def ping(self) -> bool:
        """Whether a read round trip works."""
        try:
            return bool(self._read(lambda c: c.execute("SELECT 1").fetchone()[0] == 1))
        except Exception:
            return False

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
            self._writer.close()
            self._writer = None
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break


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
    }


__all__ = [
    "ACTIVE",
    "STATUSES",
    "TERMINAL",
    "NewOrder",
    "Store",
    "StoreError",
    "Transition",
    "parse_database_url",
]
