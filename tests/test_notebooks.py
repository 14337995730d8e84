"""Every notebook in notebooks/ executes without error, within its time budget, and keeps its
shape: it opens with the question it answers and closes with what the numbers show.

The kernel is ``python3`` (ipykernel's spec for the running interpreter), started in notebooks/,
with this process's environment and the directory of the reliability_lab this process imported
first on PYTHONPATH, so that the kernel imports the same package."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
BUDGET_S = 60.0  # per notebook, kernel start included
MAX_BYTES = 1_000_000


def test_there_are_notebooks() -> None:
    names = [p.name for p in NOTEBOOKS]
    prefixes = tuple(f"{i:02d}_" for i in range(1, 14))
    for prefix in prefixes:
        assert any(n.startswith(prefix) for n in names), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_committed_shape(path: Path) -> None:
    assert path.stat().st_size < MAX_BYTES
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and "**Question.**" in cells[0].source
    assert cells[-1].cell_type == "markdown" and "What the numbers show" in cells[-1].source
    assert "(pending)" not in cells[-1].source
    code = [c for c in cells if c.cell_type == "code"]
    # Committed with outputs, none of them an error.
    assert all(c.get("execution_count") for c in code), "commit the notebook executed"
    for c in code:
        assert all(o.get("output_type") != "error" for o in c.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_within_budget(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=int(BUDGET_S),
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    import reliability_lab

    env = dict(os.environ)
    package_root = str(Path(os.path.abspath(reliability_lab.__file__)).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    start = time.perf_counter()
    client.execute(env=env)
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET_S, f"{path.name} took {elapsed:.1f} s"
    for c in nb.cells:
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", f"{path.name}: {o.get('ename')}"
