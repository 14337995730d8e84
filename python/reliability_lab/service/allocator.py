"""glibc malloc settings for a long-running service.

glibc serves a request of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with its own
``mmap`` and returns it to the system on ``free``. But the threshold is dynamic: freeing such a
block raises it to that block's size (up to 32 MiB, see mallopt(3)), after which blocks of that
size come from the heap, where a freed block stays resident and live neighbours keep the heap
from shrinking. The service frees multi-megabyte blocks now and then (the hash table of a
generation of its Idempotency-Key cache), so its heap ratcheted up by megabytes minutes into a
steady run. Setting the threshold explicitly turns the adjustment off (mallopt(3): setting
``M_MMAP_THRESHOLD`` or ``M_TRIM_THRESHOLD`` disables it): large blocks stay mmapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: glibc's <malloc.h> parameter numbers.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: The thresholds the service fixes: glibc's own starting values.
MMAP_THRESHOLD_BYTES = 128 * 1024
TRIM_THRESHOLD_BYTES = 128 * 1024

#: Environment variables with which a user sets these thresholds himself (then left alone).
_USER_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def fix_malloc_thresholds(
    mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES
) -> bool:
    """Fixes glibc's mmap and trim thresholds (turning their dynamic adjustment off) for this
    process. Returns whether it did: False without glibc, or when the environment already
    sets malloc tunables (the user's choice wins)."""
    if any(os.environ.get(name) for name in _USER_ENV):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )
