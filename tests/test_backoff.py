"""Backoff: every jitter mode stays within its bounds and under max_delay; validation names the
parameter; delay sequences are deterministic per seed."""

from __future__ import annotations

import itertools
import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab.backoff import JITTER_MODES, Backoff

NS = 1e-9  # delays are whole nanoseconds, rounded down: bounds are checked to within 1 ns


def test_defaults() -> None:
    b = Backoff()
    assert (b.initial, b.multiplier, b.max_delay, b.jitter, b.jitter_factor) == (
        0.1,
        2.0,
        30.0,
        "full",
        0.5,
    )
    assert JITTER_MODES == ("none", "full", "equal", "decorrelated", "proportional")


def test_base_is_exponential_and_capped() -> None:
    b = Backoff(initial=0.1, multiplier=2.0, max_delay=1.0, jitter="none")
    assert [b.base(k) for k in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    assert b.base(10**15) == pytest.approx(1.0)  # no overflow for huge k
    assert list(b.delays(6)) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -1.0}, "initial must be a finite number in [0, 1e+06], got -1"),
        ({"initial": math.nan}, "initial must be a finite number in [0, 1e+06], got nan"),
        ({"initial": math.inf}, "initial must be a finite number in [0, 1e+06], got inf"),
        ({"multiplier": 0.5}, "multiplier must be a finite number in [1, inf), got 0.5"),
        ({"multiplier": math.inf}, "multiplier must be a finite number in [1, inf), got inf"),
        ({"max_delay": 0.05}, "max_delay must be a finite number in [0.1, 1e+06], got 0.05"),
        ({"max_delay": math.nan}, "max_delay must be a finite number in [0, 1e+06], got nan"),
        ({"jitter_factor": 1.5}, "jitter_factor must be a finite number in [0, 1], got 1.5"),
        ({"jitter_factor": -0.5}, "jitter_factor must be a finite number in [0, 1], got -0.5"),
        (
            {"jitter": "gaussian"},
            "jitter must be one of 'none', 'full', 'equal', 'decorrelated', 'proportional', "
            "got 'gaussian'",
        ),
    ],
)
def test_validation_names_parameter_and_range(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        Backoff(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_zero_delays_are_allowed() -> None:
    b = Backoff(initial=0.0, max_delay=0.0, jitter="decorrelated")
    assert list(b.delays(5)) == [0.0] * 5


def test_frozen_hashable_and_picklable() -> None:
    b = Backoff(initial=0.2, jitter="equal")
    with pytest.raises(AttributeError):
        b.initial = 1.0  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(b)) == b
    assert hash(b) == hash(Backoff(initial=0.2, jitter="equal"))


def test_delays_deterministic_per_seed_and_finite_or_infinite() -> None:
    b = Backoff(max_delay=5.0)
    assert list(b.delays(50, seed=7)) == list(b.delays(50, seed=7))
    assert list(b.delays(50, seed=7)) != list(b.delays(50, seed=8))
    assert len(list(b.delays(0))) == 0
    assert len(list(b.delays(12))) == 12
    many = list(itertools.islice(b.delays(None), 5000))  # infinite when n is None
    assert len(many) == 5000
    assert max(many) <= 5.0
    # Large and negative seeds are reduced modulo 2**64 rather than rejected.
    assert list(b.delays(3, seed=-1)) == list(b.delays(3, seed=2**64 - 1))


def test_delays_rejects_negative_n() -> None:
    with pytest.raises(ValueError, match="n must be an integer"):
        Backoff().delays(-1)


def test_delay_function_checks_inputs() -> None:
    b = Backoff()
    with pytest.raises(ValueError, match=r"u must be a finite number in \[0, 1\)"):
        b.delay(1, 1.0)
    with pytest.raises(ValueError, match="retry must be an integer"):
        b.delay(0, 0.5)


def test_full_jitter_mean_is_half_the_base() -> None:
    b = Backoff(initial=1.0, multiplier=1.0, max_delay=1.0, jitter="full")
    xs = list(b.delays(20000, seed=1))
    assert sum(xs) / len(xs) == pytest.approx(0.5, abs=0.01)
    assert min(xs) >= 0.0
    assert max(xs) < 1.0


def test_decorrelated_sequence_follows_the_recurrence() -> None:
    b = Backoff(initial=0.05, max_delay=3.0, jitter="decorrelated")
    prev = b.initial
    for d in b.delays(2000, seed=3):
        assert b.initial - NS <= d <= min(b.max_delay, 3 * prev) + NS
        prev = d


configs = st.builds(
    lambda initial, ratio, mult, jitter, f: Backoff(
        initial=initial, multiplier=mult, max_delay=initial * ratio, jitter=jitter, jitter_factor=f
    ),
    initial=st.floats(1e-6, 10.0),
    ratio=st.floats(1.0, 1e4),
    mult=st.floats(1.0, 10.0),
    jitter=st.sampled_from(JITTER_MODES),
    f=st.floats(0.0, 1.0),
)


@settings(max_examples=300, deadline=None)
@given(
    b=configs,
    k=st.integers(1, 1000),
    u=st.floats(0.0, 1.0, exclude_max=True),
    prev_factor=st.floats(0.0, 5.0),
)
def test_every_mode_within_bounds_and_cap(b: Backoff, k: int, u: float, prev_factor: float) -> None:
    d = b.base(k)
    cap = b._native().max_delay
    previous = min(b.initial * prev_factor, cap)
    x = b.delay(k, u, previous)
    assert 0.0 <= x <= cap + NS
    lo: float
    hi: float
    if b.jitter == "none":
        lo = hi = d
    elif b.jitter == "full":
        lo, hi = 0.0, d
    elif b.jitter == "equal":
        lo, hi = d / 2, d
    elif b.jitter == "decorrelated":
        prev = max(previous, b.initial)
        lo, hi = b.initial, min(cap, 3 * prev)
    else:
        lo, hi = d * (1 - b.jitter_factor), min(cap, d * (1 + b.jitter_factor))
    tol = 2 * NS + 1e-12 * max(1.0, hi)
    assert lo - tol <= x <= hi + tol


@settings(max_examples=100, deadline=None)
@given(b=configs, seed=st.integers(0, 2**64 - 1))
def test_sequences_never_exceed_max_delay(b: Backoff, seed: int) -> None:
    xs = list(b.delays(300, seed=seed))
    assert all(0.0 <= x <= b.max_delay + NS for x in xs)
