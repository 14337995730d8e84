"""The figures of docs/overload_control.md ("Criticality and load shedding").

    PYTHONPATH=build/dev-NAME/stage .venv/bin/python examples/load_shedding.py

Simulated engine, seed 7, 60 s; 8 workers at 80 ms (exponential): a capacity of 100 orders/s.
"""

from __future__ import annotations

import dataclasses

import reliability_lab as rl


def scenario(shedding: rl.Shedding, rate: float) -> rl.Scenario:
    pay = rl.Dependency("payment", faults=rl.Faults(latency=rl.Exponential(mean=0.08)))
    return rl.Scenario(
        arrivals=rl.Poisson(rate=rate), workers=8, queue_capacity=64, duration=60.0, seed=7,
        sample_every=0.0, dependencies=[pay], intake=rl.Intake(shedding=shedding),
    )


def main() -> None:
    shed = rl.Shedding(
        critical=rl.ShedClass(0.3, 1.0), default=rl.ShedClass(0.3, 0.8),
        sheddable=rl.ShedClass(0.4, 0.5), fair_share_above=None,
    )
    fifo = rl.Shedding(
        critical=rl.ShedClass(0.3, 1.0), default=rl.ShedClass(0.3, 1.0),
        sheddable=rl.ShedClass(0.4, 1.0), fair_share_above=None,
    )
    print("2x overload (200 orders/s offered):")
    for name, sh in (("shedding", shed), ("fifo", fifo)):
        res = rl.simulate(scenario(sh, 200.0))
        assert res.classes is not None
        print(f"  {name}: goodput {res.summary['goodput']:.1f}/s")
        print(res.classes[["arrived", "completed", "success_rate", "latency_p99"]].round(3))
    noisy = rl.Shedding(
        default=rl.ShedClass(1.0, 1.0), fair_share_above=0.5,
        tenants=(rl.Tenant("noisy", 1.0, 5.0), rl.Tenant("a"), rl.Tenant("b")),
    )
    print("a noisy tenant sending 10x its share (467 orders/s offered):")
    unfair = dataclasses.replace(noisy, fair_share_above=None)
    for name, sh in (("fair", noisy), ("unfair", unfair)):
        res = rl.simulate(scenario(sh, 1000.0 * 7 / 15))
        assert res.tenants is not None
        share = res.tenants["completed"] / res.tenants["completed"].sum()
        print(f"  {name}: share of completions", share.round(3).to_dict())


if __name__ == "__main__":
    main()
