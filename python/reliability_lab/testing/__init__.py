"""The lab in your test suite: assertions, fault injection, Hypothesis strategies, and a pytest
plugin.

* :func:`assert_slo` / :func:`assert_recovers`: objectives judged over replications, failing
  with the figure, its interval, the seeds and a rerun line (:mod:`.assertions`).
* :class:`FaultInjector`: the lab's fault models applied to your own callables, ``httpx``
  clients and ``requests`` sessions, deterministic and seeded (:mod:`.faults`).
* ``st_scenario``, ``st_faults``, ``st_breaker``, ... : Hypothesis strategies, valid by
  construction (:mod:`.strategies`; needs ``hypothesis``, imported on first use).
* the fixtures ``rl_clock``, ``rl_simulate``, ``rl_inject``, ``rl_lab``, ``rl_service``
  (:mod:`.plugin`, loaded by pytest through the package's ``pytest11`` entry point).
"""

from __future__ import annotations

from typing import Any

from reliability_lab.testing.assertions import (
    ALIASES,
    SLOError,
    assert_recovers,
    assert_slo,
    describe,
    rerun_code,
    scenario_diff,
)
from reliability_lab.testing.faults import (
    Decision,
    FaultInjector,
    InjectedConnectionReset,
    InjectedFault,
    InjectedHTTPError,
    InjectedTimeout,
    InjectionStats,
    inject,
)


def __getattr__(name: str) -> Any:
    # The strategies need hypothesis, which a user of the assertions alone may not have.
    if name.startswith("st_"):
        from reliability_lab.testing import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALIASES",
    "Decision",
    "FaultInjector",
    "InjectedConnectionReset",
    "InjectedFault",
    "InjectedHTTPError",
    "InjectedTimeout",
    "InjectionStats",
    "SLOError",
    "assert_recovers",
    "assert_slo",
    "describe",
    "inject",
    "rerun_code",
    "scenario_diff",
]
