"""The live engine exports each token-bucket retry budget's level (what the control room draws)."""

from __future__ import annotations

import reliability_lab as rl
from prometheus_client.parser import text_string_to_metric_families


def test_budget_tokens_gauge() -> None:
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=10.0),
        duration=1.0,
        workers=2,
        dependencies=[
            rl.Dependency(
                "payment",
                faults=rl.Faults(latency=rl.Constant(0.001)),
                retry=rl.RetryConfig(max_attempts=3),
                budget=rl.TokenBucketConfig(max_tokens=37, token_ratio=0.1),
            ),
            rl.Dependency("inventory", faults=rl.Faults(latency=rl.Constant(0.001))),
        ],
    )
    with rl.Lab(sc) as lab:
        families = {f.name: f for f in text_string_to_metric_families(lab.metrics_text())}
    samples = families["rlab_retry_budget_tokens"].samples
    assert [(s.labels, s.value) for s in samples] == [({"dependency": "payment"}, 37.0)]
