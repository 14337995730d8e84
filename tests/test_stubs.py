"""The type stubs of the compiled module (``_core.pyi``) are checked against the module itself.

mypy's ``stubtest`` imports ``reliability_lab._core`` and compares every stubbed name, signature
and class with the runtime object: a binding added, renamed or re-signed without its stub (or a
stub for something the module does not have) fails here. pybind11 artefacts that a stub cannot
express are ignored by their message, not by name, so that a real mismatch on the same object
still fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import reliability_lab

# Messages that describe how pybind11 builds classes, not a wrong stub.
_ARTEFACTS = (
    re.compile(r"is inconsistent, metaclass differs$"),  # pybind11_type, not type
    # A class without a Python constructor: pybind11's __init__ raises on any arguments.
    re.compile(r"\.__init__ is inconsistent, stub does not have \*args parameter \"args\"$"),
    re.compile(r"\.__init__ is inconsistent, stub does not have \*\*kwargs parameter \"kwargs\"$"),
    re.compile(r"cannot be subclassed at runtime, but isn't marked with @final in the stub$"),
    re.compile(r"is a disjoint base at runtime, but isn't marked with @disjoint_base in the stub$"),
)


def _errors(output: str) -> list[str]:
    """stubtest's error blocks, each starting with ``error: ``."""
    blocks = re.split(r"^(?=error: )", output, flags=re.MULTILINE)
    return [b.strip() for b in blocks if b.startswith("error: ")]


def _is_artefact(block: str) -> bool:
    head = block.splitlines()[0]
    return any(p.search(head) for p in _ARTEFACTS)


def test_error_filter_keeps_real_mismatches() -> None:
    real = (
        "error: reliability_lab._core.X.f is inconsistent, stub parameter \"a\" differs\n"
        "Stub: ...\nerror: reliability_lab._core.Y is not present at runtime\nStub: ..."
    )
    noise = "error: reliability_lab._core.Z is inconsistent, metaclass differs\nStub: N/A"
    found = [b for b in _errors(real + "\n" + noise) if not _is_artefact(b)]
    assert [b.splitlines()[0] for b in found] == [
        'error: reliability_lab._core.X.f is inconsistent, stub parameter "a" differs',
        "error: reliability_lab._core.Y is not present at runtime",
    ]


def test_core_stubs_match_the_compiled_module() -> None:
    pytest.importorskip("mypy.stubtest")
    package_dir = Path(reliability_lab.__file__).parent  # not resolved: a staged tree links files
    if not (package_dir / "_core.pyi").exists():
        pytest.skip("the installed package has no _core.pyi")
    env = {**os.environ, "PYTHONPATH": str(package_dir.parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "reliability_lab._core", "--concise"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    out = proc.stdout + proc.stderr
    # --concise prints one line per error; normalise to the block form _errors reads.
    lines = [ln for ln in out.splitlines() if ln.startswith("reliability_lab._core")]
    real = [ln for ln in lines if not _is_artefact("error: " + ln)]
    assert not real, "_core.pyi disagrees with the compiled module:\n" + "\n".join(real)
    assert proc.returncode in (0, 1), out  # 1: errors found (all of them artefacts)
