"""Exponential backoff with jitter.

The delay before retry ``k`` (``k = 1`` is the wait before the second attempt) starts from
``d = min(max_delay, initial * multiplier ** (k - 1))`` and is then jittered:

=================  ==========================================================
``"none"``         ``d`` (synchronised retries: shown for comparison only)
``"full"``         ``U(0, d)``
``"equal"``        ``d / 2 + U(0, d / 2)``
``"decorrelated"`` ``min(max_delay, U(initial, 3 * previous))``, previous = initial at first
``"proportional"`` ``d * U(1 - jitter_factor, 1 + jitter_factor)``
=================  ==========================================================

The cap applies *after* jitter, so no delay ever exceeds ``max_delay``. The arithmetic is the
native core's (the same function the engines call), in integer nanoseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from reliability_lab import _core, _schema

JitterMode = Literal["none", "full", "equal", "decorrelated", "proportional"]
"""The jitter mode names accepted by :class:`Backoff`."""

JITTER_MODES: tuple[str, ...] = tuple(_core.jitter_modes())
"""Every jitter mode name, in the core's order."""

_SEED_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class Backoff(_schema.Checked):
    """Exponential backoff with jitter, in seconds.

    Attributes:
        initial: the base delay before the first retry, in [0, 1e6] seconds.
        multiplier: growth factor per retry, finite and >= 1.
        max_delay: the cap in seconds, in [initial, 1e6]; applied after jitter.
        jitter: one of ``"none"``, ``"full"``, ``"equal"``, ``"decorrelated"``,
            ``"proportional"``.
        jitter_factor: the spread ``f`` of ``"proportional"`` jitter, in [0, 1].

    Raises:
        ValueError: naming the parameter and its allowed range (NaN and inf included).
    """

    initial: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: JitterMode = "full"
    jitter_factor: float = 0.5

    def _native(self) -> _core.BackoffConfig:
        """The validated native config (built on demand: cheap, and keeps Backoff picklable)."""
        return _core.BackoffConfig(_schema.values(self))

    def base(self, retry: int) -> float:
        """The un-jittered delay in seconds before retry ``retry`` (>= 1)."""
        return _core.backoff_base_ns(self._native(), retry) * 1e-9

    def delay(self, retry: int, u: float, previous: float | None = None) -> float:
        """The jittered delay in seconds before retry ``retry`` (>= 1) for a draw ``u`` in [0, 1).

        ``previous`` is the previous delay (used by ``"decorrelated"`` only; None before the
        first retry, which reads as ``initial``).
        """
        previous_ns = -1 if previous is None else round(previous * 1e9)
        return _core.backoff_delay_ns(self._native(), retry, previous_ns, u) * 1e-9

    def delays(self, n: int | None = None, seed: int = 0) -> Iterator[float]:
        """The delays before retries 1, 2, ... in seconds: ``n`` of them, or forever if None.

        Deterministic for a given ``seed``: the draws come from the core's seeded stream.
        """
        return _core.BackoffDelays(self._native(), seed & _SEED_MASK, n)


__all__ = ["JITTER_MODES", "Backoff", "JitterMode"]
