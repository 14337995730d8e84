"""The service fixes glibc's mmap threshold (issue #12): without that, freeing a large block
raises the threshold to its size, and later blocks of that size come from the heap, which only
grows; with it, they stay mmapped and go back to the system when freed."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")


def _glibc() -> bool:
    try:
        return ctypes.util.find_library("c") is not None and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):
        return False


if not _glibc():
    pytest.skip("glibc only", allow_module_level=True)

from reliability_lab.service.allocator import fix_malloc_thresholds  # noqa: E402

_PROBE = """
import sys
from reliability_lab.service.allocator import fix_malloc_thresholds  # noqa: E402
from reliability_lab.service.profiling import _malloc_stats
if sys.argv[1] == "fix":
    assert fix_malloc_thresholds()
big = bytearray(8 << 20)  # mmapped; freeing it would raise a dynamic threshold to 8 MiB
del big
before = _malloc_stats()["mmap_bytes"]
blocks = [bytearray(1 << 20) for _ in range(4)]
print(_malloc_stats()["mmap_bytes"] - before)
"""


def _mmapped_after_a_large_free(mode: str, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**clean, **env},
    )
    return int(out.stdout.strip())


def test_fixed_threshold_keeps_large_blocks_mmapped() -> None:
    assert _mmapped_after_a_large_free("fix") >= 4 << 20
    # The negative control: glibc's dynamic threshold serves them from the heap.
    assert _mmapped_after_a_large_free("nofix") == 0


def test_the_users_malloc_settings_win() -> None:
    assert _mmapped_after_a_large_free("nofix", MALLOC_MMAP_THRESHOLD_="33554432") == 0
    os.environ["MALLOC_TRIM_THRESHOLD_"] = "1"
    try:
        assert fix_malloc_thresholds() is False
    finally:
        del os.environ["MALLOC_TRIM_THRESHOLD_"]
