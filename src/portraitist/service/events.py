"""A job's progress as Server-Sent Events: its JobEvent rows in order, until a terminal status.

Each event carries its row id as the SSE `id`, so a client that reconnects with
`Last-Event-ID` (browsers do so by themselves) continues where it stopped, and the stream
ends after the event that says succeeded, failed or cancelled. The database is polled with
short transactions: no connection is held while a client waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import anyio
from sqlalchemy import select

from portraitist.service.db import Database
from portraitist.service.models import TERMINAL, Job, JobEvent
from portraitist.service.schemas import EventOut

POLL_S = 0.5
KEEPALIVE_S = 15.0


def _events_after(db: Database, job_id: str, after: int) -> tuple[list[EventOut], bool]:
    """Events newer than `after`, and whether the job still exists."""
    with db.session() as session:
        exists = session.scalar(select(Job.id).where(Job.id == job_id)) is not None
        rows = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after).order_by(JobEvent.id)
        ).all()
        return [EventOut.of(row) for row in rows], exists


def format_event(event: EventOut) -> str:
    return f"id: {event.id}\nevent: progress\ndata: {event.model_dump_json()}\n\n"


async def event_stream(db: Database, job_id: str, after: int = 0) -> AsyncIterator[str]:
    """SSE text for the job's events after id `after`, ending at a terminal status or deletion."""
    yield f"retry: {int(POLL_S * 4000)}\n\n"
    quiet_since = time.monotonic()
    while True:
        events, exists = await anyio.to_thread.run_sync(_events_after, db, job_id, after)
        for event in events:
            yield format_event(event)
            after = event.id
            if event.status in TERMINAL:
                return
        if not exists:
            return
        if events:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_S:
            yield ": keep-alive\n\n"  # a comment line: keeps proxies from closing an idle stream
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_S)
