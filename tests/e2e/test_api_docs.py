"""/docs in a real browser: Swagger UI renders and runs under the page's CSP, nothing blocked."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Request, expect

from tests.e2e.conftest import Server

ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.slow
expect.set_options(timeout=TIMEOUT_MS)

# Runs before the page's own scripts (injected by the browser, not subject to the page's CSP).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_docs_lists_the_operations_and_runs_one_without_csp_violations(
    server: Server, chromium: Browser
) -> None:
    paths = httpx.get(f"{server.base_url}/openapi.json").json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_VIOLATIONS)
    tab = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            problems.append(f"console {message.type}: {message.text}")

    def on_request(request: Request) -> None:
        if not request.url.startswith(server.base_url):
            problems.append(f"request to another origin: {request.url}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("request", on_request)
    tab.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    try:
        response = tab.goto(f"{server.base_url}/docs")
        assert response is not None
        assert response.status == 200
        assert "'unsafe-inline'" not in response.headers["content-security-policy"]

        # The operation list renders: every operation of /openapi.json has its block.
        path = tab.locator(".opblock-summary-path")
        health = tab.locator(".opblock", has=path.filter(has_text="/healthz")).first
        expect(health).to_be_visible()
        expect(tab.locator(".opblock")).to_have_count(operations)
        expect(path.filter(has_text="/api/whatsapp/broadcasts").first).to_be_visible()

        # And it works: try /healthz (no key needed) and see the server's answer rendered.
        health.locator(".opblock-summary").click()
        health.get_by_role("button", name="Try it out").click()
        health.get_by_role("button", name="Execute").click()
        answer = health.locator(".live-responses-table")
        expect(answer.locator("tbody .response-col_status").first).to_have_text("200")
        expect(answer).to_contain_text('"status": "ok"')

        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=False)
        violations: list[str] = tab.evaluate("window.__cspViolations")
    finally:
        context.close()
    assert violations == [], f"CSP violations on /docs: {violations}"
    assert problems == [], f"problems on /docs: {problems}"
