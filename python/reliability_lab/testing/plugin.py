"""The pytest plugin of reliability-lab, registered through the ``pytest11`` entry point (so
``pip install reliability-lab`` makes these fixtures available in every test session).

Fixtures (all prefixed ``rl_`` so that they never shadow a project's own):

* ``rl_clock``: a fresh :class:`~reliability_lab.clock.ManualClock` at 0.
* ``rl_simulate``: :func:`~reliability_lab.sim.simulate` that records every scenario it runs;
  when the test fails, the report gets a "reliability-lab runs" section with each run's seed and
  a line of Python that reruns it. ``pytest --rl-seed N`` runs every ``rl_simulate`` call of the
  session with seed ``N``.
* ``rl_inject``: ``rl_inject(faults, seed=0)`` makes a
  :class:`~reliability_lab.testing.faults.FaultInjector` on ``rl_clock``.
* ``rl_lab``: ``rl_lab(scenario, **lab_kwargs)`` starts a :class:`~reliability_lab.live.Lab`;
  every lab it started is shut down when the test ends, whatever happened.
* ``rl_service``: ``rl_service(scenario=None, *cli_args)`` starts ``reliability-lab serve`` on a
  temporary SQLite database and a free loopback port (``.url``), stopped at the end of the test;
  skipped when the service extra (FastAPI, uvicorn) is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reliability_lab.clock import ManualClock
from reliability_lab.live import Lab
from reliability_lab.scenario import Faults, Scenario
from reliability_lab.sim import Result, simulate
from reliability_lab.testing.assertions import rerun_code
from reliability_lab.testing.faults import FaultInjector

_RUNS = pytest.StashKey[list[Scenario]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability_lab", "reliability-lab")
    group.addoption(
        "--rl-seed",
        type=int,
        default=None,
        metavar="N",
        help="run every rl_simulate call with this seed (to rerun a reported failure)",
    )


class SeededSimulate:
    """``rl_simulate(scenario, seed=None, **simulate_kwargs)``: the scenario's own seed unless
    ``seed`` (or ``--rl-seed``) says otherwise; every scenario run is kept in :attr:`runs`."""

    def __init__(self, seed_override: int | None, runs: list[Scenario]) -> None:
        self.seed_override = seed_override
        self.runs = runs

    def __call__(self, scenario: Scenario, *, seed: int | None = None, **kwargs: Any) -> Result:
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
        if self.seed_override is not None:
            seed = self.seed_override
        if seed is not None and seed != scenario.seed:
            scenario = scenario.replace(seed=seed)
        self.runs.append(scenario)
        return simulate(scenario, **kwargs)


@pytest.fixture
def rl_clock() -> ManualClock:
    """A ManualClock at 0: policies and fault injectors on it never sleep."""
    return ManualClock(0.0)


@pytest.fixture
def rl_simulate(request: pytest.FixtureRequest) -> SeededSimulate:
    """simulate() that reports the seed and a rerun line of every run if the test fails."""
    runs: list[Scenario] = []
    request.node.stash[_RUNS] = runs
    return SeededSimulate(request.config.getoption("rl_seed"), runs)


@pytest.fixture
def rl_inject(rl_clock: ManualClock) -> Callable[..., FaultInjector]:
    """``rl_inject(faults, seed=0)``: a FaultInjector on the test's ``rl_clock``."""

    def make(faults: Faults, *, seed: int = 0) -> FaultInjector:
        return FaultInjector(faults, clock=rl_clock, seed=seed)

    return make


@pytest.fixture
def rl_lab() -> Iterator[Callable[..., Lab]]:
    """``rl_lab(scenario, **kwargs)``: a started Lab, shut down when the test ends."""
    labs: list[Lab] = []

    def start(scenario: Scenario, **kwargs: Any) -> Lab:
        lab = Lab(scenario, **kwargs)
        labs.append(lab)
        return lab.start()

    yield start
    errors = []
    for lab in labs:
        try:
            lab.shutdown(lab.shutdown_timeout)
        except Exception as e:  # shut every lab down before reporting
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def rl_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """``rl_service(scenario=None, *cli_args)``: ``reliability-lab serve`` on a temporary SQLite
    database; returns the process handle (``.url``, ``.log_text()``), stopped at the end."""
    from reliability_lab.service.harness import ServiceProcess

    procs: list[ServiceProcess] = []

    def start(scenario: Scenario | None = None, *args: str) -> ServiceProcess:
        for module in ("fastapi", "uvicorn"):
            pytest.importorskip(module, reason="rl_service needs reliability-lab[service]")
        work: Path = tmp_path_factory.mktemp("rl_service")
        cli = ["--ledger", str(work / "payments.ledger")]
        if scenario is not None:
            path = work / "scenario.json"
            path.write_text(scenario.to_json())
            cli += ["--scenario", str(path)]
        proc = ServiceProcess(
            database=str(work / "orders.sqlite3"), workdir=work, args=[*cli, *args]
        )
        procs.append(proc)
        return proc.start()

    yield start
    for proc in procs:
        proc.stop(timeout=30)


def _runs_section(runs: list[Scenario]) -> str:
    lines = []
    seen: set[str] = set()
    for sc in runs:
        code = rerun_code(sc, sc.seed)
        if code in seen:
            continue
        seen.add(code)
        lines.append(f"seed {sc.seed}: {code}")
    seeds = sorted({sc.seed for sc in runs})
    lines.append("(import reliability_lab as rl; pytest --rl-seed N reruns the test with seed N;"
                 f" seeds run: {seeds})")
    return "\n".join(lines)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        runs = item.stash.get(_RUNS, None)
        if runs:
            report.sections.append(("reliability-lab runs", _runs_section(runs)))
