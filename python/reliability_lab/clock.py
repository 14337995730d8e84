"""Clocks. Every policy takes one, so tests drive time by hand instead of sleeping.

``SteadyClock`` is the process's monotonic clock; ``ManualClock`` moves only when advanced (its
``sleep`` advances it at once). Both are the native types of the core, shared with C++.
"""

from __future__ import annotations

from reliability_lab._core import Clock, ManualClock, SteadyClock

_DEFAULT = SteadyClock()


def default_clock() -> Clock:
    """The shared steady clock used when a policy is given no clock."""
    return _DEFAULT


__all__ = ["Clock", "ManualClock", "SteadyClock", "default_clock"]
