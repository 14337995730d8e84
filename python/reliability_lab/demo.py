"""The main demo: ``python -m reliability_lab.demo`` (or ``bash .ci/lab demo``).

Part 1 replays the seed lab's story with the policies on their own, on a manual clock (so it runs
instantly and reads like a log): a payment dependency that fails 30% of the time, retries with
jittered backoff, a breaker that opens after 5 consecutive failures, a breaker rejection that
stops the retry loop at once, half-open probing, recovery.

Part 2 runs the order pipeline in virtual time: 60 s of orders at 200/s against the same payment
dependency with an outage from 20 s to 35 s, without and with the patterns, and prints what
happened to the orders.

Part 3 runs a shorter version on the live engine: real threads, real sleeps, the outage on the
wall clock. Breaker transitions print as they happen; then a few of the Prometheus metrics the lab
exposes, the graceful shutdown's report, and the run's summary.
"""

from __future__ import annotations

import argparse
import random
import sys

from reliability_lab import presets
from reliability_lab.backoff import Backoff
from reliability_lab.breaker import Breaker, CircuitBreaker, Transition
from reliability_lab.clock import ManualClock
from reliability_lab.errors import Rejected, RetryError
from reliability_lab.retry import RetryConfig


class PaymentError(Exception):
    """The simulated payment provider answered 503."""

    status_code = 503


def part1(seed: int, orders: int, out: list[str]) -> None:
    """The policies alone: retry around the breaker around a flaky payment call."""
    clock = ManualClock()
    rnd = random.Random(seed)
    state = {"down": False}

    def charge(order: int) -> str:
        clock.advance(0.05)  # the call takes 50 ms
        if state["down"] or rnd.random() < 0.3:
            raise PaymentError(f"payment failed for order {order}")
        return f"charged order {order}"

    def log(msg: str) -> None:
        out.append(f"[t={clock.now():7.3f}s] {msg}")

    def on_transition(t: Transition) -> None:
        log(f"breaker {t.breaker}: {t.from_state} -> {t.to_state}")

    # The seed lab's settings (seeds 000/001): see reliability_lab.presets.
    breaker = CircuitBreaker(
        presets.go_lab_breaker(), name="payment", clock=clock, listeners=[on_transition]
    )

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        log(f"  attempt {attempt} failed ({exc}); retrying in {delay * 1000:.0f} ms")

    retry = presets.go_lab_retry(clock=clock, seed=seed, on_retry=on_retry)
    for order in range(1, orders + 1):
        if order == 15:
            state["down"] = True
            log("--- the payment provider goes down ---")
        if order == 28:
            state["down"] = False
            log("--- the payment provider recovers ---")
        try:
            result = retry.call(breaker.call, charge, order)
            log(f"order {order}: {result}")
        except Rejected as e:
            log(f"order {order}: rejected at once, retry loop stopped ({type(e).__name__})")
        except RetryError as e:
            log(f"order {order}: gave up after {e.attempts} attempts ({e.reason})")
        clock.advance(0.5)
    stats = retry.stats()
    snap = breaker.snapshot()
    out.append(
        f"retry: {stats.succeeded} succeeded, {stats.exhausted} exhausted, {stats.permanent} "
        f"permanent, {stats.retries} retries; breaker: {snap['transitions']} transitions, "
        f"{snap['rejected_open']} rejected open, {snap['rejected_half_open_full']} half-open-full"
    )


def part2(seed: int, out: list[str]) -> None:
    """The pipeline in virtual time: the same dependency, with and without the patterns."""
    try:
        from reliability_lab import scenario as rs
        from reliability_lab.sim import simulate
    except ImportError:  # the simulated engine is optional in a partial build
        out.append("(the simulated engine is not available in this build)")
        return

    # The seed lab's pipeline and payment policies (presets.go_lab_scenario), with a pipeline
    # size, latencies, a deadline and an outage of the demo's choosing.
    seed_lab = presets.go_lab_scenario(
        arrivals=rs.Poisson(rate=200),
        duration=60.0,
        workers=16,
        queue_capacity=256,
        seed=seed,
        order_deadline=2.0,
    ).replace(
        {
            "payment.faults.latency": rs.Exponential(mean=0.05),
            "payment.faults.phases": (rs.Outage(start=20.0, end=35.0),),
            "payment.attempt_timeout": 0.5,
        }
    )
    base = seed_lab.replace({"payment.retry": None, "payment.breaker": None})
    retry = seed_lab.get("payment.retry")
    variants = {
        "no retry, no breaker": base,
        "retry x4": base.replace({"payment.retry": retry}),
        "retry x4 + breaker(5 in a row)": seed_lab,
        "retry x4 + breaker(rate>=60%)": base.replace(
            {
                "payment.retry": retry,
                "payment.breaker": Breaker(
                    consecutive_failures=0, failure_rate_threshold=0.6, window_size=100,
                    minimum_calls=20,
                ),
            }
        ),
    }
    header = (f"{'configuration':31} {'success':>8} {'p99 (s)':>8} {'calls/order':>12} "
              f"{'expired':>8} {'rejected':>9} {'trips':>6}")
    out.append(header)
    out.append("-" * len(header))
    for name, sc in variants.items():
        s = simulate(sc).summary
        out.append(
            f"{name:31} {s['success_rate']:8.3f} {s['latency_p99']:8.3f} "
            f"{s['calls_per_order']:12.3f} {int(s['expired']):8d} {int(s['rejected']):9d} "
            f"{int(s['payment.trips']):6d}"
        )
    out.append(
        "success: completed / arrived; p99: completed orders; calls/order: payment attempts per "
        "order (load amplification);\nrejected: refused at intake (queue full); trips: breaker "
        "openings. With 30% background failures, 5 failures in a row happen often at 200 orders/s."
    )


def part3(seconds: float, seed: int) -> None:
    """The same story on real threads: transitions print live, then metrics and a shutdown."""
    import time

    from reliability_lab import scenario as rs
    from reliability_lab.live import Lab

    start, end = 0.3 * seconds, 0.6 * seconds
    sc = rs.Scenario(
        arrivals=rs.Poisson(rate=200),
        duration=seconds,
        workers=16,
        queue_capacity=256,
        seed=seed,
        order_deadline=2.0,
        dependencies=(
            rs.Dependency(
                "payment",
                faults=rs.Faults(
                    failure_rate=0.3,
                    latency=rs.Exponential(mean=0.02),
                    phases=(rs.Outage(start=start, end=end),),
                ),
                attempt_timeout=0.5,
                retry=RetryConfig(max_attempts=3, backoff=Backoff(initial=0.05, max_delay=0.5)),
                breaker=Breaker(
                    consecutive_failures=0, failure_rate_threshold=0.6, window_size=50,
                    minimum_calls=20, open_for=0.5,
                ),
            ),
        ),
    )
    print(f"outage on the wall clock from {start:.1f} s to {end:.1f} s; breaker transitions:")

    def show(t: float, dep: str, frm: str, to: str) -> None:
        print(f"  [t={t:6.3f}s] {dep}: {frm} -> {to}", flush=True)

    with Lab(sc, on_transition=show, log_interval=0.05, shutdown_timeout=2.0) as lab:
        lab.start_load()
        while lab.load_running:
            time.sleep(0.05)
        shown = (
            "rlab_worker_jobs_total",
            "rlab_retry_attempts_total",
            "rlab_breaker_transitions_total",
            "rlab_policy_rejections_total",
        )
        metrics = [
            line
            for line in lab.metrics_text().splitlines()
            if line.startswith(shown) and not line.endswith(" 0.0")
        ]
    report = lab.shutdown()
    print("a few metrics (lab.metrics_text(), also servable with lab.serve_metrics(port)):")
    for line in metrics[:16]:
        print("  " + line)
    print(
        f"shutdown: {report.finished_in_time} finished in the grace time, {report.cancelled} "
        f"cancelled, {report.elapsed:.3f} s"
    )
    s = lab.result.summary
    print(
        f"orders {int(s['arrived'])}: success {s['success_rate']:.3f}, calls/order "
        f"{s['calls_per_order']:.3f}, breaker trips {int(s['payment.trips'])}, "
        f"p99 {s['latency_p99']:.3f} s"
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the demo and prints it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument(
        "--live-seconds", type=float, default=6.0,
        help="seconds of load on the live engine in part 3 (0 skips it)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.live_seconds <= 3600:
        parser.error(f"--live-seconds must be in [0, 3600], got {args.live_seconds}")
    out: list[str] = ["== Part 1: retry -> breaker -> a payment call failing 30% of the time =="]
    part1(args.seed, args.orders, out)
    out.append("")
    out.append("== Part 2: 60 s of orders at 200/s, payment outage from 20 s to 35 s ==")
    part2(args.seed, out)
    print("\n".join(out), flush=True)
    if args.live_seconds > 0:
        print(f"\n== Part 3: the live engine, {args.live_seconds:g} s of orders on real threads ==")
        part3(args.live_seconds, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
