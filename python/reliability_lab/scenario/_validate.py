"""The checks every scenario class runs on its fields, and the limits they share with the
native validator.

Messages follow the core's wording, and errors raised under a dotted path (:func:`_at`) name it.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from reliability_lab._checks import short_repr

# Limits, shared with the native validator (cpp/rlab/model/scenario.cc and faults.cc).
_MAX_DURATION = 1e6  # seconds: the core's kMaxDurationS
_MAX_WORKERS = 100_000
_MAX_QUEUE_CAPACITY = 10_000_000
_MAX_NUM_KEYS = 1_000_000_000
_MAX_DEPENDENCIES = 16
_MAX_SEED = 2**64 - 1
_NAME = re.compile(r"^[A-Za-z0-9_]+$")

# ------------------------------------------------------------------------------------------------
# Field checks. Messages follow the core's format (rlab/core/validate.cc) so that Python and the
# native validator word the same error the same way.


def _bound(x: float) -> str:
    return ("inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:g}"


def _real(
    name: str,
    value: object,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """A real number (int or float, not bool) that is finite and in the interval; as a float."""
    interval = f"{'(' if lo_open else '['}{_bound(lo)}, {_bound(hi)}{')' if hi_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    try:
        x = float(value)
    except OverflowError:  # an int too large for a float: show it, not "inf"
        raise ValueError(
            f"{name} must be a finite number in {interval}, got {short_repr(value)}"
        ) from None
    below = not (x > lo) if lo_open else not (x >= lo)
    above = not (x < hi) if hi_open else not (x <= hi)
    if not math.isfinite(x) or below or above:
        raise ValueError(f"{name} must be a finite number in {interval}, got {x:g}")
    return x


def _duration(name: str, value: object, *, allow_zero: bool) -> float:
    """Seconds in [0, 1e6] (or (0, 1e6])."""
    return _real(name, value, 0.0, _MAX_DURATION, lo_open=not allow_zero)


def _int(name: str, value: object, lo: int, hi: int) -> int:
    """An integer (not bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {short_repr(v)}")
    return v


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _items(name: str, value: object) -> tuple[Any, ...]:
    """A sequence given as any iterable (not a string or mapping), stored as a tuple."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a sequence, got {value!r}")
    return tuple(value)


def _instance(name: str, value: object, types_: tuple[type, ...], what: str) -> None:
    if not isinstance(value, types_):
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _ns(seconds: float) -> int:
    """Seconds (validated, >= 0) as the core's nanoseconds: time comparisons agree with it."""
    return math.floor(seconds * 1e9 + 0.5)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@contextmanager
def _at(path: str) -> Iterator[None]:
    """Re-raises a ValueError (or TypeError) from inside as a ValueError under ``path``."""
    if not path:
        yield
        return
    try:
        yield
    except ValueError as e:
        raise ValueError(_join(path, str(e))) from None
    except TypeError as e:
        raise ValueError(f"{path}: {e}") from None
