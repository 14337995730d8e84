"""Service mode: the lab's order service over HTTP, on the live engine, with durable storage.

Run it with ``reliability-lab serve`` or ``python -m reliability_lab.service``; embed it with
:func:`create_app` (an ASGI app) and :class:`ServiceConfig`. Needs the ``service`` extra
(FastAPI, uvicorn, psycopg)::

    reliability-lab serve --port 8000 --admin-token "$TOKEN"        # SQLite in ./, loopback
    reliability-lab serve --database postgresql://user@host/db --scenario lab.json

    curl -s -XPOST localhost:8000/orders -H 'Idempotency-Key: o-1' \
         -H 'Content-Type: application/json' -d '{"customer_id": "c1", "amount_cents": 1250}'
    curl -s localhost:8000/orders/1                                  # status + transitions
    curl -s 'localhost:8000/orders?status=failed&limit=50'           # then ?cursor=...
    curl -s -XPUT localhost:8000/lab/faults -H "Authorization: Bearer $TOKEN" \
         -d '{"dependency": "payment", "faults": {"failure_rate": 1.0}}'

A POST is answered 202 once the order's row is committed and the engine has the order (one
writer thread group-commits rows and the engine's status transitions; the engine sees an order
only after its row is committed, so a 503 means nothing happened). On restart, orders left
pending, queued or processing are driven again with their original charge key; the payment
ledger (a file next to the SQLite database unless ``--ledger`` says otherwise) applies a key
once, so nothing is charged twice.
SIGTERM turns /readyz 503 and refuses new orders at once, gives in-flight orders
``--shutdown-budget`` seconds, records the rest as cancelled and exits 0.
"""

from reliability_lab.service.app import create_app
from reliability_lab.service.config import ServiceConfig, default_scenario, load_scenario
from reliability_lab.service.core import OrderService
from reliability_lab.service.store import Store, parse_database_url

__all__ = [
    "OrderService",
    "ServiceConfig",
    "Store",
    "create_app",
    "default_scenario",
    "load_scenario",
    "parse_database_url",
]
