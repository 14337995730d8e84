"""Service graphs (issue #14): the schema of ``rl.Service`` and ``Dependency(service=...)``, the
validation of the graph as a whole, and the simulated engine running it."""

from __future__ import annotations

import pytest
import reliability_lab as rl

D = rl.Dependency


def _svc(name: str, *calls: str) -> rl.Service:
    deps = tuple(D(f"to_{c}", service=c) for c in calls) or (D("leaf"),)
    return rl.Service(name=name, dependencies=deps)


def test_single_service_scenario_is_unchanged() -> None:
    sc = rl.Scenario()
    assert sc.services == ()
    assert "services" in sc.to_dict() and sc.to_dict()["services"] == []
    # A dict written before service graphs (no "services", no "service") still reads.
    d = sc.to_dict()
    del d["services"]
    for dep in d["dependencies"]:
        del dep["service"]
    assert rl.Scenario.from_dict(d) == sc


def test_graph_round_trips_and_paths_name_services() -> None:
    sc = rl.Scenario(
        dependencies=(D("inv", service="inventory"),),
        services=(_svc("inventory", "db"), _svc("db")),
    )
    assert rl.Scenario.from_dict(sc.to_dict()) == sc
    assert rl.Scenario.from_json(sc.to_json()) == sc
    assert sc.get("services[inventory].dependencies[to_db].service") == "db"
    assert "services[db].dependencies[leaf].retry" in sc.paths()
    sc2 = sc.replace(
        {"services[db].workers": 3, "services[db].dependencies[leaf].attempt_timeout": 1}
    )
    assert sc2.get("services[db].workers") == 3
    assert sc2.services[1].dependencies[0].attempt_timeout == 1.0


@pytest.mark.parametrize(
    ("deps", "services", "message"),
    [
        (
            (D("payment"), D("inv", service="x")),
            (_svc("a"), _svc("b", "a")),
            "inv.service: unknown service 'x'; known: a, b",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a", "b"), _svc("b", "zz")),
            "services[b].dependencies[to_zz].service: unknown service 'zz'; known: a, b",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a", "b"), _svc("b", "c"), _svc("c", "b")),
            "services form a cycle: root → a → b → c → b",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a", "a"),),
            "services form a cycle: root → a → a",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a"), _svc("b")),
            "services[b] is unreachable",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a"), _svc("a")),
            'services[1].name "a" is already used by services[0]',
        ),
    ],
)
def test_graph_errors_name_the_path(
    deps: tuple[rl.Dependency, ...], services: tuple[rl.Service, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rl.Scenario(dependencies=deps, services=services)


def test_a_caller_has_no_fault_model_of_its_own() -> None:
    for bad in (
        {"faults": rl.Faults(failure_rate=0.1)},
        {"replicas": rl.Replicas(count=2)},
        {"charges": True},
    ):
        with pytest.raises(ValueError, match="must keep its default when service is set"):
            D("inv", service="a", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="service must be None or a service name"):
        D("inv", service="not a name")


def test_service_fields_are_checked() -> None:
    with pytest.raises(ValueError, match=r"workers must be an integer in \[1, 100000\]"):
        rl.Service(name="a", workers=0)
    with pytest.raises(ValueError, match="dependencies must have between 1 and 16"):
        rl.Service(name="a", dependencies=())
    with pytest.raises(ValueError, match=r'dependencies\[1\].name "x" is already used'):
        rl.Service(name="a", dependencies=(D("x"), D("x")))
    sc = rl.Scenario(dependencies=(D("inv", service="a"),), services=(_svc("a"),))
    with pytest.raises(ValueError, match=r"services\[a\]\.dependencies\[leaf\]\.attempt_timeout"):
        sc.replace({"services[a].dependencies[leaf].attempt_timeout": -1.0})
    d = sc.to_dict()
    d["services"][0]["deadline"] = -1.0
    with pytest.raises(ValueError, match=r"services\[a\]\.deadline"):
        rl.Scenario.from_dict(d)


def test_live_engine_refuses_services() -> None:
    sc = rl.Scenario(dependencies=(D("inv", service="a"),), services=(_svc("a"),))
    with pytest.raises(ValueError, match="services are simulator-only for now"):
        rl.Lab(sc)
