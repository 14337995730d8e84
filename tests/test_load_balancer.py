"""Load balancers and outlier ejection through the Python facade."""

from __future__ import annotations

import math

import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import _core
from reliability_lab.balancer import LB_KINDS, LoadBalancer, OutlierDetector


def test_exported_from_the_package() -> None:
    assert rl.LoadBalancer is LoadBalancer
    assert rl.OutlierDetector is OutlierDetector
    assert rl.LB_KINDS == ("round_robin", "random", "least_outstanding", "p2c", "peak_ewma")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"kind": "fastest"}, ValueError, "load_balancer.kind must be one of"),
        ({"kind": 3}, TypeError, "load_balancer.kind must be one of"),
        (
            {"replicas": 0},
            ValueError,
            "load_balancer.replicas must be an integer in [1, 100000], got 0",
        ),
        ({"replicas": "3"}, TypeError, "load_balancer.replicas must be an integer"),
        ({"decay": -1.0}, ValueError, "load_balancer.decay must be a finite number in (0, 1e+06]"),
        ({"panic_threshold": 150}, ValueError, "load_balancer.panic_threshold must be"),
        ({"seed": -1}, ValueError, "load_balancer.seed must be an integer in [0, 2**64)"),
        ({"outlier": object()}, TypeError, "load_balancer.outlier must be an OutlierDetector"),
    ],
)
def test_load_balancer_validation_names_path_range_and_value(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    args: dict[str, object] = {"kind": "p2c", "replicas": 3, **kwargs}
    with pytest.raises(error) as info:
        LoadBalancer(**args)  # type: ignore[arg-type]
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replicas": 0}, "outlier.replicas must be an integer in [1, 100000], got 0"),
        ({"consecutive_errors": -1}, "outlier.consecutive_errors must be an integer"),
        ({"interval": 0.0}, "outlier.interval must be a finite number in (0, 1e+06], got 0"),
        ({"max_ejection_percent": 101.0}, "outlier.max_ejection_percent must be"),
        ({"max_ejection_time": 5.0}, "outlier.max_ejection_time must be in [base_ejection_time"),
        ({"success_rate_stdev_factor": float("nan")}, "outlier.success_rate_stdev_factor"),
    ],
)
def test_outlier_validation_names_path_range_and_value(
    kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"replicas": 3, **kwargs}
    with pytest.raises(ValueError, match=None) as info:
        OutlierDetector(**args)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_mismatched_pool_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"load_balancer\.outlier\.replicas must equal"):
        LoadBalancer("p2c", 3, outlier=OutlierDetector(4))


def test_a_second_clock_is_refused() -> None:
    detector = OutlierDetector(3, clock=rl.ManualClock())
    with pytest.raises(ValueError, match=r"load_balancer\.clock must be the outlier detector's"):
        LoadBalancer("p2c", 3, outlier=detector, clock=rl.ManualClock())
    assert LoadBalancer("p2c", 3, outlier=detector, clock=detector.clock).replicas == 3


def test_bad_replica_index_raises() -> None:
    lb = LoadBalancer("round_robin", 2)
    with pytest.raises(ValueError, match=r"replica must be an integer in \[0, 1\], got 2"):
        lb.on_start(2)
    with pytest.raises(ValueError, match="latency"):
        lb.on_end(0, latency=-1.0)


def test_round_robin_order_and_manual_ejection() -> None:
    lb = LoadBalancer("round_robin", 3, clock=rl.ManualClock())
    assert [lb.pick() for _ in range(4)] == [0, 1, 2, 0]
    lb.set_ejected(1, True)
    assert [lb.pick() for _ in range(3)] == [2, 0, 2]


def test_call_reports_success_and_failure() -> None:
    clock = rl.ManualClock()
    lb = LoadBalancer("least_outstanding", 2, clock=clock, seed=3)

    def work(replica: int) -> int:
        clock.advance(0.25)
        return replica * 10

    result = lb.call(work)
    assert result in (0, 10)
    first = result // 10

    def boom(replica: int) -> int:
        raise RuntimeError(f"replica {replica} down")

    with pytest.raises(RuntimeError):
        lb.call(boom)
    loads = [lb.load(i) for i in range(2)]
    assert sum(x.ends for x in loads) == 2
    assert sum(x.errors for x in loads) == 1
    assert all(x.outstanding == 0 for x in loads)
    assert lb.load(first).ewma_latency == pytest.approx(0.25)


def test_peak_ewma_avoids_a_slow_replica() -> None:
    clock = rl.ManualClock()
    lb = LoadBalancer("peak_ewma", 2, clock=clock, seed=1, decay=10.0)
    for replica, latency in ((0, 2.0), (1, 0.01)):
        lb.on_start(replica)
        lb.on_end(replica, latency=latency)
    assert lb.cost(0) == pytest.approx(2.0)
    assert lb.cost(0, now=10.0) == pytest.approx(2.0 * math.exp(-1.0))
    assert {lb.pick() for _ in range(20)} == {1}


def test_outlier_ejection_and_return_through_the_balancer() -> None:
    clock = rl.ManualClock()
    detector = OutlierDetector(
        4,
        consecutive_errors=3,
        interval=1.0,
        base_ejection_time=5.0,
        max_ejection_percent=25.0,
        success_rate=False,
        clock=clock,
    )
    lb = LoadBalancer("round_robin", 4, outlier=detector)
    for _ in range(3):
        clock.advance(0.1)
        lb.on_start(2)
        lb.on_end(2, latency=0.01, ok=False)
    assert detector.ejected() == [2]
    assert detector.state(2).ejected_until == pytest.approx(5.3)
    assert 2 not in {lb.pick() for _ in range(9)}
    clock.advance_to(5.999)
    assert detector.is_ejected(2)
    clock.advance_to(6.0)
    assert 2 in {lb.pick() for _ in range(4)}
    events = detector.events()
    assert [(e.replica, e.ejected, e.reason) for e in events] == [
        (2, True, "consecutive_errors"),
        (2, False, "consecutive_errors"),
    ]
    assert events[0].time == pytest.approx(0.3)
    assert events[1].time == pytest.approx(6.0)


def test_success_rate_outlier() -> None:
    clock = rl.ManualClock()
    detector = OutlierDetector(
        5,
        consecutive_errors=0,
        interval=1.0,
        max_ejection_percent=100.0,
        success_rate_minimum_hosts=5,
        success_rate_request_volume=10,
        clock=clock,
    )
    for replica in range(5):
        for i in range(10):
            detector.record(replica, ok=replica != 4 or i < 5, now=0.5)
    assert detector.ejected(now=0.99) == []
    assert detector.ejected(now=1.0) == [4]
    assert detector.events()[0].reason == "success_rate"


def test_panic_and_no_replica() -> None:
    lb = LoadBalancer("random", 2, panic_threshold=0.0, seed=5)
    lb.set_ejected(0, True)
    lb.set_ejected(1, True)
    assert lb.pick(now=0.0) is None
    with pytest.raises(LookupError):
        lb.call(lambda r: r)
    panicky = LoadBalancer("random", 2, panic_threshold=100.0, seed=5)
    panicky.set_ejected(0, True)
    assert panicky.in_panic()
    assert {panicky.pick(now=0.0) for _ in range(30)} == {0, 1}
    assert panicky.panic_picks == 30


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["pick", "pick", "end_ok", "end_error", "end_error"]),
        st.integers(0, 1000),
        st.floats(0.0, 3.0, allow_nan=False),
    ),
    max_size=150,
)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(LB_KINDS),
    replicas=st.integers(1, 6),
    panic_threshold=st.sampled_from([0.0, 30.0, 50.0, 100.0]),
    max_ejection_percent=st.sampled_from([0.0, 34.0, 100.0]),
    success_rate=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
    ops=_OPS,
)
def test_properties_of_balancing_with_ejection(
    kind: str,
    replicas: int,
    panic_threshold: float,
    max_ejection_percent: float,
    success_rate: bool,
    seed: int,
    ops: list[tuple[str, int, float]],
) -> None:
    """Never an ejected replica unless in panic; outstanding never negative; every start ends
    or is still outstanding; picks are counted once."""
    clock = rl.ManualClock()
    detector = OutlierDetector(
        replicas,
        consecutive_errors=2,
        interval=1.0,
        base_ejection_time=2.0,
        max_ejection_time=6.0,
        max_ejection_percent=max_ejection_percent,
        success_rate=success_rate,
        success_rate_minimum_hosts=1,
        success_rate_request_volume=2,
        success_rate_stdev_factor=0.5,
        clock=clock,
    )
    lb = LoadBalancer(kind, replicas, outlier=detector, panic_threshold=panic_threshold, seed=seed)  # type: ignore[arg-type]
    in_flight: list[int] = []
    starts = [0] * replicas
    ends = [0] * replicas
    picks = 0
    for op, index, dt in ops:
        clock.advance(dt)
        if op == "pick":
            ejected = set(detector.ejected())  # runs the ticks due now, as pick would
            panic = lb.in_panic()
            chosen = lb.pick()
            if chosen is None:
                assert len(ejected) == replicas and not panic
                continue
            picks += 1
            assert 0 <= chosen < replicas
            if not panic:
                assert chosen not in ejected
            lb.on_start(chosen)
            starts[chosen] += 1
            in_flight.append(chosen)
        elif in_flight:
            replica = in_flight.pop(index % len(in_flight))
            lb.on_end(replica, latency=dt, ok=op == "end_ok")
            ends[replica] += 1
        else:
            lb.on_end(index % replicas, latency=dt)  # no matching start: ignored
    assert len(detector.ejected()) * 100 <= max(max_ejection_percent * replicas, 0)
    total_picks = 0
    for r in range(replicas):
        load = lb.load(r)
        assert load.outstanding >= 0
        assert load.starts == starts[r]
        assert load.ends == ends[r]
        assert load.starts == load.ends + load.outstanding
        assert load.outstanding == in_flight.count(r)
        total_picks += load.picks
    assert total_picks == picks


def test_native_balancer_reads_its_config_dict_by_its_table() -> None:
    """_core.LoadBalancer takes one dict read by its field table: a bad, missing or unknown key
    is refused naming load_balancer.<field>."""
    good = {"kind": "p2c", "replicas": 3, "decay": 10.0, "panic_threshold": 50.0}
    assert _core.LoadBalancer(good).replicas == 3
    cases = [
        ({**good, "kind": "fastest"}, "load_balancer.kind must be one of"),
        ({**good, "replicas": 0}, "load_balancer.replicas must be an integer in [1, 100000], got"),
        ({**good, "decay": 0.0}, "load_balancer.decay must be a finite number in (0, 1e+06]"),
        ({**good, "panic_threshold": -1.0}, "load_balancer.panic_threshold must be"),
        ({k: v for k, v in good.items() if k != "decay"}, "decay"),
        ({**good, "nope": 1}, "nope"),
    ]
    for config, message in cases:
        with pytest.raises(ValueError) as info:
            _core.LoadBalancer(config)
        assert message in str(info.value)
