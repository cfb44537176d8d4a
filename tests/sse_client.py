"""A Server-Sent Events reader for the tests and the benchmark: events parsed from an httpx
streaming response, as the WHATWG rules have them (fields, comments, blank-line ends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Event", "events"]


@dataclass(frozen=True)
class Event:
    """One event: its type (``message`` if none was given), id, and data parsed as JSON;
    a comment line (a heartbeat) is an event of type ``comment``."""

    type: str
    id: str | None
    data: Any


def events(response: httpx.Response) -> Iterator[Event]:
    kind, event_id, data = None, None, []
    for line in response.iter_lines():
        if line.startswith(":"):
            yield Event("comment", None, line[1:].strip())
            continue
        if line == "":
            if data:
                yield Event(kind or "message", event_id, json.loads("\n".join(data)))
            kind, event_id, data = None, None, []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "id":
            event_id = value
        elif name == "data":
            data.append(value)
