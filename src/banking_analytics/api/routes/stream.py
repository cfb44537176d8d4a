"""The event stream: alert transitions and metric answers as they change, over Server-Sent
Events (docs/monitoring.md, "The event stream")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._connections import STOPPING
from banking_analytics.api._models import MetricQueryIn, MetricQueryOut
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._settings import ApiSettings
from banking_analytics.api._stream import StreamHub, Transition, sse, transition_event
from banking_analytics.api.deps import Analytics, QueryBudgetOf, ReadAnalytics, Settings
from banking_analytics.api.routes.metrics import answer_metric_query

__all__ = ["router"]

router = APIRouter(tags=["monitoring"], route_class=PolicedRoute)
_log = logging.getLogger(__name__)
EVENT_STREAM = "text/event-stream"
_HEARTBEAT = b": heartbeat\n\n"


class _EventStream(StreamingResponse):
    """A stream that gives up its place (``release``) however it ends: finished, cut off
    by the client, or cancelled before its first byte."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type=EVENT_STREAM,
            # No cache or proxy may hold events back (nginx buffers unless told).
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _queries(texts: list[str], settings: ApiSettings) -> list[MetricQueryIn]:
    if len(texts) > settings.stream_max_queries:
        raise ProblemError(422, f"query (query): at most {settings.stream_max_queries} queries")
    bodies = []
    for index, text in enumerate(texts):
        try:
            bodies.append(MetricQueryIn.model_validate_json(text))
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("query", "query", index, *e["loc"])} for e in exc.errors()]
            ) from None
    return bodies


def _resume_from(query: int | None, header: str | None) -> int | None:
    if query is not None:
        return query
    if header is None:
        return None
    if not header.strip().isdigit():
        raise ProblemError(422, "Last-Event-ID (header): an event id, a whole number >= 0")
    return int(header)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {EVENT_STREAM: {}}, "description": "Server-Sent Events"}},
)
async def event_stream(
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    settings: Settings,
    budget: QueryBudgetOf,
    query: Annotated[
        list[str] | None,
        Query(
            description="A metric query (the JSON body of POST .../metrics/query) to follow: "
            "its answer now, and again each time the data changes it; repeatable"
        ),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, description="Resume after this event id (as the Last-Event-ID header)"),
    ] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Alert transitions as every replica's evaluators record them (``alert`` events, their
    id the transition's number in the history), answers to the metric queries named
    (``metric`` events, again whenever the data changes the answer), and a heartbeat
    comment every ``stream_heartbeat_seconds``. ``Last-Event-ID`` replays the transitions
    after that id first (at most ``stream_replay_limit``; a ``gap`` event says if more
    were missed). A client too slow to take its events gets an ``overflow`` event and
    the end of the stream."""
    resume = _resume_from(last_event_id, last_event_id_header)
    bodies = _queries(query or [], settings)

    def answer(body: MetricQueryIn) -> dict[str, Any]:
        """As ``POST .../metrics/query`` answers it: through its response model."""
        found = answer_metric_query(body, request, analytics, principal, budget)
        return MetricQueryOut.model_validate(found).model_dump(mode="json")

    answers = [await run_in_threadpool(answer, body) for body in bodies]
    hub: StreamHub = request.app.state.stream_hub
    subscriber = hub.subscribe(principal.actor, follows_metrics=bool(bodies))
    stopping: asyncio.Event | None = request.scope.get("extensions", {}).get(STOPPING)

    async def events() -> AsyncIterator[bytes]:
        for index, first in enumerate(answers):
            yield sse({"query": index, "answer": first}, event="metric")
        sent = resume
        if resume is not None:
            limit = settings.stream_replay_limit
            store = analytics.monitor.store
            rows = await anyio.to_thread.run_sync(store.transitions_after, resume, limit + 1)
            for row in rows[:limit]:
                yield transition_event(row)
                sent = row.history_id
            if len(rows) > limit:
                yield sse(
                    {
                        "detail": f"more than {limit} transitions after {resume}; see GET "
                        ".../alerts/history for the rest",
                        "after": sent,
                    },
                    event="gap",
                )
        while True:
            items = await subscriber.take(settings.stream_heartbeat_seconds, stopping)
            if stopping is not None and stopping.is_set():
                return
            if subscriber.overflowed:
                yield sse(
                    {
                        "detail": f"more than {settings.stream_queue_events} events waited for "
                        "this client; reconnect with Last-Event-ID to resume",
                        "after": sent,
                    },
                    event="overflow",
                )
                return
            if items is None:
                yield _HEARTBEAT
                continue
            data_changed = False
            for item in items:
                if isinstance(item, Transition):
                    number = item.row.history_id
                    assert number is not None
                    if sent is None or number > sent:
                        yield transition_event(item.row)
                        sent = number
                else:
                    data_changed = True
            if data_changed:
                async for event in new_answers():
                    yield event

    async def new_answers() -> AsyncIterator[bytes]:
        """The answers the data's change changed (each query asked again: the metric
        cache answers those whose tables did not change)."""
        for index, body in enumerate(bodies):
            try:
                new = await run_in_threadpool(answer, body)
            # The store unreachable for a moment: the next change asks again.
            except Exception:
                _log.exception("a streamed metric query failed")
                continue
            if new != answers[index]:
                answers[index] = new
                yield sse({"query": index, "answer": new}, event="metric")

    return _EventStream(events(), lambda: hub.unsubscribe(subscriber))
