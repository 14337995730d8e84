"""Checks of the values that are not a config's fields (a runtime policy's own arguments, the
service's settings), and the dotted-path helpers the scenario's dict codec shares.

pybind11 would otherwise answer a wrong type with "incompatible constructor arguments", Python's
``float()`` would turn ``"5"`` into 5.0 silently, and an int too large for a float would raise a
bare OverflowError. Messages follow the core's wording (rlab/core/validate.cc): the parameter (or
dotted path), the expected type or range, and the value. A config's own fields are its field
table's (``_schema.check``).
"""

from __future__ import annotations

import math
import numbers
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from reliability_lab._core import ConfigTypeError

T = TypeVar("T")

#: The longest duration a setting takes, in seconds (the core's kMaxDurationS).
MAX_S = 1e6

#: A name usable in a dotted path (``phases[outage]``).
NAME = re.compile(r"^[A-Za-z0-9_]+$")


def short_repr(value: object) -> str:
    """``repr(value)``, cut to 40 characters (a 400-digit int stays readable in a message)."""
    r = repr(value)
    return r if len(r) <= 40 else f"{r[:30]}...({len(r)} chars)"


def number(name: str, value: object) -> float:
    """A real number (int or float, not bool, not a numeric string), as a float. NaN and inf
    pass through: the native validator rejects them with the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigTypeError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{name} must be a finite number, got {short_repr(value)}") from None


def in_range(
    name: str, value: T, lo: float, hi: float, *, seconds: bool = False, lo_open: bool = False
) -> T:
    """An integer (with ``seconds``, a number of seconds: any real) in [lo, hi] ((lo, hi] when
    ``lo_open``), returned as given; otherwise ValueError (ConfigTypeError for a value of the
    wrong type) naming it, the range and the value in the core's wording
    (rlab/core/validate.cc). NaN and inf fail the comparisons."""
    kind = numbers.Real if seconds else numbers.Integral
    ok = not isinstance(value, bool) and isinstance(value, kind)
    v: Any = value
    if ok and (lo < v if lo_open else lo <= v) and v <= hi:
        return value
    what = "a finite number" if seconds else "an integer"
    span = f"{lo:g}, {hi:g}" if seconds else f"{lo}, {hi}"
    got = f"{v:g}" if seconds and isinstance(v, float) else short_repr(v)
    error = ValueError if ok else ConfigTypeError
    raise error(f"{name} must be {what} in {'(' if lo_open else '['}{span}], got {got}")


def seed(name: str, value: object) -> int:
    """A seed of random draws: an integer in [0, 2**64), or None for a fresh one."""
    if value is None:
        return secrets.randbits(64)
    message = f"{name} must be an integer in [0, 2**64), got {short_repr(value)}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(message)
    if not 0 <= value < 2**64:
        raise ValueError(message)
    return value


def string(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigTypeError(f"{name} must be a string, got {value!r}")
    return value


def ns(seconds: float) -> int:
    """Seconds (validated, >= 0) as the core's nanoseconds: time comparisons agree with it."""
    return math.floor(seconds * 1e9 + 0.5)


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@contextmanager
def at(path: str) -> Iterator[None]:
    """Re-raises a ValueError (or TypeError) from inside under ``path``: a ConfigTypeError as
    one, anything else as a ValueError."""
    try:
        yield
    except (ValueError, TypeError) as e:
        if not path:
            raise
        error = ConfigTypeError if isinstance(e, ConfigTypeError) else ValueError
        raise error(f"{path}{'.' if isinstance(e, ValueError) else ': '}{e}") from None
