"""Digests of fixed-seed single-service runs, to check that the service-graph engine leaves a
scenario without services bit-identical (tests/test_service_graph.py)."""

from __future__ import annotations

import hashlib

import reliability_lab as rl


def scenarios() -> dict[str, rl.Scenario]:
    retry = rl.RetryConfig(max_attempts=4, backoff=rl.Backoff(initial=0.01, max_delay=0.1))
    return {
        "retry_breaker": rl.Scenario(
            arrivals=rl.Poisson(200.0),
            duration=5.0,
            seed=7,
            order_deadline=1.0,
            dependencies=(
                rl.Dependency(
                    "payment",
                    faults=rl.Faults(failure_rate=0.3, latency=rl.Exponential(0.02)),
                    retry=retry,
                    breaker=rl.Breaker(consecutive_failures=5, open_for=0.5),
                    attempt_timeout=0.2,
                ),
                rl.Dependency("stock", faults=rl.Faults(latency=rl.Exponential(0.01))),
            ),
        ),
        "capacity_hedge": rl.Scenario(
            arrivals=rl.Poisson(150.0),
            duration=5.0,
            seed=3,
            workers=4,
            queue_capacity=16,
            release_worker_during_backoff=True,
            dependencies=(
                rl.Dependency(
                    "search",
                    faults=rl.Faults(
                        failure_rate=0.05,
                        latency=rl.Exponential(0.02),
                        capacity=rl.Capacity(max_in_service=3, max_queue=20),
                    ),
                    hedge=rl.Hedge(delay=0.03),
                    retry=retry,
                ),
            ),
        ),
        "closed_bulkhead": rl.Scenario(
            arrivals=rl.ClosedLoop(clients=20, think_time=rl.Exponential(0.05)),
            duration=5.0,
            seed=11,
            dependencies=(
                rl.Dependency(
                    "db",
                    faults=rl.Faults(failure_rate=0.1, latency=rl.Exponential(0.03)),
                    bulkhead=rl.BulkheadConfig(max_concurrent=3, max_wait=0.05),
                    retry=retry,
                ),
            ),
        ),
    }


def digest(result: rl.Result) -> str:
    h = hashlib.sha256()
    h.update(repr(sorted(result.summary.items())).encode())
    assert result.orders is not None
    h.update(result.orders.to_csv().encode())
    h.update(result.timeseries.to_csv().encode())
    h.update(result.events.to_csv().encode())
    return h.hexdigest()[:16]


if __name__ == "__main__":
    for name, sc in scenarios().items():
        print(f'    "{name}": "{digest(rl.simulate(sc))}",')
