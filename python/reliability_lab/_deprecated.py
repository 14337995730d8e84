"""Old public names kept for one release: each warns (``DeprecationWarning``) naming the new one.

A renamed class stays reachable under its old name through the module's ``__getattr__`` (PEP 562),
so the old name *is* the new class (``isinstance`` and ``==`` keep working) and warns on each
access; type checkers see a plain alias. See docs/architecture.md, "Names".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

#: The release that removes the deprecated names.
REMOVED_IN = "0.2"


def warn(old: str, new: str, stacklevel: int = 3) -> None:
    """Warns that ``old`` is deprecated in favour of ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed in reliability-lab {REMOVED_IN}; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def module_getattr(
    module: str, aliases: Mapping[str, tuple[str, Callable[[], object]]]
) -> Callable[[str], object]:
    """A module ``__getattr__`` serving ``aliases`` ({old name: (new name, getter)}) with a
    warning, and AttributeError for anything else."""

    def __getattr__(name: str) -> object:
        alias = aliases.get(name)
        if alias is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new, get = alias
        warn(f"{module}.{name}", new)
        return get()

    return __getattr__
