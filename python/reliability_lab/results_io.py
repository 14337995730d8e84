"""Results as Parquet files that carry what produced them.

``save_results(df, "results.parquet", scenario=sc, study=st)`` writes a DataFrame (a sweep's,
or a run's summary) with, in the Parquet schema's key-value metadata under
``reliability_lab``, a JSON object: the scenario (:meth:`Scenario.to_dict`), the study (grid,
seeds, ``n``, metrics: :meth:`Study.to_dict <reliability_lab.files.Study.to_dict>`), the
library version and the creation time. ``load_results`` gives the DataFrame back with a
:class:`ResultsMetadata`, whose scenario and study re-run the experiment: the same seeds give
the same numbers.

Needs pyarrow (``pip install 'reliability-lab[study]'``), imported when first used.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reliability_lab.files import Study
from reliability_lab.scenario import Scenario

__all__ = ["METADATA_KEY", "ResultsMetadata", "load_results", "save_results"]

#: The Parquet schema metadata key holding the JSON object.
METADATA_KEY = b"reliability_lab"

#: The version of that object's layout.
_FORMAT = 1


def _pyarrow() -> tuple[Any, Any]:
    try:
        pa = importlib.import_module("pyarrow")  # untyped: no stubs needed
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ImportError(
            "Parquet results need pyarrow: pip install 'reliability-lab[study]'"
        ) from None
    return pa, pq


@dataclass(frozen=True)
class ResultsMetadata:
    """What a results file says about how it was made.

    Attributes:
        scenario: the scenario that was run (the study's base scenario for a sweep), or None.
        study: the study (grid, seeds, ...) of a sweep, or None.
        library_version: the reliability-lab version that wrote the file.
        created: when the file was written (UTC, ISO 8601).
        extra: any other JSON-able entries given to :func:`save_results`.
    """

    scenario: Scenario | None
    study: Study | None
    library_version: str
    created: str
    extra: Mapping[str, Any] = field(default_factory=dict)


def save_results(
    df: pd.DataFrame,
    path: str | Path,
    *,
    scenario: Scenario | None = None,
    study: Study | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Writes ``df`` to a Parquet file with the scenario, the study, the library version and
    the time in its metadata; returns the path.

    Args:
        df: the results (columns of any Parquet-able types; the index is not kept).
        path: the file to write (replaced if it exists).
        scenario: the scenario run (default: the study's).
        study: the study swept, if any.
        extra: more JSON-able entries (e.g. the command line).

    Raises:
        TypeError: ``df`` is not a DataFrame, or ``extra`` is not JSON-able.
        ImportError: pyarrow is missing.
    """
    from reliability_lab import __version__

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if scenario is None and study is not None:
        scenario = study.scenario
    meta = {
        "format": _FORMAT,
        "library_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "scenario": scenario.to_dict() if scenario is not None else None,
        "study": study.to_dict() if study is not None else None,
        "extra": dict(extra or {}),
    }
    pa, pq = _pyarrow()
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(meta, allow_nan=False)}
    )
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(out)  # readers never see half a file
    return out


def load_results(path: str | Path) -> tuple[pd.DataFrame, ResultsMetadata]:
    """The DataFrame and the metadata of a file written by :func:`save_results`.

    Raises:
        ValueError: the file is not Parquet, or carries no reliability-lab metadata.
        OSError: the file cannot be read.
    """
    pa, pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except pa.ArrowInvalid as e:
        raise ValueError(f"{path}: not a Parquet file ({e})") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path}: not written by reliability-lab (no {METADATA_KEY.decode()} "
                         "metadata)")
    meta = json.loads(raw)
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path}: unknown results format {meta.get('format')!r}")
    df: pd.DataFrame = table.to_pandas()
    scenario = Scenario.from_dict(meta["scenario"]) if meta.get("scenario") else None
    study = Study.from_dict(meta["study"]) if meta.get("study") else None
    return df, ResultsMetadata(
        scenario=scenario,
        study=study,
        library_version=str(meta.get("library_version", "")),
        created=str(meta.get("created", "")),
        extra=meta.get("extra") or {},
    )
