"""Bodies of the notification routes: receivers, the policy, silences and deliveries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from banking_analytics.monitor import Attempt, Delivery, Receiver, Silence

__all__ = [
    "DeliveryDetailOut",
    "DeliveryOut",
    "ReceiverIn",
    "ReceiverOut",
    "SilenceIn",
    "SilenceOut",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReceiverIn(_In):
    #: ``webhook``: Alertmanager's JSON, signed; ``slack``: an incoming webhook's JSON.
    kind: Literal["webhook", "slack"]
    url: str = Field(min_length=1, max_length=2048)
    #: Also notify when a group's alerts resolve.
    send_resolved: bool = True
    #: A webhook receiver's new signing secret, answered once (a new receiver gets one anyway).
    rotate_secret: bool = False


class ReceiverOut(_Out):
    name: str
    kind: str
    #: A Slack URL is its secret: only its origin is shown.
    url: str
    send_resolved: bool
    changed_at: datetime
    changed_by: str
    #: The signing secret: only in the answer that made it (creation, or ``rotate_secret``).
    secret: str | None = None

    @classmethod
    def of(cls, receiver: Receiver, *, secret: str | None = None) -> ReceiverOut:
        url = receiver.url
        if receiver.kind == "slack":
            parts = urlsplit(url)
            url = f"{parts.scheme}://{parts.netloc}/…"
        return cls(
            name=receiver.name,
            kind=receiver.kind,
            url=url,
            send_resolved=receiver.send_resolved,
            changed_at=receiver.changed_at,
            changed_by=receiver.changed_by,
            secret=secret,
        )


class PolicyOut(_Out):
    version: int
    changed_at: datetime
    changed_by: str
    policy: dict[str, Any]


class SilenceIn(_In):
    #: Label matchers, all of which an alert must match: ``name="v"``, ``!=``, ``=~``, ``!~``.
    matchers: list[str] = Field(min_length=1, max_length=32)
    #: From when (default: now) until when the silence mutes.
    starts_at: datetime | None = None
    ends_at: datetime
    #: Why (required: whoever sees the silence later must know).
    comment: str = Field(min_length=1, max_length=1000)


class SilenceOut(_Out):
    id: str
    matchers: list[str]
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    created_by: str
    comment: str
    #: active, pending (starts later) or expired.
    status: str
    expired_at: datetime | None
    expired_by: str | None

    @classmethod
    def of(cls, silence: Silence, now: datetime) -> SilenceOut:
        status = (
            "active" if silence.active(now) else "pending" if silence.starts_at > now else "expired"
        )
        return cls(
            id=silence.silence_id,
            matchers=[str(m) for m in silence.matchers],
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            created_at=silence.created_at,
            created_by=silence.created_by,
            comment=silence.comment,
            status=status,
            expired_at=silence.expired_at,
            expired_by=silence.expired_by,
        )


class DeliveryOut(_Out):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    delivery_id: str
    receiver: str
    group_key: str
    #: The notification's: firing or resolved.
    status: str
    created_at: datetime
    #: pending, delivered or dead (the dead letter: no more tries).
    state: str
    attempts: int
    next_try_at: datetime | None
    #: The last try's answer or error.
    status_code: int | None
    error: str | None


class DeliveryDetailOut(DeliveryOut):
    #: The body sent (every try sends the same).
    payload: dict[str, Any]
    #: Each try: when, its outcome (delivered, retry, dead), status code, error, next try.
    tries: list[Attempt]

    @classmethod
    def detailed(cls, delivery: Delivery, attempts: list[Attempt]) -> DeliveryDetailOut:
        return cls(
            **DeliveryOut.model_validate(delivery).model_dump(),
            payload=json.loads(delivery.payload),
            tries=attempts,
        )
