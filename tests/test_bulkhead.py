"""Bulkheads: the pure admission machine and the blocking bulkhead for Python callables."""

from __future__ import annotations

import _thread
import dataclasses
import functools
import math
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import _core, _schema
from reliability_lab.bulkhead import Bulkhead, BulkheadConfig
from reliability_lab.errors import BulkheadFull, Rejected


def _wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.001)


def _has_waiting(bh: Bulkhead, n: int) -> bool:
    return bh.waiting == n


class _Holder:
    """Holds one slot of a bulkhead in a background thread until released."""

    def __init__(self, bh: Bulkhead) -> None:
        self.entered = threading.Event()
        self.leave = threading.Event()
        self.thread = threading.Thread(target=bh.call, args=(self._run,))
        self.thread.start()
        assert self.entered.wait(10)

    def _run(self) -> None:
        self.entered.set()
        self.leave.wait(10)

    def done(self) -> None:
        self.leave.set()
        self.thread.join(10)


def test_call_context_manager_and_decorator() -> None:
    bh = Bulkhead(2, name="pricing")

    def add(a: int, b: int = 0) -> int:
        return a + b

    assert bh.call(add, 1, b=2) == 3
    with bh as entered:
        assert entered is bh and bh.active == 1
    assert bh.active == 0

    @bh
    def double(x: int) -> int:
        """Doubles."""
        assert bh.active == 1
        return 2 * x

    assert double(21) == 42 and double.__doc__ == "Doubles."
    assert bh.admitted == 3 and bh.active == 0


def test_exceptions_always_release_the_slot() -> None:
    bh = Bulkhead(1)

    def boom() -> None:
        raise KeyError("x")

    for _ in range(3):
        with pytest.raises(KeyError):
            bh.call(boom)
    with pytest.raises(ZeroDivisionError), bh:
        _ = 1 / 0
    assert bh.active == 0 and bh.admitted == 4


def test_full_rejects_at_once() -> None:
    bh = Bulkhead(1, name="inventory")
    holder = _Holder(bh)
    start = time.monotonic()
    with pytest.raises(BulkheadFull) as info:
        bh.call(lambda: None)
    assert time.monotonic() - start < 1.0
    assert isinstance(info.value, Rejected)
    assert (info.value.name, info.value.max_concurrent, info.value.max_waiting) == (
        "inventory",
        1,
        0,
    )
    holder.done()
    assert bh.stats().rejected == 1 and bh.active == 0


def test_wait_times_out() -> None:
    bh = Bulkhead(1, max_waiting=1, max_wait=0.05)
    holder = _Holder(bh)
    start = time.monotonic()
    with pytest.raises(BulkheadFull):
        bh.call(lambda: None)
    assert time.monotonic() - start >= 0.05
    holder.done()
    s = bh.stats()
    assert (s.timed_out, s.waiting, s.active, s.rejected) == (1, 0, 0, 0)


def test_waiter_gets_the_slot_fifo_with_the_gil_released() -> None:
    bh = Bulkhead(1, max_waiting=5)  # wait without limit
    holder = _Holder(bh)
    order: list[int] = []
    threads = []
    for i in range(4):
        t = threading.Thread(target=bh.call, args=(order.append, i))
        t.start()
        threads.append(t)
        # The waiter blocks in native code; if it held the GIL this loop could not run.
        _wait_until(functools.partial(_has_waiting, bh, i + 1))
    holder.done()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3]
    assert bh.stats().admitted == 5 and bh.active == 0


@pytest.mark.usefixtures("default_sigint")
def test_ctrl_c_interrupts_a_wait_without_limit() -> None:
    bh = Bulkhead(1, max_waiting=1)  # max_wait None: only the interrupt can end the wait
    holder = _Holder(bh)
    timer = threading.Timer(0.1, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            bh.call(lambda: None)
    finally:
        timer.join()
        holder.done()
    s = bh.stats()
    assert (s.abandoned, s.waiting, s.active, s.admitted) == (1, 0, 0, 1)


def test_concurrency_bound_with_real_threads() -> None:
    max_concurrent = 3
    bh = Bulkhead(max_concurrent, max_waiting=64)
    lock = threading.Lock()
    inside = 0
    peak = 0
    done = 0

    def work() -> None:
        nonlocal inside, peak, done
        with lock:
            inside += 1
            peak = max(peak, inside)
        time.sleep(0.001)
        with lock:
            inside -= 1
            done += 1

    def worker() -> None:
        for _ in range(25):
            bh.call(work)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert done == 12 * 25
    assert 1 <= peak <= max_concurrent
    s = bh.stats()
    assert (s.admitted, s.active, s.waiting, s.rejected) == (300, 0, 0, 0)


def test_mixed_outcomes_under_contention_are_all_accounted() -> None:
    bh = Bulkhead(2, max_waiting=2, max_wait=0.002)
    lock = threading.Lock()
    inside = peak = ok = full = 0

    def work() -> None:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        time.sleep(0.0005)
        with lock:
            inside -= 1

    def worker() -> None:
        nonlocal ok, full
        for _ in range(100):
            try:
                bh.call(work)
            except BulkheadFull:
                with lock:
                    full += 1
            else:
                with lock:
                    ok += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    s = bh.stats()
    assert peak <= 2
    assert ok + full == 800
    assert s.admitted == ok and s.rejected + s.timed_out == full
    assert s.active == 0 and s.waiting == 0


def test_release_without_acquire_is_an_error() -> None:
    bh = Bulkhead(1)
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        bh.release()
    bh.acquire()
    bh.release()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrent": 0}, r"max_concurrent must be an integer in \[1, 1000000\], got 0"),
        ({"max_concurrent": 1.5}, "max_concurrent must be an integer"),
        ({"max_concurrent": True}, "max_concurrent must be an integer"),
        ({"max_concurrent": 2**70}, "max_concurrent"),
        ({"max_concurrent": 1, "max_waiting": -1}, "max_waiting must be"),
        ({"max_concurrent": 1, "max_wait": -0.5}, r"max_wait must be a finite number in \[0"),
        ({"max_concurrent": 1, "max_wait": math.nan}, "max_wait"),
        ({"max_concurrent": 1, "max_wait": math.inf}, "max_wait"),
        (
            {"max_concurrent": 1, "max_wait": "1s"},
            r"max_wait must be a finite number in \[0, 1e\+06\], got '1s'",
        ),
    ],
)
def test_errors_name_the_parameter(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Bulkhead(**kwargs)  # type: ignore[arg-type]


def test_config_is_frozen_and_builds() -> None:
    cfg = BulkheadConfig(max_concurrent=2, max_waiting=3, max_wait=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_waiting = 1  # type: ignore[misc]
    bh = cfg.build(name="x")
    assert bh.config == cfg and bh.name == "x"
    assert (bh.max_concurrent, bh.max_waiting, bh.max_wait) == (2, 3, 0.5)
    assert bh.native.max_wait == 0.5
    assert Bulkhead(1).native.max_wait is None


# ---------------------------------------------------------------------------------------------
# The pure state machine, against a model.


def test_state_machine_transitions() -> None:
    s = _core.BulkheadState(_schema.values(BulkheadConfig(2, 1)))
    assert [s.try_acquire() for _ in range(4)] == ["admitted", "admitted", "must_wait", "rejected"]
    assert s.release() == "handed_off"
    st_ = s.stats()
    assert (st_.active, st_.waiting, st_.admitted, st_.rejected) == (2, 0, 3, 1)
    assert s.release() == "freed" and s.release() == "freed" and s.release() == "not_held"
    assert s.try_acquire() == "admitted" and s.try_acquire() == "admitted"
    assert s.try_acquire() == "must_wait" and s.cancel_wait()
    assert not s.cancel_wait()
    assert s.stats().timed_out == 1


@given(
    max_concurrent=st.integers(1, 4),
    max_waiting=st.integers(0, 3),
    ops=st.lists(st.sampled_from(["acquire", "release", "cancel"]), max_size=100),
)
@settings(max_examples=200, deadline=None)
def test_state_machine_matches_model(max_concurrent: int, max_waiting: int, ops: list[str]) -> None:
    s = _core.BulkheadState(_schema.values(BulkheadConfig(max_concurrent, max_waiting)))
    active = waiting = 0
    for op in ops:
        if op == "acquire":
            got = s.try_acquire()
            if active < max_concurrent:
                assert got == "admitted"
                active += 1
            elif waiting < max_waiting:
                assert got == "must_wait"
                waiting += 1
            else:
                assert got == "rejected"
        elif op == "release":
            got_r = s.release()
            if active == 0:
                assert got_r == "not_held"
            elif waiting > 0:
                assert got_r == "handed_off"
                waiting -= 1
            else:
                assert got_r == "freed"
                active -= 1
        else:
            assert s.cancel_wait() == (waiting > 0)
            waiting = max(0, waiting - 1)
        snap = s.stats()
        assert (snap.active, snap.waiting) == (active, waiting)
        assert snap.active <= max_concurrent and snap.waiting <= max_waiting
        assert snap.waiting == 0 or snap.active == max_concurrent  # no free slot while waiting


# --- close (issue #12) ------------------------------------------------------------------------


def test_close_releases_waiters_and_fails_later_acquires() -> None:
    import contextlib

    from reliability_lab.errors import BulkheadClosed

    bh = Bulkhead(max_concurrent=1, max_waiting=3, name="pricing")
    bh.acquire()  # the only slot: everyone else waits (without a time limit)
    results: list[BaseException | None] = []
    lock = threading.Lock()

    def wait_for_slot() -> None:
        try:
            bh.acquire()
        except BaseException as exc:
            with lock:
                results.append(exc)
        else:  # pragma: no cover - would be a bug
            with lock:
                results.append(None)

    threads = [threading.Thread(target=wait_for_slot) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(3000):  # bounded: at most ~30 s
        if bh.stats().waiting == 3:
            break
        time.sleep(0.01)
    assert bh.stats().waiting == 3
    assert not bh.closed
    bh.close()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert len(results) == 3 and all(isinstance(r, BulkheadClosed) for r in results)
    assert all(isinstance(r, Rejected) and "closed" in str(r) for r in results)
    assert bh.closed
    s = bh.stats()
    assert (s.waiting, s.abandoned, s.active) == (0, 3, 1)
    with pytest.raises(BulkheadClosed):
        bh.acquire()
    with pytest.raises(BulkheadClosed):
        bh.call(lambda: None)
    bh.release()  # the slot held before the close is still released normally
    assert bh.stats().active == 0
    bh.close()  # idempotent
    with pytest.raises(BulkheadClosed):
        bh.acquire()

    other = Bulkhead(max_concurrent=2)
    with contextlib.closing(other):
        assert other.call(lambda: 7) == 7
    assert other.closed


def test_native_bulkheads_read_the_config_dict_by_its_table() -> None:
    """The native halves take an rl.BulkheadConfig's dict; a bad one is refused naming the
    field, the range and the value, or the missing or unknown key."""
    good = _schema.values(BulkheadConfig(2, 1, 0.5))
    for native in (_core.BulkheadState, _core.BlockingBulkhead):
        assert native(good).max_concurrent == 2
        with pytest.raises(ValueError, match=r"^max_concurrent must be an integer in \[1, "):
            native({**good, "max_concurrent": 0})
        with pytest.raises(ValueError, match=r"^max_wait must be a finite number in \[0, 1e\+06\]"):
            native({**good, "max_wait": -1.0})
        with pytest.raises(ValueError, match="max_waiting"):
            native({k: v for k, v in good.items() if k != "max_waiting"})
        with pytest.raises(ValueError, match="nope"):
            native({**good, "nope": 1})
