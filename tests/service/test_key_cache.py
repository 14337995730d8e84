"""The service's in-memory Idempotency-Key cache: bounded in keys, and in the bytes of its
hash tables once it has been filled once (issue #12: the LRU OrderedDict it replaces was
bounded in keys, but its table doubled, +7 MB at 100,000 keys, about 75 s after it was full,
inside the memory benchmark's window)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

from reliability_lab.service.routes.common import KeyCache, Reservation


def _reservation() -> Reservation:
    # A Reservation holds an asyncio.Event, which needs no running loop on 3.10+.
    return Reservation("hash")


def _answer(cache: KeyCache, key: str, order_id: int) -> None:
    r = _reservation()
    cache.reserve(key, r)
    assert cache.resolve(key, r, (order_id, "hash"))


@pytest.mark.parametrize("capacity", [2, 7, 1000, 4096])
def test_holds_at_most_capacity_keys_and_at_least_the_last_half(capacity: int) -> None:
    cache = KeyCache(capacity)
    for i in range(6 * capacity):
        _answer(cache, f"k{i}", i)
        assert len(cache) <= capacity
        recent = max(0, i + 1 - capacity // 2)
        assert cache.get(f"k{recent}") == (recent, "hash")
        assert cache.get(f"k{i}") == (i, "hash")
    assert cache.get("k0") is None


@pytest.mark.parametrize("capacity", [1000, 4096, 20_000])
def test_table_bytes_stop_growing_once_the_cache_was_full(capacity: int) -> None:
    cache = KeyCache(capacity)
    for i in range(capacity):
        _answer(cache, f"k{i}", i)
    at_full = cache.table_bytes()
    most = 0
    for i in range(capacity, 8 * capacity):
        _answer(cache, f"k{i}", i)
        most = max(most, cache.table_bytes())
    assert most <= at_full


def test_reservations_wait_in_flight_and_are_released() -> None:
    cache = KeyCache(4)
    r = _reservation()
    cache.reserve("a", r)
    assert cache.get("a") is r
    # Rotations while "a" is in flight never drop its reservation.
    for i in range(20):
        _answer(cache, f"k{i}", i)
    assert cache.get("a") is r
    # Another request's reservation does not end this one.
    assert not cache.resolve("a", _reservation(), (1, "x"))
    assert cache.resolve("a", r, None)
    assert cache.get("a") is None  # nothing stored: the key is free again
    r2 = _reservation()
    cache.reserve("a", r2)
    assert cache.resolve("a", r2, (99, "hash"))
    assert cache.get("a") == (99, "hash")
    assert len(cache) <= 4


def test_rejects_a_bad_capacity() -> None:
    for bad in (1, 0, -5, True, 2.0, "10"):
        with pytest.raises(ValueError, match=r"KeyCache\.capacity must be an integer >= 2"):
            KeyCache(bad)  # type: ignore[arg-type]
