"""How the web app runs. Every field can be set as ``BA_WEB_<NAME>`` in the environment."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WebSettings"]


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BA_WEB_", extra="forbid", frozen=True)

    #: How often a dashboard asks for new figures (the answers are cached per data
    #: version: a poll with no new events costs the server a look-up).
    poll_seconds: float = Field(default=15.0, gt=0)
    #: A signed-in session lasts this long, then the person signs in again.
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
