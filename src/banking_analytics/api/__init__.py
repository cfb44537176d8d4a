"""The REST API (FastAPI): ``create_app`` builds it; ``banking-analytics serve`` runs it."""

from banking_analytics.api._app import API_PREFIX, create_app
from banking_analytics.api._settings import ApiSettings

__all__ = ["API_PREFIX", "ApiSettings", "create_app"]
