"""Service mode: the lab's order service over HTTP, on the live engine, with durable storage.

Run it with ``reliability-lab serve`` or ``python -m reliability_lab.service``; embed it with
:func:`create_app` (an ASGI app) and :class:`ServiceConfig`. Needs the ``service`` extra
(FastAPI, uvicorn, psycopg).
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
