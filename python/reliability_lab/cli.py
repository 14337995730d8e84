"""``reliability-lab``: the command line.

::

    reliability-lab run scenario.toml [--seed N] [--out result.parquet|.csv]
    reliability-lab sweep study.toml --out results.parquet [--workers N] [--no-progress]
    reliability-lab plot results.parquet --x PATH --y METRIC [--hue PATH] [--kind line|heatmap]
                                         --out fig.png
    reliability-lab schema [--out scenario.schema.json]
    reliability-lab serve [options]        # the order service (reliability_lab.service.cli)

Bad input (an unreadable or invalid file, a bad option) exits with status 2 and one line on
stderr, ``file:line: dotted.path: problem`` for a file. Options given without a command
(``reliability-lab --port 0``) mean ``serve``, as before there were other commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class _UsageError(Exception):
    """Bad input detected by a command: one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command but ``serve`` (which has its own)."""
    from reliability_lab import __version__

    p = argparse.ArgumentParser(
        prog="reliability-lab",
        description="Run reliability scenarios and sweeps from files, plot the results, or "
        "serve the order service.",
    )
    p.add_argument("--version", action="version", version=f"reliability-lab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="simulate a scenario file and print its summary")
    run.add_argument("file", help="scenario file (.toml, .yaml, .yml or .json)")
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    run.add_argument(
        "--out", default=None, help="also write the summary here (.parquet with the scenario "
        "in its metadata, or .csv)"
    )
    run.add_argument(
        "--engine", choices=["sim"], default="sim",
        help="the engine (sim: the discrete-event simulator, in virtual time)",
    )

    sw = sub.add_parser("sweep", help="run a study file (a parameter sweep) to a Parquet file")
    sw.add_argument("study", help="study file (.toml, .yaml, .yml or .json)")
    sw.add_argument("--out", required=True, help="the results file (.parquet)")
    sw.add_argument("--workers", type=int, default=None, help="threads (default: one per core)")
    sw.add_argument(
        "--no-progress", action="store_true",
        help="no progress bar (there is none when standard error is not a terminal)",
    )

    pl = sub.add_parser("plot", help="plot a results file")
    pl.add_argument("results", help="a results file written by sweep or run (.parquet)")
    pl.add_argument("--x", required=True, help="the parameter (column) on the x axis")
    pl.add_argument("--y", required=True, help="the metric (column) to show")
    pl.add_argument(
        "--hue", default=None,
        help="line: one curve per value of this column; heatmap: the parameter on the y axis",
    )
    pl.add_argument(
        "--kind", choices=["line", "heatmap"], default="line",
        help="line: the mean of --y against --x with its confidence band (default); heatmap: "
        "the mean of --y over the (--x, --hue) grid",
    )
    pl.add_argument("--out", required=True, help="the image file (.png, .svg, .pdf)")

    sc = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    sc.add_argument("--out", default=None, help="write it here instead of standard output")

    sub.add_parser(
        "serve", add_help=False, help="run the order service (reliability-lab serve --help)"
    )
    return p


def _summary_table(summary: Any) -> str:
    width = max(len(str(k)) for k in summary.index)
    lines = []
    for name, value in summary.items():
        v = float(value)
        shown = f"{int(v)}" if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"
        lines.append(f"{name:<{width}}  {shown:>12}")
    return "\n".join(lines)


def _cmd_run(a: argparse.Namespace) -> int:
    import pandas as pd

    from reliability_lab.files import load_scenario
    from reliability_lab.sim import simulate

    scenario = load_scenario(a.file)
    if a.seed is not None:
        try:
            scenario = scenario.replace(seed=a.seed)
        except ValueError as e:
            raise _UsageError(f"--seed: {e}") from None
    out = Path(a.out) if a.out else None
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise _UsageError(f"--out must end in .parquet or .csv, got {a.out!r}")
    result = simulate(scenario)
    print(_summary_table(result.summary))
    if out is not None:
        row = pd.DataFrame([{"seed": scenario.seed, **result.summary.to_dict()}])
        if out.suffix.lower() == ".csv":
            row.to_csv(out, index=False)
        else:
            from reliability_lab.results_io import save_results

            save_results(row, out, scenario=scenario, extra={"command": "run", "file": a.file})
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_sweep(a: argparse.Namespace) -> int:
    from reliability_lab.files import load_study
    from reliability_lab.results_io import save_results

    study = load_study(a.study)
    if a.workers is not None and a.workers < 1:
        raise _UsageError(f"--workers must be >= 1, got {a.workers}")
    out = Path(a.out)
    if out.suffix.lower() != ".parquet":
        raise _UsageError(f"--out must end in .parquet, got {a.out!r}")
    # A progress bar only where someone watches it (not into a log file or a pipe).
    progress = not a.no_progress and sys.stderr.isatty()
    df = study.run(progress=progress, max_workers=a.workers)
    save_results(df, out, study=study, extra={"command": "sweep", "file": a.study})
    points = int(df["point"].nunique()) if "point" in df.columns else 0
    print(f"{len(df)} runs ({points} points x {len(study.seeds)} seeds) written to {out}")
    return 0


def _cmd_plot(a: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from reliability_lab import plots
    from reliability_lab.results_io import load_results

    df, _meta = load_results(a.results)
    columns = [c for c in (a.x, a.y, a.hue) if c is not None]
    for c in columns:
        if c not in df.columns:
            raise _UsageError(
                f"{a.results}: no column {c!r} (columns: {', '.join(map(str, df.columns))})"
            )
    if a.kind == "heatmap":
        if a.hue is None:
            raise _UsageError("--kind heatmap needs --hue (the parameter on the y axis)")
        ax = plots.heatmap(df, a.x, a.hue, a.y)
    else:
        ax = plots.tradeoff(df, a.x, a.y, by=a.hue)
    fig = ax.figure
    assert isinstance(fig, Figure)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    plt.close(fig)
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


def _cmd_schema(a: argparse.Namespace) -> int:
    from reliability_lab.files import scenario_json_schema

    text = json.dumps(scenario_json_schema(), indent=2) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _serve(args: list[str]) -> int:
    try:
        from reliability_lab.service.cli import main as serve_main
    except ImportError as e:
        print(
            f"reliability-lab serve: needs the service extra (pip install "
            f"'reliability-lab[service]'): {e}",
            file=sys.stderr,
        )
        return 2
    return serve_main(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``reliability-lab COMMAND ...``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and (
        args[0] == "serve" or (args[0].startswith("-") and args[0] not in ("-h", "--help",
                                                                             "--version"))
    ):
        return _serve(args)
    try:
        a = build_parser().parse_args(args)
    except SystemExit as e:  # --help (0), or a usage line and 2 on bad options
        return e.code if isinstance(e.code, int) else 2
    commands = {"run": _cmd_run, "sweep": _cmd_sweep, "plot": _cmd_plot, "schema": _cmd_schema}
    from reliability_lab.files import ScenarioFileError

    try:
        return commands[a.command](a)
    except BrokenPipeError:  # `reliability-lab run ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 1
    except ScenarioFileError as e:
        print(" ".join(str(e).split()), file=sys.stderr)  # file:line: path: problem
        return 2
    except (_UsageError, ValueError, TypeError, OSError, ImportError) as e:
        print(f"reliability-lab {a.command}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
