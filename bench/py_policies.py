"""Python policy benchmarks: reliability_lab against pybreaker and tenacity, same interpreter.

Every case times one statement per side with :func:`harness.time_pair` (timeit's method: a
compiled loop, best of N interleaved repeats, GC off). The statements are written the same way
for both sides: the same no-op (or raising) function, the same ``breaker.call(fn)`` call shape,
the same ``try/except`` at the call site.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from harness import Row, judge_ratio, time_pair

# Thresholds that never trip within a benchmark: our breaker accepts at most 1,000,000 for
# consecutive_failures, so a failure repeat runs at most _MAX_FAILURES calls and each repeat starts
# from a closed, reset breaker (both sides, outside the timed loop).
_NEVER_TRIPS = 1_000_000
_MAX_FAILURES = 900_000
_OPEN_FOR_S = 1e6  # longest open_for we accept; pybreaker gets the same reset_timeout


class Boom(Exception):
    """The dependency's failure in the counted-failure case."""


def noop() -> None:
    return None


def fail() -> None:
    raise Boom()


def versions() -> dict[str, str]:
    out = {}
    for dist in ("pybreaker", "tenacity"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _ns(t: float) -> float:
    return t * 1e9


def _row(
    name: str,
    ours: Any,
    peer: Any,
    peer_name: str,
    minimum: float,
    group: str,
    note: str = "",
) -> Row:
    ratio = peer.best / ours.best
    return Row(
        group=group,
        name=name,
        unit="ns/op",
        ours=_ns(ours.best),
        peer=_ns(peer.best),
        peer_name=peer_name,
        ratio=ratio,
        target=f">= {minimum:g}x",
        status=judge_ratio(ratio, minimum),
        note=note,
        details={
            **ours.as_details("ours"),
            **peer.as_details("peer"),
            "ratio_of_medians": peer.median / ours.median,
        },
    )


def run_breaker(min_time: float, repeats: int) -> list[Row]:
    import pybreaker
    import reliability_lab as rl
    from reliability_lab.errors import Rejected

    group = "breaker"
    peer_name = f"pybreaker {metadata.version('pybreaker')}"
    rows: list[Row] = []

    def fresh() -> tuple[Any, Any]:
        ours = rl.CircuitBreaker(
            rl.Breaker(consecutive_failures=_NEVER_TRIPS, open_for=_OPEN_FOR_S), name="bench"
        )
        peer = pybreaker.CircuitBreaker(fail_max=10**12, reset_timeout=_OPEN_FOR_S, name="bench")
        return ours, peer

    # Success path: a no-op guarded by a closed breaker.
    cb, pcb = fresh()
    ns = {"cb": cb, "pcb": pcb, "noop": noop}
    o, p = time_pair("cb.call(noop)", "pcb.call(noop)", ns, min_time=min_time, repeats=repeats)
    assert cb.state == "closed" and pcb.current_state == "closed"
    rows.append(_row("success: call(no-op)", o, p, peer_name, 6, group))

    # Counted failure: the function raises, the breaker records a failure and re-raises, the
    # caller catches. Thresholds are never reached, so both breakers stay closed throughout.
    cb, pcb = fresh()
    ns = {"cb": cb, "pcb": pcb, "fail": fail, "Boom": Boom}
    o, p = time_pair(
        "try:\n    cb.call(fail)\nexcept Boom:\n    pass",
        "try:\n    pcb.call(fail)\nexcept Boom:\n    pass",
        ns,
        setup_ours="cb.force_closed()",
        setup_peer="pcb.close()",
        min_time=min_time,
        repeats=repeats,
        max_number=_MAX_FAILURES,
    )
    if cb.state != "closed" or pcb.current_state != "closed":
        raise RuntimeError(
            f"a breaker opened during the failure benchmark: ours={cb.state}, "
            f"pybreaker={pcb.current_state}"
        )
    rows.append(_row("failure: call(raises), caught", o, p, peer_name, 5, group))

    # Rejection while open: each side raises its own rejection type, the caller catches it.
    cb, pcb = fresh()
    cb.force_open()
    pcb.open()
    ns = {
        "cb": cb,
        "pcb": pcb,
        "noop": noop,
        "Rejected": Rejected,
        "CBError": pybreaker.CircuitBreakerError,
    }
    o, p = time_pair(
        "try:\n    cb.call(noop)\nexcept Rejected:\n    pass",
        "try:\n    pcb.call(noop)\nexcept CBError:\n    pass",
        ns,
        min_time=min_time,
        repeats=repeats,
    )
    if cb.state != "open" or pcb.current_state != "open":
        raise RuntimeError(
            f"a breaker left the open state: ours={cb.state}, pybreaker={pcb.current_state}"
        )
    rows.append(_row("open: call rejected, caught", o, p, peer_name, 10, group))
    return rows


def run_retry(min_time: float, repeats: int) -> list[Row]:
    import reliability_lab as rl
    import tenacity

    peer_name = f"tenacity {metadata.version('tenacity')}"

    @rl.Retry(max_attempts=3)
    def ours() -> None:
        return None

    @tenacity.retry(stop=tenacity.stop_after_attempt(3))
    def peer() -> None:
        return None

    ns = {"ours": ours, "peer": peer}
    o, p = time_pair("ours()", "peer()", ns, min_time=min_time, repeats=repeats)
    return [_row("retry(max_attempts=3), succeeds", o, p, peer_name, 30, "retry")]
