"""Bulkheads: bound how many calls run at once, so one slow dependency cannot take every worker.

::

    bh = Bulkhead(max_concurrent=4, max_waiting=8, max_wait=0.5, name="pricing")
    bh.call(fetch_price, sku)        # one call through the bulkhead
    with bh:                         # ... or around a block
        ...
    @bh                              # ... or as a decorator
    def fetch_price(sku): ...

When every slot is busy a caller waits (in FIFO order, at most ``max_wait`` seconds) if the
waiting room has space, and is rejected at once with :class:`~reliability_lab.errors.BulkheadFull`
otherwise; a wait that times out raises the same error. Waiting happens in native code with the GIL
released (Ctrl-C still interrupts it on the main thread), and a released slot is handed straight to
the oldest waiter, so newcomers never overtake the queue. The slot is always released, whatever
the guarded code raises.

:meth:`Bulkhead.close` shuts the bulkhead down: every waiting caller is released at once with
:class:`~reliability_lab.errors.BulkheadClosed`, and so is every later acquisition. Calls already
running keep their slots until they finish. (``with bulkhead:`` holds a slot; to close a bulkhead
at the end of a block use ``contextlib.closing(bulkhead)``.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ParamSpec, TypeVar

from reliability_lab import _checks, _core, _schema
from reliability_lab.errors import BulkheadClosed, BulkheadFull

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class BulkheadConfig(_schema.Checked):
    """Configuration of a :class:`Bulkhead` (validated on construction).

    Attributes:
        max_concurrent: calls running at once, in [1, 1e6].
        max_waiting: callers allowed to wait for a slot, in [0, 1e6]; 0 rejects at once.
        max_wait: seconds a caller waits before giving up, in [0, 1e6]; None waits without limit
            (the waiting room is still bounded by ``max_waiting``).
    """

    max_concurrent: int = 10
    max_waiting: int = 0
    max_wait: float | None = None

    def build(self, name: str = "bulkhead") -> Bulkhead:
        """A new bulkhead with this configuration."""
        return Bulkhead.from_config(self, name=name)


@dataclass(frozen=True)
class BulkheadStats:
    """Gauges and lifetime counters of a bulkhead."""

    active: int
    """Slots held now."""
    waiting: int
    """Callers waiting now."""
    admitted: int
    """Admissions, at once or after waiting."""
    rejected: int
    """Immediate rejections: no slot and no waiting room."""
    timed_out: int
    """Waits that gave up after ``max_wait``."""
    abandoned: int
    """Waits given up for another reason (e.g. Ctrl-C)."""


class Bulkhead:
    """Bounded concurrency plus a bounded, FIFO waiting room, for Python callables.

    Thread-safe: share one instance between every thread calling the protected dependency.

    Args:
        max_concurrent, max_waiting, max_wait: see :class:`BulkheadConfig`.
        name: used in errors and metrics.
    """

    def __init__(
        self,
        max_concurrent: int,
        max_waiting: int = 0,
        max_wait: float | None = None,
        name: str = "bulkhead",
    ) -> None:
        self._config = BulkheadConfig(max_concurrent, max_waiting, max_wait)
        self._native = _core.BlockingBulkhead(_schema.values(self._config))
        self._name = _checks.string("name", name)

    @classmethod
    def from_config(cls, config: BulkheadConfig, name: str = "bulkhead") -> Bulkhead:
        """A new bulkhead with ``config``."""
        return cls(config.max_concurrent, config.max_waiting, config.max_wait, name)

    @property
    def config(self) -> BulkheadConfig:
        """The configuration this bulkhead was built with."""
        return self._config

    @property
    def native(self) -> _core.BlockingBulkhead:
        """The native bulkhead, for engines that share it with C++ workers."""
        return self._native

    @property
    def name(self) -> str:
        """The bulkhead's name."""
        return self._name

    def acquire(self) -> None:
        """Takes a slot, waiting up to ``max_wait``; raises BulkheadFull if none is granted
        (BulkheadClosed once the bulkhead is closed).

        Pair every successful ``acquire`` with one :meth:`release`; prefer ``call`` or ``with``.
        """
        result = self._native.acquire()
        if result != "admitted":
            if result == "closed":
                raise BulkheadClosed(self._name)
            raise BulkheadFull(self._name, self._config.max_concurrent, self._config.max_waiting)

    def close(self) -> None:
        """Closes the bulkhead: waiting callers and every later acquisition raise
        :class:`~reliability_lab.errors.BulkheadClosed`. Slots already held stay valid until
        released. Idempotent."""
        self._native.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._native.closed

    def release(self) -> None:
        """Gives a slot back (to the oldest waiter, if any); RuntimeError if none is held."""
        self._native.release()

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Runs ``fn(*args, **kwargs)`` in a slot; raises BulkheadFull if none is granted."""
        self.acquire()
        try:
            return fn(*args, **kwargs)
        finally:
            self._native.release()

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``fn`` so that every call runs in a slot of this bulkhead."""

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        return guarded

    def __enter__(self) -> Bulkhead:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._native.release()

    def stats(self) -> BulkheadStats:
        """A consistent snapshot of gauges and counters."""
        s = self._native.stats()
        return BulkheadStats(s.active, s.waiting, s.admitted, s.rejected, s.timed_out, s.abandoned)

    @property
    def max_concurrent(self) -> int:
        """Calls allowed to run at once."""
        return self._config.max_concurrent

    @property
    def max_waiting(self) -> int:
        """Callers allowed to wait for a slot."""
        return self._config.max_waiting

    @property
    def max_wait(self) -> float | None:
        """Seconds a caller waits for a slot (None: without limit)."""
        return self._config.max_wait

    @property
    def active(self) -> int:
        """Slots held now."""
        return self._native.stats().active

    @property
    def waiting(self) -> int:
        """Callers waiting now."""
        return self._native.stats().waiting

    @property
    def admitted(self) -> int:
        """Lifetime admissions."""
        return self._native.stats().admitted

    @property
    def rejected(self) -> int:
        """Lifetime immediate rejections (full)."""
        return self._native.stats().rejected

    @property
    def timed_out(self) -> int:
        """Lifetime waits that timed out."""
        return self._native.stats().timed_out

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"Bulkhead(name={self._name!r}, active={s.active}/{self.max_concurrent},"
            f" waiting={s.waiting}/{self.max_waiting})"
        )


__all__ = ["Bulkhead", "BulkheadConfig", "BulkheadStats"]
