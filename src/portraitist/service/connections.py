"""How the API's server treats connections: uvicorn's own options, and a deadline for headers.

uvicorn closes a kept-alive connection that stays idle (timeout_keep_alive) but has no
deadline for a request's headers: a client that connects and sends nothing, or sends its
headers a byte at a time, holds a connection for as long as it likes. The protocol below
(uvicorn's h11 one) closes such a connection after header_timeout_s. Body reads are timed by
guard.BodyGuard, which can answer 408.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from portraitist.service.settings import Settings

# how long a shutdown waits for open responses (event streams stay open for as long as a job runs)
GRACEFUL_SHUTDOWN_S = 5


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers take too long to arrive."""

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_deadline: asyncio.TimerHandle | None = None

    def _waiting_for_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        if self._waiting_for_request() and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        # the first bytes of the next request on a kept-alive connection start its deadline
        if self._header_deadline is None and self._waiting_for_request():
            self._arm()
        super().data_received(data)
        if not self._waiting_for_request():  # the headers arrived: a request is being served
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def server_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """Keyword arguments of uvicorn.run for the API."""
    return {
        "host": host,
        "port": port,
        "log_level": "info",
        # longer than clients poll (every few seconds), so a poll rarely meets a connection closing
        "timeout_keep_alive": round(settings.idle_timeout_s),
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "http": functools.partial(HeaderDeadlineProtocol, header_timeout_s=settings.header_timeout_s),
    }
