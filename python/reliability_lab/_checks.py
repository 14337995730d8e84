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
from collections.abc import Iterator
from contextlib import contextmanager

# The native constructors take C++ ``int`` for counts.
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

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
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{name} must be a finite number, got {short_repr(value)}") from None


def duration(name: str, value: object, *, allow_zero: bool) -> float:
    """Seconds in [0, 1e6] (``allow_zero``) or (0, 1e6], as a float (the core's CheckDuration)."""
    what = f"{name} must be a finite number in {'[' if allow_zero else '('}0, 1e+06]"
    try:
        x = number(name, value)
    except ValueError:  # not a number, or an int too large for a float: shown as given
        raise ValueError(f"{what}, got {short_repr(value)}") from None
    if not (math.isfinite(x) and (x >= 0 if allow_zero else x > 0) and x <= 1e6):
        raise ValueError(f"{what}, got {x:g}")
    return x


def integer(name: str, value: object, lo: int = INT32_MIN, hi: int = INT32_MAX) -> int:
    """An integer (not bool) in [lo, hi] (by default what a C++ ``int`` holds; the native
    validator then checks the field's own range)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {short_repr(v)}")
    return v


def string(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def in_range(
    name: str, value: object, lo: int, hi: int, *, seconds: bool = False, lo_open: bool = False
) -> None:
    """A setting: an integer (with ``seconds``, a number of seconds) in [lo, hi] ((lo, hi] when
    ``lo_open``); otherwise ValueError naming the setting, the range and the value. NaN and inf
    fail the comparisons."""
    kinds = (int, float) if seconds else (int,)
    ok = not isinstance(value, bool) and isinstance(value, kinds)
    if ok and (lo < value if lo_open else lo <= value) and value <= hi:  # type: ignore[operator]
        return
    what, left = "a number of seconds" if seconds else "an integer", "(" if lo_open else "["
    raise ValueError(f"{name} must be {what} in {left}{lo}, {hi}], got {value!r}")


def ns(seconds: float) -> int:
    """Seconds (validated, >= 0) as the core's nanoseconds: time comparisons agree with it."""
    return math.floor(seconds * 1e9 + 0.5)


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@contextmanager
def at(path: str) -> Iterator[None]:
    """Re-raises a ValueError (or TypeError) from inside as a ValueError under ``path``."""
    try:
        yield
    except (ValueError, TypeError) as e:
        if not path:
            raise
        raise ValueError(f"{path}{'.' if isinstance(e, ValueError) else ': '}{e}") from None
