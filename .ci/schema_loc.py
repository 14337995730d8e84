"""Counts the production lines of schema code (issue #11: "at most half of today's").

Usage: ``python .ci/schema_loc.py [--rev REV] [-v]`` (the working tree by default, or a git
revision). A *line* is a non-blank line that is not only a comment (``//`` in C++, ``#`` in
Python). *Schema code* is what declares, checks or converts configuration fields:

1. whole files: ``python/reliability_lab/scenario/_validate.py``, ``python/reliability_lab/
   _checks.py``, ``python/reliability_lab/_schema.py``, ``cpp/bindings/scenario_from_py.cc``,
   ``cpp/bindings/config_codec.{h,cc}``, ``cpp/rlab/core/schema.{h,cc}``,
   ``cpp/rlab/core/validate.{h,cc}``;
2. in ``python/reliability_lab/**.py``: every ``__post_init__`` method (the dataclasses' checks),
   every module-level ``_native`` function (a config unpacked into a positional constructor) and
   every module-level ``_RANGES = (...)`` range table;
3. in ``cpp/rlab/{policy,model}/*.cc``: every function whose signature line starts with
   ``absl::Status Validate`` (the C++ validators, including ``Validate...Rules``),
   ``const ConfigSchema<`` (the field tables), ``const UnionSchema<`` (the tagged unions'
   member lists) or ``FieldSpec`` (a hand-built row), every ``RLAB_TABLE(...)`` (a field table
   declared by the macro) and every ``constexpr UnionOps`` (a hand-written union's operations);
4. in ``cpp/bindings/register_*.cc``: every ``py::init(...)`` call of a class whose constructor
   takes configuration (the whole parenthesised call, arguments and ``py::arg`` list included);
5. in ``python/reliability_lab/_core.pyi``: every ``def __init__(...)`` stub (the constructors'
   parameter lists).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WHOLE = [
    "python/reliability_lab/scenario/_validate.py",
    "python/reliability_lab/_checks.py",
    "python/reliability_lab/_schema.py",
    "cpp/bindings/scenario_from_py.cc",
    "cpp/bindings/config_codec.h",
    "cpp/bindings/config_codec.cc",
    "cpp/rlab/core/schema.h",
    "cpp/rlab/core/schema.cc",
    "cpp/rlab/core/validate.h",
    "cpp/rlab/core/validate.cc",
]


def _is_code(line: str, comment: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith(comment)


def _count(lines: list[str], comment: str) -> int:
    return sum(_is_code(x, comment) for x in lines)


def _python_blocks(text: str) -> list[str]:
    """``__post_init__`` methods, module-level ``_native`` functions and module-level range
    tables (``_RANGES = (...)``)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:def (__post_init__|_native)\b|(_RANGES) = )", lines[i])
        if m and (m.group(2) == "__post_init__" or not m.group(1)):
            indent = len(m.group(1))
            j = i + 1
            while j < len(lines) and (
                not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
                or lines[j].lstrip().startswith(")")
            ):
                j += 1
            out.extend(lines[i:j])
            i = j
        else:
            i += 1
    return out


def _balanced(text: str, start: int, open_: str, close: str) -> int:
    """The index just past the bracket matching the first ``open_`` at or after ``start``."""
    depth = 0
    i = text.index(open_, start)
    while i < len(text):
        c = text[i]
        if c == '"':  # skip a string literal
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def _cpp_functions(text: str, pattern: str) -> list[str]:
    out: list[str] = []
    for m in re.finditer(pattern, text, re.M):
        end = _balanced(text, m.start(), "{", "}")
        out.extend(text[m.start():end].splitlines())
    return out


def _macro_tables(text: str) -> list[str]:
    out: list[str] = []
    for m in re.finditer(r"^RLAB_TABLE\(", text, re.M):
        end = _balanced(text, m.start(), "(", ")")
        out.extend(text[m.start():end].splitlines())
    return out


def _inits(text: str) -> list[str]:
    out: list[str] = []
    for m in re.finditer(r"\.def\(py::init\(", text):
        end = _balanced(text, m.start() + 4, "(", ")")
        out.extend(text[m.start():end].splitlines())
    return out


def _pyi_inits(text: str) -> list[str]:
    out: list[str] = []
    for m in re.finditer(r"^\s*def __init__\(", text, re.M):
        end = _balanced(text, m.start(), "(", ")")
        out.extend(text[m.start():end].splitlines())
    return out


def measure(read: Callable[[str], str | None], files: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in WHOLE:
        text = read(path)
        if text is not None:
            counts[path] = _count(text.splitlines(), "#" if path.endswith(".py") else "//")
    for path in files:
        text = read(path)
        if text is None:
            continue
        n = 0
        if path.endswith(".pyi"):
            n = _count(_pyi_inits(text), "#")
        elif path.endswith(".py") and path not in WHOLE:
            n = _count(_python_blocks(text), "#")
        elif re.match(r"cpp/rlab/(policy|model)/.*\.cc$", path):
            pattern = r"^(absl::Status Validate|const ConfigSchema<|const UnionSchema<|FieldSpec\b)"
            ops = _cpp_functions(text, r"^(inline )?constexpr UnionOps")
            n = _count(_cpp_functions(text, pattern) + ops + _macro_tables(text), "//")
        elif re.match(r"cpp/bindings/register_.*\.cc$", path):
            n = _count(_inits(text), "//")
        if n:
            counts[path] = n
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", help="a git revision (default: the working tree)")
    ap.add_argument("-v", action="store_true", help="per file")
    args = ap.parse_args()
    if args.rev:
        names = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", args.rev], cwd=ROOT, check=True,
            capture_output=True, text=True,
        ).stdout.split()

        def read(p: str) -> str | None:
            r = subprocess.run(["git", "show", f"{args.rev}:{p}"], cwd=ROOT,
                               capture_output=True, text=True)
            return r.stdout if r.returncode == 0 else None
    else:
        names = [str(p.relative_to(ROOT)) for p in ROOT.glob("**/*")
                 if p.is_file() and ".git" not in p.parts and "build" not in p.parts]

        def read(p: str) -> str | None:
            f = ROOT / p
            return f.read_text() if f.exists() else None

    files = sorted(
        n for n in names
        if re.match(r"python/reliability_lab/.*\.pyi?$", n)
        or re.match(r"cpp/rlab/(policy|model)/.*\.cc$", n)
        or re.match(r"cpp/bindings/register_.*\.cc$", n)
    )
    counts = measure(read, files)
    if args.v:
        for path, n in sorted(counts.items()):
            print(f"{n:6d}  {path}")
    print(f"{sum(counts.values()):6d}  total lines of schema code ({args.rev or 'working tree'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
