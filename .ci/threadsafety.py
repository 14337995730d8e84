"""Checks abseil's thread-safety annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED...)
with clang's -Wthread-safety: g++ parses the annotations but ignores them.

Usage: python .ci/threadsafety.py BUILD_DIR [JOBS]

BUILD_DIR is a CMake build directory configured with clang++ as the compiler (only configured:
nothing is built). Every translation unit of cpp/ (the library and the bindings) and tests/cpp is
parsed with its own flags plus -fsyntax-only -Wthread-safety -Werror=thread-safety. Exits 1 with
clang's messages when any unit has a thread-safety warning (or fails to parse), or when a
deliberately wrong probe (an unlocked wait) is not rejected.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

EXTRA = ["-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety"]

# Must be rejected: a check that cannot fail proves nothing (say, annotations compiled out).
PROBE = """
#include "rlab/core/mutex.h"
struct Probe {
  rlab::Mutex mu;
  rlab::CondVar cv;
  bool ready ABSL_GUARDED_BY(mu) = false;
  void Unlocked() { while (!ready) cv.Wait(&mu); }
};
"""


def command_for(entry: dict[str, str]) -> list[str]:
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":  # no object file is written
            skip = True
            continue
        out.append(a)
    return out + EXTRA


def main() -> int:
    build = Path(sys.argv[1])
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    top = Path(__file__).resolve().parent.parent
    entries = json.loads((build / "compile_commands.json").read_text())
    roots = [str(top / "cpp") + "/", str(top / "tests" / "cpp") + "/"]
    units = [e for e in entries if any(e["file"].startswith(r) for r in roots)]
    if not units:
        print(f"threadsafety: no translation unit under {roots} in {build}", file=sys.stderr)
        return 1

    probe_entry = next(e for e in units if e["file"].startswith(roots[0]))
    probe_cmd = [a for a in command_for(probe_entry) if a not in ("-c", probe_entry["file"])]
    p = subprocess.run(
        [*probe_cmd, "-x", "c++", "-"],
        input=PROBE,
        cwd=probe_entry["directory"],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode == 0 or "requires holding mutex" not in p.stderr:
        print(f"threadsafety: the analysis missed the probe's unlocked wait\n{p.stderr}")
        return 1

    def check(e: dict[str, str]) -> tuple[str, int, str]:
        p = subprocess.run(
            command_for(e), cwd=e["directory"], capture_output=True, text=True, check=False
        )
        return e["file"], p.returncode, p.stderr

    start = time.monotonic()
    failed = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for file, rc, err in pool.map(check, units):
            if rc != 0 or "-Wthread-safety" in err:
                failed += 1
                print(f"--- {file}\n{err}", file=sys.stderr)
    took = time.monotonic() - start
    print(f"threadsafety: {len(units)} units, {failed} with findings, {took:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
