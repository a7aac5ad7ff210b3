"""The web page at / (a client of the API, plain HTML and JavaScript) and the API's page at /docs."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from portraitist.service.headers import with_inline_scripts_allowed

STATIC = resources.files("portraitist.service") / "static"
# where Swagger UI's files come from (FastAPI's default), allowed on the /docs page only
_DOCS_CDN = "https://cdn.jsdelivr.net"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(str(STATIC / "index.html"), media_type="text/html")


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    app = request.app
    page = get_swagger_ui_html(openapi_url=app.openapi_url or "", title=f"{app.title} API")
    return with_inline_scripts_allowed(page, _DOCS_CDN)
