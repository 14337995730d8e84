"""Seed presets: the settings of each seed article, by name, so that a reader can reproduce them.

The lab was seeded by four articles (``/work/shared/seeds/`` in the project's workspace). Each
preset holds the numbers its article states — retry, backoff, retryable outcomes, breaker,
bulkhead, timeouts — as ready-made lab objects::

    import reliability_lab as rl
    from reliability_lab import presets

    rl.simulate(presets.go_lab_scenario(duration=30, seed=1))
    sc = presets.microservices_scenario().replace({"user_service.faults.failure_rate": 0.2})
    retry = presets.pricing_retry(on_retry=print)       # a live Retry for your own code
    presets.pricing_retry_config()                      # ... and its settings (a RetryConfig)
    presets.preset("002").differences                   # where the article and the lab differ

========================  =========  =============================================================
preset                    seed       functions
========================  =========  =============================================================
``go_lab``                000, 001   :func:`go_lab_retry`, :func:`go_lab_breaker`,
                                     :func:`go_lab_payment`, :func:`go_lab_scenario`
``microservices``         002        :func:`microservices_retry`, :func:`microservices_breaker`,
                                     :func:`microservices_bulkhead`,
                                     :func:`microservices_dependency`,
                                     :func:`microservices_scenario`
``pricing``               003        :func:`pricing_retry`, :func:`pricing_breaker`,
                                     :func:`pricing_scenario`
========================  =========  =============================================================

Where an article is silent (arrival rate, workers, latencies, failure rates of 002 and 003) the
lab's defaults stand; where it states a value that differs from the lab's default, the preset
takes the article's and :attr:`Preset.differences` lists it (the README's "Seed presets" table
is that list). :attr:`Preset.choices` lists the values a preset had to pick because the article
does not give them, and :attr:`Preset.not_expressible` what the lab cannot reproduce exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reliability_lab.backoff import Backoff
from reliability_lab.breaker import Breaker
from reliability_lab.bulkhead import BulkheadConfig
from reliability_lab.retry import DEFAULT_RETRY_ON, Retry, RetryConfig
from reliability_lab.scenario import Dependency, Fallback, Faults, Scenario


@dataclass(frozen=True)
class Difference:
    """A setting whose value in a seed article differs from the lab's default.

    Attributes:
        path: the setting's dotted path in the preset's scenario, e.g.
            ``"payment.breaker.open_for"`` or ``"order_deadline"``.
        article: the article's value (what the preset uses).
        lab_default: the value the lab uses when nothing is set.
        note: where the article states it, or a caveat.
    """

    path: str
    article: object
    lab_default: object
    note: str = ""


@dataclass(frozen=True)
class Preset:
    """One seed article's settings.

    Attributes:
        name: the preset's name (``"go_lab"``, ``"microservices"``, ``"pricing"``).
        seeds: the seed files it comes from.
        title: what the article is about.
        retry: builds the article's retry, a runtime :class:`Retry` (keyword arguments go to
            :meth:`Retry.from_config`, e.g. a clock); the scenario holds its
            :class:`RetryConfig`.
        breaker: builds the article's breaker.
        scenario: builds a scenario with the article's settings (keyword arguments replace
            top-level :class:`Scenario` fields).
        differences: the article's values that differ from the lab's defaults.
        choices: values the article does not state, and what the preset uses instead.
        not_expressible: what the lab's configuration cannot reproduce exactly.
    """

    name: str
    seeds: tuple[str, ...]
    title: str
    retry: Callable[..., Retry]
    breaker: Callable[[], Breaker]
    scenario: Callable[..., Scenario]
    differences: tuple[Difference, ...]
    choices: tuple[str, ...]
    not_expressible: tuple[str, ...]


# ------------------------------------------------------------------------------------------------
# Seeds 000 and 001: the go-reliability-lab (its Go build log, and its language-agnostic companion)

GO_LAB_FAILURE_RATE = 0.3
"""The go-lab's payment simulator fails this fraction of charges (seeds 000 and 001)."""

GO_LAB_RETRY_ON: tuple[str, ...] = ("timeout", "connection_reset", "error", "4xx", "5xx")
"""Every failure the lab can produce: the go-lab retries any error its payment call returns, and
stops only on a breaker rejection (which the lab never retries anyway)."""


def go_lab_retry_config() -> RetryConfig:
    """The go-lab's retry (seed 000): 4 attempts, i.e. one call and 3 retries, every failure but
    a breaker rejection retried.

    The article gives no backoff numbers (only "increasing delays"); the preset uses the demo's
    exponential backoff from 0.1 s, doubling, capped at 2 s, with full jitter.

    Differs from the lab's defaults: ``max_attempts`` (3), ``retry_on`` (timeouts, connection
    errors, 429, 500, 502, 503, 504), ``backoff.max_delay`` (30 s).
    """
    return RetryConfig(
        max_attempts=4,
        backoff=Backoff(initial=0.1, multiplier=2.0, max_delay=2.0, jitter="full"),
        retry_on=GO_LAB_RETRY_ON,
    )


def go_lab_retry(**live: Any) -> Retry:
    """A :class:`Retry` with :func:`go_lab_retry_config` (``live`` goes to
    :meth:`Retry.from_config`: ``clock``, ``seed``, ``on_retry``...), for your own code."""
    return Retry.from_config(go_lab_retry_config(), **live)


def go_lab_breaker() -> Breaker:
    """The go-lab's breaker (seeds 000 and 001): opens after 5 consecutive failures; half-open,
    it lets one probe through, which closes it or opens it again.

    Every stated value is also the lab's default. The article does not state the open time; the
    preset keeps the lab's 5 s.
    """
    return Breaker(consecutive_failures=5, open_for=5.0, half_open_max_calls=1,
                   success_threshold=1)


def go_lab_payment() -> Dependency:
    """The go-lab's payment dependency (seeds 000 and 001): it fails 30% of the charges, and is
    called through retry wrapping the breaker (a breaker rejection stops the retry loop at once).

    Differs from the lab's defaults: ``faults.failure_rate`` (0), ``retry`` (none), ``breaker``
    (none), ``charges`` (False). Latency is the lab's default (10 ms): the articles give none.
    """
    return Dependency(
        "payment",
        faults=Faults(failure_rate=GO_LAB_FAILURE_RATE),
        retry=go_lab_retry_config(),
        breaker=go_lab_breaker(),
        composition="retry_outside_breaker",
        charges=True,
    )


def go_lab_scenario(**fields: Any) -> Scenario:
    """The go-lab's pipeline (seeds 000 and 001): orders go through a bounded queue to a worker
    pool that charges :func:`go_lab_payment`. ``fields`` replace top-level scenario fields
    (``duration``, ``seed``, ``workers``...); the articles give no pipeline sizes, so the lab's
    defaults stand.
    """
    return Scenario(dependencies=(go_lab_payment(),), **fields)


_GO_LAB = Preset(
    name="go_lab",
    seeds=("000_abd0c999736e776c.txt", "001_4597ba723a938611.txt"),
    title="go-reliability-lab: an order pipeline whose payment call fails 30% of the time",
    retry=go_lab_retry,
    breaker=go_lab_breaker,
    scenario=go_lab_scenario,
    differences=(
        Difference("payment.faults.failure_rate", GO_LAB_FAILURE_RATE, 0.0,
                   "the payment simulator fails ~30% of charges"),
        Difference("payment.retry.max_attempts", 4, 3,
                   "one call and three retries"),
        Difference("payment.retry.retry_on", GO_LAB_RETRY_ON, DEFAULT_RETRY_ON,
                   "every error is retried; only a breaker rejection is permanent"),
    ),
    choices=(
        "backoff: the article gives none; 0.1 s doubling, capped at 2 s, full jitter (the demo's)",
        "breaker open time: not stated; the lab's 5 s",
        "latency, workers, queue, arrivals: not stated; the lab's defaults",
    ),
    not_expressible=(),
)

# ------------------------------------------------------------------------------------------------
# Seed 002: resilient microservices (breaker-gated retries, bulkheads, deadlines, degradation)

MICROSERVICES_RETRY_ON: tuple[str, ...] = (
    "timeout", "connection_reset", "408", "425", "429", "500", "502", "503", "504",
)
"""Seed 002's retryable outcomes: network timeouts, refused/reset connections and broken pipes
(all ``connection_reset`` in the lab) and the statuses of its status classifier."""


def microservices_retry_config() -> RetryConfig:
    """Seed 002's retry: 3 attempts in all, backoff from 0.1 s doubling up to 5 s, each delay
    multiplied by a uniform factor in [0.5, 1.5] (randomization factor 0.5, the lab's
    ``"proportional"`` jitter), retrying timeouts, connection errors and 408, 425, 429, 500,
    502, 503, 504.

    Differs from the lab's defaults: ``backoff.max_delay`` (30 s), ``backoff.jitter`` (full),
    ``retry_on`` (no 408 or 425). The article's prose rule names only 502/503/504 among the
    statuses; the preset follows its classifier code, which also lists 408, 425, 429 and 500.
    """
    return RetryConfig(
        max_attempts=3,
        backoff=Backoff(initial=0.1, multiplier=2.0, max_delay=5.0, jitter="proportional",
                        jitter_factor=0.5),
        retry_on=MICROSERVICES_RETRY_ON,
    )


def microservices_retry(**live: Any) -> Retry:
    """A :class:`Retry` with :func:`microservices_retry_config` (``live`` goes to
    :meth:`Retry.from_config`: ``clock``, ``seed``, ``on_retry``...), for your own code."""
    return Retry.from_config(microservices_retry_config(), **live)


def microservices_breaker() -> Breaker:
    """Seed 002's breaker: opens after 5 consecutive failures, stays open 10 s, then admits one
    probe at a time and closes after 2 successes in a row (any failure reopens it).

    Differs from the lab's defaults: ``open_for`` (5 s), ``success_threshold`` (1).
    """
    return Breaker(consecutive_failures=5, open_for=10.0, half_open_max_calls=1,
                   success_threshold=2)


def microservices_bulkhead() -> BulkheadConfig:
    """Seed 002's bulkhead: 20 concurrent calls and 20 waiting; a caller waits for a slot until
    its deadline (no wait limit of its own).

    Differs from the lab's defaults: ``max_concurrent`` (10), ``max_waiting`` (0).
    """
    return BulkheadConfig(max_concurrent=20, max_waiting=20, max_wait=None)


def microservices_dependency(name: str = "user_service") -> Dependency:
    """Seed 002's client stack: bulkhead → breaker → retry → 500 ms per attempt, the breaker
    admitting the whole retry loop once and recording its final result. A read (the article's
    retries are for idempotent calls), so it does not charge.

    Differs from the lab's defaults: ``composition`` (retry outside the breaker),
    ``attempt_timeout`` (none), and the policies above (none by default).
    """
    return Dependency(
        name,
        retry=microservices_retry_config(),
        breaker=microservices_breaker(),
        bulkhead=microservices_bulkhead(),
        attempt_timeout=0.5,
        composition="breaker_outside_retry",
    )


def microservices_scenario(**fields: Any) -> Scenario:
    """Seed 002's service: each order calls :func:`microservices_dependency` under a 2 s
    end-to-end deadline set at the edge. ``fields`` replace top-level scenario fields.

    Differs from the lab's defaults: ``order_deadline`` (none).
    """
    merged: dict[str, Any] = {"order_deadline": 2.0, **fields}
    return Scenario(dependencies=(microservices_dependency(),), **merged)


_MICROSERVICES = Preset(
    name="microservices",
    seeds=("002_6232bec0141b9e87.txt",),
    title="Resilient microservices: breaker-gated retries, bulkheads, deadlines, degradation",
    retry=microservices_retry,
    breaker=microservices_breaker,
    scenario=microservices_scenario,
    differences=(
        Difference("user_service.retry.backoff.max_delay", 5.0, 30.0, "backoff capped at 5 s"),
        Difference("user_service.retry.backoff.jitter", "proportional", "full",
                   "randomization factor 0.5: delay x U(0.5, 1.5)"),
        Difference("user_service.retry.retry_on", MICROSERVICES_RETRY_ON, DEFAULT_RETRY_ON,
                   "adds 408 and 425 (its status classifier)"),
        Difference("user_service.breaker.open_for", 10.0, 5.0, "open 10 s before probing"),
        Difference("user_service.breaker.success_threshold", 2, 1,
                   "2 successes in half-open to close"),
        Difference("user_service.composition", "breaker_outside_retry", "retry_outside_breaker",
                   "the breaker wraps the retry loop"),
        Difference("user_service.bulkhead.max_concurrent", 20, 10, "20 concurrent calls"),
        Difference("user_service.bulkhead.max_waiting", 20, 0, "20 waiting calls"),
        Difference("user_service.attempt_timeout", 0.5, 0.0, "500 ms HTTP client timeout"),
        Difference("order_deadline", 2.0, 0.0, "2 s deadline at the edge"),
    ),
    choices=(
        "faults, latency, workers, queue, arrivals: not stated; the lab's defaults",
        "no fallback: the article's wiring example has none (and writes must not degrade)",
    ),
    not_expressible=(
        "breaker failures: the article's HTTP client counts 5xx and transport errors only; the "
        "lab's breaker also counts 429 as a failure",
    ),
)

# ------------------------------------------------------------------------------------------------
# Seed 003: retry, circuit breaker and timeout hierarchy (a pricing call with a fallback)

PRICING_RETRY_ON: tuple[str, ...] = ("timeout", "connection_reset", "error", "5xx")
"""Seed 003's retryable outcomes: any 5xx and any error that is not an HTTP 4xx, a cancellation,
the caller's deadline or an open breaker (the last three are never retried in the lab)."""


def pricing_retry_config() -> RetryConfig:
    """Seed 003's retry: 5 attempts, backoff from 0.1 s doubling up to 30 s, each delay moved by
    a random amount of up to half of it either way (the lab's ``"proportional"`` jitter with
    factor 0.5), retrying every 5xx and every non-HTTP error, no 4xx.

    Differs from the lab's defaults: ``max_attempts`` (3), ``backoff.jitter`` (full),
    ``retry_on`` (the lab retries 429 but no other 4xx, no 501/505+, and no plain errors).
    The article's text says the jitter is a quarter of the delay either way, but its code
    draws an offset of up to half the delay with a random sign; the preset follows the code.
    """
    return RetryConfig(
        max_attempts=5,
        backoff=Backoff(initial=0.1, multiplier=2.0, max_delay=30.0, jitter="proportional",
                        jitter_factor=0.5),
        retry_on=PRICING_RETRY_ON,
    )


def pricing_retry(**live: Any) -> Retry:
    """A :class:`Retry` with :func:`pricing_retry_config` (``live`` goes to
    :meth:`Retry.from_config`: ``clock``, ``seed``, ``on_retry``...), for your own code."""
    return Retry.from_config(pricing_retry_config(), **live)


def pricing_breaker() -> Breaker:
    """Seed 003's breaker: opens after 5 failures, stays open 30 s, lets one request through to
    test recovery, and closes after 2 successes.

    Differs from the lab's defaults: ``open_for`` (5 s), ``success_threshold`` (1).
    """
    return Breaker(consecutive_failures=5, open_for=30.0, half_open_max_calls=1,
                   success_threshold=2)


def pricing_scenario(**fields: Any) -> Scenario:
    """Seed 003's request: a 5 s deadline; the pricing call (500 ms timeout, retry wrapping the
    breaker) falls back to a default price when it fails; then the inventory check (200 ms
    timeout), whose failure fails the request. ``fields`` replace top-level scenario fields.

    Differs from the lab's defaults: ``order_deadline`` (none), ``attempt_timeout`` (none),
    ``pricing.fallback`` (none). The deadline still ends an order as failed, never as a
    degraded success: the fallback covers a failing dependency, not a caller out of time.
    """
    pricing = Dependency(
        "pricing",
        retry=pricing_retry_config(),
        breaker=pricing_breaker(),
        attempt_timeout=0.5,
        composition="retry_outside_breaker",
        fallback=Fallback("default"),
    )
    inventory = Dependency("inventory", attempt_timeout=0.2)
    merged: dict[str, Any] = {"order_deadline": 5.0, **fields}
    return Scenario(dependencies=(pricing, inventory), **merged)


_PRICING = Preset(
    name="pricing",
    seeds=("003_88bb26381f07a652.txt",),
    title="Retry, circuit breaker and timeout hierarchy around a pricing service",
    retry=pricing_retry,
    breaker=pricing_breaker,
    scenario=pricing_scenario,
    differences=(
        Difference("pricing.retry.max_attempts", 5, 3, "5 attempts"),
        Difference("pricing.retry.backoff.jitter", "proportional", "full",
                   "delay +/- up to delay/2 (the code; its comment says +/-25%)"),
        Difference("pricing.retry.retry_on", PRICING_RETRY_ON, DEFAULT_RETRY_ON,
                   "retries 5xx and plain errors, never a 4xx (so not 429)"),
        Difference("pricing.breaker.open_for", 30.0, 5.0, "open 30 s"),
        Difference("pricing.breaker.success_threshold", 2, 1, "2 successes to close"),
        Difference("pricing.attempt_timeout", 0.5, 0.0, "pricing call 500 ms"),
        Difference("inventory.attempt_timeout", 0.2, 0.0, "inventory call 200 ms"),
        Difference("pricing.fallback.kind", "default", "none", "a fallback price on failure"),
        Difference("order_deadline", 5.0, 0.0, "the user's 5 s request deadline"),
    ),
    choices=(
        "retry and breaker on the pricing call (the article's breaker example guards pricing); "
        "none on inventory",
        "faults, latency, workers, queue, arrivals: not stated; the lab's defaults",
    ),
    not_expressible=(
        "the 500 ms pricing timeout bounds the whole call in the article, retries included; "
        "the lab's attempt_timeout bounds each attempt (the 5 s deadline still bounds the order)",
        "the article's code counts failures since the breaker last closed (a success in the "
        "closed state does not reset them); the preset follows its prose, 5 consecutive failures",
        "the article's code admits every call while half-open; the preset follows its prose, one",
        "the article's code caps the delay before jitter (up to 45 s); the lab caps after it",
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (_GO_LAB, _MICROSERVICES, _PRICING)}
"""Every preset by name."""

_BY_SEED = {"000": _GO_LAB, "001": _GO_LAB, "002": _MICROSERVICES, "003": _PRICING}


def preset(name: str) -> Preset:
    """A preset by name (``"go_lab"``, ``"microservices"``, ``"pricing"``) or by seed number
    (``"000"`` to ``"003"``); ValueError naming the choices otherwise."""
    found = PRESETS.get(name) or _BY_SEED.get(name)
    if found is None:
        shown = ", ".join(repr(n) for n in (*PRESETS, *_BY_SEED))
        raise ValueError(f"preset must be one of {shown}, got {name!r}")
    return found


__all__ = [
    "GO_LAB_FAILURE_RATE",
    "GO_LAB_RETRY_ON",
    "MICROSERVICES_RETRY_ON",
    "PRESETS",
    "PRICING_RETRY_ON",
    "Difference",
    "Preset",
    "go_lab_breaker",
    "go_lab_payment",
    "go_lab_retry",
    "go_lab_retry_config",
    "go_lab_scenario",
    "microservices_breaker",
    "microservices_bulkhead",
    "microservices_dependency",
    "microservices_retry",
    "microservices_retry_config",
    "microservices_scenario",
    "preset",
    "pricing_breaker",
    "pricing_retry",
    "pricing_retry_config",
    "pricing_scenario",
]
