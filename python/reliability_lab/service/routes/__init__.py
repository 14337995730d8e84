"""The HTTP API's routes, one router per concern; ``app.create_app`` includes them.

* ``orders``: ``POST /orders``, ``GET /orders/{order_id}``, ``GET /orders``
* ``probes``: ``GET /metrics``, ``/livez``, ``/readyz``, ``/startupz``
* ``admin``: ``PUT``/``PATCH /lab/faults``, ``PUT``/``PATCH /lab/breaker/{dependency}``,
  ``GET /debug/internals`` (bearer token)

The profiling routes (``/debug/pprof/...``) are added by ``profiling.add_profiling_routes``.
Handlers share one :class:`~reliability_lab.service.routes.common.AppState` per app (on
``app.state``), reached through the ``StateDep`` dependency.
"""
