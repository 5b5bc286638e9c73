"""The collector's HTTP side: the API, the field console, bearer tokens and roles, limits,
health and /metrics.

Owns the FastAPI app (api.py), auth (auth.py), the limits checked before a body is read
(limits.py), the uvicorn server (http_server.py), reads off the event loop (offloop.py),
health (health.py), /metrics (metrics.py), the sources routes (sources_api.py), the offline
/docs page and its vendored Swagger UI (docs_ui.py, static/), the result's OpenAPI
schema (result_schema.py) and the field console at `/` (console/: sessions, pages,
vendored htmx and uPlot). May import results/, reporting/, intake/,
config.py, storage/, evaluation/, the agent's wire format and the shared base.
"""
