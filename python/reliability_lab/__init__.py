"""reliability-lab: reproduce production reliability problems and measure the patterns that fix them."""

from reliability_lab import _core

__all__ = ["_core"]
__version__ = "0.1.0"
