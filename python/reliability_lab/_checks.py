"""Type gates run before a value crosses into the native constructors.

pybind11 would otherwise answer a wrong type with "incompatible constructor arguments", Python's
``float()`` would turn ``"5"`` into 5.0 silently, and an int too large for a float would raise a
bare OverflowError. These gates name the parameter, the expected type and the value; the ranges
stay the native validator's (one source of truth).
"""

from __future__ import annotations

import numbers

# The native constructors take C++ ``int`` for counts.
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


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
