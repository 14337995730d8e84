"""The exception hierarchy: created natively, re-exported by the Python layer, unchanged in use."""

from __future__ import annotations

import asyncio
import concurrent.futures
import pickle
import subprocess
import sys
import textwrap

import pytest
import reliability_lab as rl
from reliability_lab import _core, errors, live

NAMES = [
    "ReliabilityLabError",
    "Rejected",
    "BreakerOpen",
    "BreakerHalfOpenFull",
    "BulkheadFull",
    "BulkheadClosed",
    "Throttled",
    "Cancelled",
    "RetryError",
    "RetryExhausted",
    "DeadlineExceeded",
    "RetryBudgetExhausted",
    "ConfigTypeError",
]


@pytest.mark.parametrize("name", NAMES)
def test_one_class_everywhere(name: str) -> None:
    cls = getattr(_core, name)
    assert getattr(errors, name) is cls
    assert getattr(rl, name) is cls
    assert cls.__module__ == "reliability_lab.errors" and cls.__qualname__ == name
    assert cls.__doc__


def test_lab_closed_error_is_native_and_a_runtime_error() -> None:
    assert live.LabClosedError is _core.LabClosedError is rl.LabClosedError
    assert live.LabClosedError.__module__ == "reliability_lab.live"
    assert issubclass(live.LabClosedError, errors.ReliabilityLabError)
    assert issubclass(live.LabClosedError, RuntimeError)


def test_a_wrong_type_is_a_type_error_and_a_value_error() -> None:
    """ConfigTypeError: a TypeError (the value's type is wrong), and a ValueError, so that code
    catching a bad configuration as ValueError (every range error) catches it too. Raised the
    same way by the native reader, the Python checks and a scenario dict's deep leaves."""
    assert errors.ConfigTypeError.__bases__ == (TypeError, ValueError)
    assert not issubclass(errors.ConfigTypeError, errors.ReliabilityLabError)
    for build, message in (
        (lambda: rl.Breaker(open_for="5"), "open_for must be a finite number in (0, 1e+06]"),
        (lambda: rl.Breaker(window_size=5.0), "window_size must be an integer in"),
        (lambda: rl.Breaker(window=5.0), "window must be one of 'count', 'time', got 5.0"),
        (lambda: rl.Backoff(jitter=5), "jitter must be one of"),
        (lambda: rl.Dependency("x", faults=5), "faults must be a Faults, got 5"),
        (lambda: rl.Scenario(dependencies=5), "dependencies must be a sequence, got 5"),
        (lambda: rl.Retry(seed="1"), "seed must be an integer"),
        (lambda: rl.AdaptiveThrottle(seed=1.0), "seed must be an integer in [0, 2**64)"),
        (lambda: rl.Phase(None, 0, 1), "name must be letters"),  # type: ignore[arg-type]
    ):
        with pytest.raises(errors.ConfigTypeError) as info:
            build()
        assert message in str(info.value)
    d = rl.Scenario().to_dict()
    d["dependencies"][0]["faults"]["capacity"]["max_queue"] = "3"
    with pytest.raises(errors.ConfigTypeError, match=r"payment\.faults\.capacity\.max_queue"):
        rl.Scenario.from_dict(d)
    # Of the right type but out of its range: a ValueError only.
    for build in (lambda: rl.Breaker(open_for=-1.0), lambda: rl.Breaker(window_size=0)):
        with pytest.raises(ValueError) as raised:
            build()
        assert not isinstance(raised.value, TypeError)


def test_hierarchy() -> None:
    for name in ("BreakerOpen", "BreakerHalfOpenFull", "BulkheadFull", "BulkheadClosed"):
        assert issubclass(getattr(errors, name), errors.Rejected)
    assert issubclass(errors.Throttled, errors.Rejected)
    assert issubclass(errors.Rejected, errors.ReliabilityLabError)
    assert issubclass(errors.Cancelled, errors.ReliabilityLabError)
    assert not issubclass(errors.Cancelled, errors.Rejected)
    for cls, reason in (
        (errors.RetryError, "error"),
        (errors.RetryExhausted, "exhausted"),
        (errors.DeadlineExceeded, "deadline"),
        (errors.RetryBudgetExhausted, "budget"),
    ):
        assert issubclass(cls, errors.RetryError) and cls.reason == reason
    assert issubclass(errors.ReliabilityLabError, Exception)
    assert errors.ReliabilityLabError.__bases__ == (Exception,)


def test_fields_and_messages() -> None:
    e = errors.BreakerOpen("payment", 1.25)
    assert (e.name, e.retry_in, e.args) == ("payment", 1.25, ("payment", 1.25))
    assert str(e) == "circuit breaker 'payment' is open (half-open in 1.250 s)"
    h = errors.BreakerHalfOpenFull(name="payment", max_calls=3)
    assert (h.name, h.max_calls) == ("payment", 3)
    assert str(h) == "circuit breaker 'payment' is half-open and all 3 probe slot(s) are taken"
    b = errors.BulkheadFull("db", 4, 2)
    assert (b.name, b.max_concurrent, b.max_waiting) == ("db", 4, 2)
    assert str(b) == "bulkhead 'db' is full (4 running, 2 may wait)"
    assert str(errors.BulkheadClosed("db")) == "bulkhead 'db' is closed"
    t = errors.Throttled("api", 0.5)
    assert (t.name, t.probability) == ("api", 0.5)
    assert str(t) == "throttle 'api' rejected the call (p_reject = 0.500)"
    c = errors.Cancelled()
    assert (str(c), c.attempts) == ("cancelled", 0)
    c = errors.Cancelled("stop", attempts=2)
    assert (str(c), c.args, c.attempts) == ("stop", ("stop",), 2)
    r = errors.DeadlineExceeded("too late", 3)
    assert (str(r), r.args, r.attempts, r.reason) == ("too late", ("too late",), 3, "deadline")
    with pytest.raises(TypeError):
        errors.BreakerOpen("payment")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        errors.BulkheadClosed("db", 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        errors.RetryError("message")  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        e.name = "other"  # type: ignore[misc]


def test_subclasses_and_except_clauses() -> None:
    class MyOpen(errors.BreakerOpen):
        pass

    with pytest.raises(errors.Rejected):
        raise MyOpen("x", 1.0)
    with pytest.raises(RuntimeError):
        raise live.LabClosedError("closed")
    assert str(MyOpen("x", 0.0)) == "circuit breaker 'x' is open (half-open in 0.000 s)"


@pytest.mark.parametrize(
    "exc",
    [
        errors.BreakerOpen("payment", 1.5),
        errors.BreakerHalfOpenFull("payment", 2),
        errors.BulkheadFull("db", 4, 2),
        errors.BulkheadClosed("db"),
        errors.Throttled("api", 0.25),
        errors.Cancelled("stop", 2),
        errors.RetryError("gave up", 3),
        errors.RetryExhausted("exhausted", 3),
        errors.DeadlineExceeded("late", 1),
        errors.RetryBudgetExhausted("budget", 2),
        live.LabClosedError("closed"),
        errors.ConfigTypeError("workers must be an integer in [1, 100000], got '8'"),
    ],
)
def test_pickles(exc: Exception) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert back.args == exc.args and str(back) == str(exc)
    assert getattr(back, "attempts", None) == getattr(exc, "attempts", None)


def test_cancelled_and_timeout_types() -> None:
    assert errors.CANCELLED_TYPES is _core.CANCELLED_TYPES
    assert set(errors.CANCELLED_TYPES) == {
        KeyboardInterrupt,
        SystemExit,
        GeneratorExit,
        asyncio.CancelledError,
        concurrent.futures.CancelledError,
        errors.Cancelled,
    }
    assert errors.TIMEOUT_TYPES is _core.TIMEOUT_TYPES
    assert set(errors.TIMEOUT_TYPES) == {
        TimeoutError,
        asyncio.TimeoutError,
        concurrent.futures.TimeoutError,
    }
    assert len(set(errors.TIMEOUT_TYPES)) == len(errors.TIMEOUT_TYPES)


def test_the_native_module_raises_without_the_python_layer() -> None:
    # The compiled module loaded on its own, with the package made unimportable: it classifies
    # and raises its exceptions without importing reliability_lab.errors or .live.
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        sys.modules["reliability_lab"] = None
        spec = importlib.util.spec_from_file_location("_core", {_core.__file__!r})
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        assert m.outcome_of_exception(m.BreakerOpen("b", 1.0)) == ("breaker_open", 0)
        assert m.outcome_of_exception(m.Cancelled()) == ("cancelled", 0)
        assert m.outcome_of_exception(TimeoutError()) == ("timeout", 0)
        config = {{f["name"]: f["default"] for f in m.config_schema()["Breaker"]}}
        b = m.CircuitBreaker(m.ManualClock(), "b", config, ())
        b.force_state("open")
        try:
            b.call(print)
        except m.BreakerOpen as e:
            assert e.name == "b" and e.retry_in == 5.0
        else:
            raise AssertionError("not rejected")
        assert not any(n.startswith("reliability_lab.") for n in sys.modules)
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_one_status_mapping_for_the_live_engine() -> None:
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=100.0),
        workers=1,
        queue_capacity=4,
        duration=0.1,
        dependencies=[rl.Dependency("payment")],
    )
    lab = live.Lab(sc)
    # Intake closed (Unavailable): LabClosedError from every native entry point.
    with pytest.raises(live.LabClosedError, match="not running"):
        lab.start_load()
    with pytest.raises(live.LabClosedError, match="not started"):
        lab.submit_many(2)
    with pytest.raises(live.LabClosedError, match="not started"):
        lab.submit()
    # InvalidArgument: ValueError (checked before intake); NotFound: KeyError.
    with pytest.raises(ValueError, match="idempotency_key"):
        lab.submit(idempotency_key="a b")
    with pytest.raises(KeyError, match="no order with id 0"):
        live.OrderHandle(lab._engine, 0)
    lab.shutdown()
    with pytest.raises(live.LabClosedError):
        lab.submit_many(1)
