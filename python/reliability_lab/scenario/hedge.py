"""Request patterns of a dependency call: hedging and fan-out with a quorum.

A call to a dependency with :class:`Hedge` or :class:`FanOut` is a *round* of copies. The rules,
the same in the C++ flow (``cpp/rlab/model/order_flow.cc``):

- every copy is an attempt for the breaker (with ``"retry_outside_breaker"`` each copy takes a
  permit and records its result; a cancelled copy records nothing), for the throttle and for
  ``attempt_timeout``;
- the retry loop and its budget count rounds: a hedged round fails only when every copy it sent
  failed, a fan-out round as soon as its quorum is out of reach; only then does the retry policy
  back off and start another round. gRPC's hedging policy (gRFC A6) forbids combining hedging
  with retries and sends the next hedge at once after a non-fatal failure; the lab lets both
  compose and leaves failures to the retry policy;
- the round is decided by its winner(s) at once: the other copies are cancelled, but the server
  finishes the work it started for them (``wasted_attempt_seconds``).
"""

from __future__ import annotations

from dataclasses import dataclass

from reliability_lab import _schema

_MAX_COPIES = 32  # the core's kMaxCopies
_MAX_WINDOW = 100_000


@dataclass(frozen=True)
class Hedge(_schema.Checked):
    """Hedged requests ("The Tail at Scale", Dean and Barroso 2013; gRFC A6): a call sends its
    first copy at once and another copy each time ``delay`` passes without an answer, up to
    ``max_hedges`` extra copies; the first success wins and the other copies are cancelled.

    A dependency that ``charges`` may be hedged only with ``idempotency_keys`` (each copy may
    charge); otherwise the :class:`~reliability_lab.Scenario` raises ValueError naming
    ``"<dependency>.hedge"``. Both engines run it; the live engine not yet on a dependency
    with a capacity limit (ValueError).

    Attributes:
        max_hedges: extra copies per call, in [1, 31].
        delay: seconds without an answer before the next copy, in (0, 1e6]; with a quantile,
            the delay used until the latency window is full.
        quantile: None for the fixed ``delay``; in (0, 1) to hedge after this quantile of the
            latencies of the last ``window`` successful attempts (e.g. 0.95).
        window: latencies kept for the quantile, in [1, 100000].
        budget_ratio: the hedge budget, a token bucket: every call adds ``budget_ratio`` tokens
            (up to ``budget_burst``; it starts full) and every hedge takes one, so hedges never
            exceed ``budget_burst + budget_ratio * calls``. In [0, 31]; None: no budget.
        budget_burst: the bucket's size, in [1, 1e9].
    """

    max_hedges: int = 1
    delay: float = 0.05
    quantile: float | None = None
    window: int = 100
    budget_ratio: float | None = 0.05
    budget_burst: float = 10.0


@dataclass(frozen=True)
class FanOut(_schema.Checked):
    """Fan-out with a quorum: a call sends ``copies`` copies at once and succeeds once
    ``quorum`` of them succeeded (its latency is the quorum-th fastest answer); it fails as soon
    as the quorum is out of reach, and the copies still outstanding are cancelled. ``quorum=1``
    is hedging at once, ``quorum=copies`` is fan-out-and-join.

    A dependency that ``charges`` may fan out only with ``idempotency_keys``. Both engines run
    it; the live engine not yet on a dependency with a capacity limit (ValueError).

    Attributes:
        copies: copies per call, in [1, 32].
        quorum: successes needed, in [1, copies].
    """

    copies: int = 2
    quorum: int = 1
