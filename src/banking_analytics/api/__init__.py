"""The REST API (FastAPI): ``create_app`` builds it; ``banking-analytics serve`` runs it
with ``uvicorn_options`` (the connection deadlines and caps)."""

from banking_analytics.api._app import API_PREFIX, create_app
from banking_analytics.api._connections import uvicorn_options
from banking_analytics.api._settings import ApiSettings

__all__ = ["API_PREFIX", "ApiSettings", "create_app", "uvicorn_options"]
