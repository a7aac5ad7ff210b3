"""What a request body may cost, decided before any of it is read.

FastAPI reads and parses a body before a route's dependencies run (the token check among
them), so this ASGI middleware stands in front of the app for every request that has a body:
- it must carry a valid token (sign-up aside), else 401 before a byte of it is read, and a
  user over their request rate gets 429 the same way;
- a Content-Length over the route's limit is 413 at once (an upload must say its length: 411);
- while the body is read the limit still holds (chunked bodies), and each part of it must
  arrive within body_timeout_s (408).
"""

from __future__ import annotations

import math
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portraitist.service.auth import WRONG_TOKEN, bearer_token, find_user
from portraitist.service.db import Database
from portraitist.service.settings import Settings

UPLOAD = ("POST", "/v1/photos")
SIGN_UP = ("POST", "/v1/users")
# multipart framing around the files of one upload request
FORM_OVERHEAD = 1 << 20


class Refused(Exception):
    """The answer to a request whose body will not be read (further)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.response = JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") != "0"


def _user_id(db: Database, token: str) -> str | None:
    with db.sessions() as session:
        user = find_user(session, token)
        return user.id if user else None


class BodyGuard:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.settings = settings
        self.upload_limit = settings.max_upload_files * settings.max_photo_bytes + FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        try:
            limit = await self._admit(scope)
        except Refused as refused:
            await refused.response(scope, receive, send)
            return
        refusals: list[Refused] = []
        read = 0

        async def limited_receive() -> Message:
            nonlocal read
            try:
                with anyio.fail_after(self.settings.body_timeout_s):
                    message = await receive()
            except TimeoutError:
                refusals.append(Refused(408, "The request body stopped arriving; send it again."))
                raise refusals[-1] from None
            read += len(message.get("body", b""))
            if read > limit:
                refusals.append(Refused(413, self._too_large(limit)))
                raise refusals[-1]
            return message

        async def guarded_send(message: Message) -> None:
            if not refusals:  # once refused, whatever the app makes of the cut-off body is dropped
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Refused:
            pass
        if refusals:
            await refusals[0].response(scope, receive, send)

    async def _admit(self, scope: Scope) -> int:
        """The body's size limit, or Refused before any of it is read."""
        headers = Headers(scope=scope)
        route = (scope["method"], scope["path"])
        limit = self.upload_limit if route == UPLOAD else self.settings.max_json_bytes
        if route != SIGN_UP:
            service: Any = scope["app"].state.service
            token = bearer_token(headers.get("authorization", ""))
            user_id = await anyio.to_thread.run_sync(_user_id, service.db, token)
            if user_id is None:
                raise Refused(401, WRONG_TOKEN, {"WWW-Authenticate": "Bearer"})
            wait = service.limiter.blocked(user_id)
            if wait is not None:
                raise Refused(429, too_many_requests(wait), {"Retry-After": str(math.ceil(wait))})
        length = headers.get("content-length")
        if length is None and route == UPLOAD:
            raise Refused(411, "Send the upload with a Content-Length header.")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise Refused(413, self._too_large(limit))
        return limit

    @staticmethod
    def _too_large(limit: int) -> str:
        return (
            f"The request body is larger than {limit / 2**20:.1f} MiB; send fewer or smaller photos per "
            "upload, or a smaller job."
        )


def too_many_requests(wait_s: float) -> str:
    return f"Too many requests; wait {math.ceil(wait_s)} s (Retry-After) and slow down."
