"""Security headers: every response is nosniff and sends no referrer; every HTML page also gets a
Content-Security-Policy that allows no inline script and no framing.

The web page keeps the user's token in the browser, and the share-link report is HTML served
from the same origin: a script smuggled into either could read the token. The report is also
sandboxed (its own origin in the browser's eyes), since it shows what a job's user asked for.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _policy(sources: str = "'self'", inline_scripts: str = "") -> str:
    return (
        f"default-src 'none'; script-src {sources}{inline_scripts}; style-src {sources} 'unsafe-inline'; "
        f"img-src {sources} data: blob:; connect-src 'self'; font-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


CSP = _policy()
SANDBOXED_CSP = CSP + "; sandbox"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", CSP)
                    headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def with_inline_scripts_allowed(page: HTMLResponse, *sources: str) -> HTMLResponse:
    """A page from a library that writes its set-up script inline (the API docs): the policy allows
    exactly those scripts, by hash, and the named origins their files come from."""
    hashes = [
        " 'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page.body.decode())
    ]
    page.headers["Content-Security-Policy"] = _policy(" ".join(["'self'", *sources]), "".join(hashes))
    return page
