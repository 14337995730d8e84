"""JSON-lines logging for the service: one object per line on stderr.

Messages that already are JSON objects (the lab's and the service's events) are merged into the
line; anything else (uvicorn's own messages) becomes its ``message`` field.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ``ts``, ``level``, ``logger``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields: Any = None
        if msg.startswith("{"):
            try:
                fields = json.loads(msg)
            except ValueError:
                fields = None
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = msg
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "info") -> None:
    """Sends the lab's, the service's and uvicorn's loggers to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    lvl = getattr(logging, level.upper())
    for name in ("reliability_lab", "uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(lvl)
        lg.propagate = False
    # Access lines come from our own middleware (with the route template), not uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True
    logging.Formatter.converter = time.gmtime
