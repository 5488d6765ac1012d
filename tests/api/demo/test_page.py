"""The demo page's files as the API serves them (the browser test drives the page)."""

from __future__ import annotations

import httpx


async def test_demo_page_is_served_at_the_root_with_a_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "https://js.hcaptcha.com" in csp
    assert '<script src="/static/app.js"' in page.text
    assert 'aria-live="polite"' in page.text


async def test_demo_page_scripts_and_styles_are_served_from_static(
    client: httpx.AsyncClient,
) -> None:
    script = await client.get("/static/app.js")
    style = await client.get("/static/style.css")
    assert (script.status_code, style.status_code) == (200, 200)
    assert "javascript" in script.headers["content-type"]
    assert "EventSource" in script.text
    assert (await client.get("/static/../settings.py")).status_code == 404


async def test_demo_page_loads_nothing_from_other_sites_but_hcaptcha(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/", "/static/app.js", "/static/style.css"):
        text = (await client.get(path)).text
        for scheme in ("http://", "https://", "//cdn"):
            assert scheme not in text.replace("https://js.hcaptcha.com", ""), path
