"""GET /docs: interactive API docs (Swagger UI) that keep the Content-Security-Policy.

FastAPI's own docs page loads Swagger UI from a CDN and starts it with an inline
script. Here Swagger UI's files come from the pinned ``fastapi-swagger`` package
(which ships the swagger-ui-dist bundle and stylesheet), are served from
``/docs/static/``, and are started by a small script of ours served the same way,
so the page runs under the dashboard's policy: scripts and styles from 'self' only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from html import escape
from importlib import resources

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response

from wabroadcast.web.rendering import SECURITY_HEADERS

router = APIRouter(include_in_schema=False)

STATIC_PREFIX = "/docs/static"
SWAGGER_UI_PACKAGE = "fastapi_swagger"

# Starts Swagger UI on the page's #swagger-ui element, reading the OpenAPI URL from it.
INIT_SCRIPT = b"""\
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null
  });
})();
"""

# Our name -> (file in the package, or None for ours; media type).
_ASSETS: dict[str, tuple[str | None, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "favicon.png": ("favicon-32x32.png", "image/png"),
    "init.js": (None, "text/javascript; charset=utf-8"),
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str


@cache
def _asset(name: str) -> Asset:
    """One file, read on first use: the bundle is large and most processes never serve it."""
    source, media_type = _ASSETS[name]
    if source is None:
        body = INIT_SCRIPT
    else:
        body = (resources.files(SWAGGER_UI_PACKAGE) / "resources" / source).read_bytes()
    return Asset(body, media_type, hashlib.sha256(body).hexdigest()[:12])


def asset_url(name: str, root_path: str = "") -> str:
    """A URL that changes whenever the file does, so browsers may cache it for good."""
    return f"{root_path}{STATIC_PREFIX}/{name}?v={_asset(name).version}"


def docs_page(title: str, openapi_url: str, root_path: str = "") -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="icon" type="image/png" href="{escape(asset_url("favicon.png", root_path))}">
<link rel="stylesheet" href="{escape(asset_url("swagger-ui.css", root_path))}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></div>
<script src="{escape(asset_url("swagger-ui-bundle.js", root_path))}"></script>
<script src="{escape(asset_url("init.js", root_path))}"></script>
</body>
</html>
"""


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    root_path = str(request.scope.get("root_path", "")).rstrip("/")
    openapi_url = root_path + str(request.app.openapi_url)
    page = docs_page(f"{request.app.title} API", openapi_url, root_path)
    return HTMLResponse(page, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get(STATIC_PREFIX + "/{name}")
async def docs_asset(name: str, v: str | None = None) -> Response:
    if name not in _ASSETS:
        raise HTTPException(404, "no such file")
    found = _asset(name)
    cache_control = "public, max-age=31536000, immutable" if v == found.version else "no-cache"
    return Response(
        found.body,
        media_type=found.media_type,
        headers={"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"},
    )
