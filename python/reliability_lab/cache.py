"""A disk cache of run results, keyed by (scenario hash, seed), for :func:`~reliability_lab.sweep`.

``sweep(..., cache="study.sqlite")`` looks every (point, seed) run up before running it and stores
each run's numbers as soon as its chunk finishes, so a sweep that was interrupted (Ctrl-C, a crash,
a failed point) or extended (more seeds, more points) runs only what the file does not hold yet.

The key of a run is :func:`scenario_key` — a SHA-256 of the canonical JSON of the point's scenario
(``Scenario.to_dict()`` without its seed, keys sorted), the library version and the metrics spec —
plus the seed. A change of any scenario field, of the metrics asked for or of the library version
gives new keys (the old rows stay in the file and are simply not matched).

The store is one SQLite file (WAL journal): rows are written by the thread that collects the
results (one transaction per finished chunk), and several processes may share one file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT NOT NULL,
    seed TEXT NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (key, seed)
) WITHOUT ROWID
"""
# Seeds go up to 2**64 - 1, past SQLite's signed 64-bit integers: stored as decimal text.
_BUSY_TIMEOUT_S = 30.0
_LOOKUP_BATCH = 400  # below SQLite's default limit of host parameters


def scenario_key(scenario_dict: Mapping[str, Any], metrics_spec: str) -> str:
    """The cache key of a scenario (as ``Scenario.to_dict()``; its seed is ignored) for a
    metrics spec (any string naming what is kept per run)."""
    from reliability_lab import __version__

    body = {k: v for k, v in scenario_dict.items() if k != "seed"}
    text = json.dumps(
        {"scenario": body, "metrics": metrics_spec, "reliability_lab": __version__},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()


class RunCache:
    """Results of runs on disk by (scenario key, seed). Thread-safe (one connection behind a
    lock); use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"cache must be a file path, got {type(path).__name__}")
        p = Path(path)
        if p.is_dir():
            raise ValueError(f"cache must be a file path, got the directory {str(p)!r}")
        if not p.parent.is_dir():
            raise ValueError(f"cache: the directory {str(p.parent)!r} does not exist")
        self.path = p
        self._lock = threading.Lock()
        self._db = sqlite3.connect(p, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise ValueError(f"cache: {str(p)!r} is not a reliability-lab cache ({e})") from None

    def get_many(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[str, float]]:
        """The stored metrics of those of ``keys`` ((scenario key, seed) pairs) that are held."""
        wanted = list(dict.fromkeys(keys))
        out: dict[tuple[str, int], dict[str, float]] = {}
        with self._lock:
            for i in range(0, len(wanted), _LOOKUP_BATCH):
                batch = wanted[i : i + _LOOKUP_BATCH]
                clause = " OR ".join(["(key = ? AND seed = ?)"] * len(batch))
                params: list[str] = []
                for key, seed in batch:
                    params += [key, str(seed)]
                for key, seed, text in self._db.execute(
                    f"SELECT key, seed, metrics FROM runs WHERE {clause}", params
                ):
                    out[(key, int(seed))] = _decode(text)
        return out

    def put_many(self, rows: Sequence[tuple[str, int, Mapping[str, float]]]) -> None:
        """Stores (scenario key, seed, metrics) rows in one transaction."""
        if not rows:
            return
        data = [(key, str(seed), _encode(values)) for key, seed, values in rows]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO runs (key, seed, metrics) VALUES (?, ?, ?)", data
            )

    def __len__(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM runs").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encode(values: Mapping[str, float]) -> str:
    # NaN/inf as strings: strict JSON, and repr of a float round-trips exactly.
    return json.dumps(
        {k: v if isinstance(v, float) and math.isfinite(v) else _special(v)
         for k, v in values.items()},
        separators=(",", ":"),
    )


def _special(v: Any) -> Any:
    if hasattr(v, "item"):  # a NumPy scalar from a metrics function
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": repr(v)}
    return v


def _decode(text: str) -> dict[str, float]:
    raw = json.loads(text)
    return {
        k: float(v["float"]) if isinstance(v, dict) and "float" in v else v
        for k, v in raw.items()
    }


__all__ = ["RunCache", "scenario_key"]
