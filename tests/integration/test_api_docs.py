"""GET /docs: Swagger UI served from the server itself, under a same-origin-only policy."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from wabroadcast.api.routes.docs import asset_url


class _References(HTMLParser):
    """The scripts, stylesheets and icons a page loads, and every URL it names."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.icons: list[str] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if "style" in found:
            self.inline_styles += 1
        if tag == "script":
            if "src" in found:
                self.scripts.append(found["src"])
            else:
                self._in_script = True
        elif tag == "style":
            self.inline_styles += 1
        elif tag == "link" and found.get("rel") == "stylesheet":
            self.stylesheets.append(found["href"])
        elif tag == "link" and "icon" in found.get("rel", "").split():
            self.icons.append(found["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (part.split() for part in policy.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


async def _docs(client: httpx.AsyncClient) -> tuple[httpx.Response, _References]:
    response = await client.get("/docs")
    assert response.status_code == 200, response.text
    references = _References()
    references.feed(response.text)
    return response, references


async def test_docs_is_an_html_page_under_a_same_origin_policy(client: httpx.AsyncClient) -> None:
    response, references = await _docs(client)
    assert response.headers["content-type"].startswith("text/html")
    policy = _directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert set(policy["img-src"]) <= {"'self'", "data:"}
    assert policy["connect-src"] == ["'self'"]
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    # Nothing the policy would block: no inline code, no other origin named anywhere.
    assert references.inline_scripts == 0
    assert references.inline_styles == 0
    assert re.findall(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}", response.text, re.IGNORECASE) == []
    assert 'data-openapi-url="/openapi.json"' in response.text
    assert "<title>wabroadcast API</title>" in response.text


async def test_everything_the_docs_page_loads_is_served_by_the_app(
    client: httpx.AsyncClient,
) -> None:
    _, references = await _docs(client)
    assert len(references.scripts) == 2  # Swagger UI's bundle, then our init script
    assert len(references.stylesheets) == 1
    expected_types = {
        **dict.fromkeys(references.scripts, "text/javascript"),
        **dict.fromkeys(references.stylesheets, "text/css"),
        **dict.fromkeys(references.icons, "image/png"),
    }
    for url, media_type in expected_types.items():
        assert url.startswith("/docs/static/"), url
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith(media_type), url
        assert response.headers["x-content-type-options"] == "nosniff"
        # Versioned URLs may be cached for good; the content decides the version.
        assert "immutable" in response.headers["cache-control"], url
        assert len(response.content) > 0
    bundle = (await client.get(references.scripts[0])).text
    assert "SwaggerUIBundle" in bundle
    init = (await client.get(references.scripts[1])).text
    assert "SwaggerUIBundle(" in init
    assert "data-openapi-url" in init


async def test_an_unversioned_asset_is_served_but_not_cached_for_good(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs/static/swagger-ui.css")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    stale = await client.get("/docs/static/swagger-ui.css?v=0000")
    assert stale.headers["cache-control"] == "no-cache"
    assert asset_url("swagger-ui.css").startswith("/docs/static/swagger-ui.css?v=")


async def test_an_unknown_docs_file_is_404(client: httpx.AsyncClient) -> None:
    for name in ("index.html", "..%2Fapp.py", "swagger-ui.js", "__init__.py"):
        response = await client.get(f"/docs/static/{name}")
        assert response.status_code == 404, name


async def test_openapi_json_is_still_served_and_does_not_list_the_docs_routes(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/whatsapp/broadcasts" in paths
    assert not any(path.startswith("/docs") for path in paths)


async def test_the_fastapi_default_docs_stay_off(client: httpx.AsyncClient) -> None:
    assert (await client.get("/redoc")).status_code == 404
    assert (await client.get("/docs/oauth2-redirect")).status_code == 404
