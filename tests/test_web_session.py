"""Signing in to the web app, in a real browser: keys by role, the session cookie,
CSRF, signing out, and what a page without a live session shows."""

from __future__ import annotations

import re

import httpx

from banking_analytics.access import Role
from web_fixtures import Site, Watched, sign_in


def _submit_key(tab: Watched, site: Site, key: str) -> None:
    tab.page.goto(f"{site.url}/signin")
    tab.page.fill("#key", key)
    with tab.page.expect_response(re.compile(r"/signin$")) as answer:
        tab.page.click("form[action='/signin'] button[type=submit]")
    tab.status = answer.value.status  # type: ignore[attr-defined]


def test_a_page_without_a_session_asks_to_sign_in_and_comes_back(tab: Watched, site: Site) -> None:
    tab.page.goto(f"{site.url}/performance?period=7d")
    assert tab.page.url == f"{site.url}/signin?next=/performance%3Fperiod%3D7d"
    tab.page.fill("#key", site.keys[Role.ANALYST])
    tab.page.click("form[action='/signin'] button[type=submit]")
    tab.page.wait_for_selector("#tile-success_rate")
    assert tab.page.url == f"{site.url}/performance?period=7d"


def test_an_unknown_key_is_refused(tab: Watched, site: Site) -> None:
    # The browser logs the 401 answer of the form as a failed resource: expected here.
    _submit_key(tab, site, "ba_live_notakey")
    assert tab.status == 401  # type: ignore[attr-defined]
    assert "unknown, revoked or expired" in tab.page.inner_text("#signin-error")
    assert not [c for c in tab.page.context.cookies() if c["name"] == "ba_session"]
    tab.errors.clear()


def test_an_ingest_key_cannot_sign_in(tab: Watched, site: Site) -> None:
    _submit_key(tab, site, site.keys[Role.INGEST])
    assert tab.status == 403  # type: ignore[attr-defined]
    assert "may not sign in" in tab.page.inner_text("#signin-error")
    assert not [c for c in tab.page.context.cookies() if c["name"] == "ba_session"]
    tab.errors.clear()


def test_the_session_cookie_is_httponly_strict_and_expires(tab: Watched, site: Site) -> None:
    sign_in(tab, site)
    (cookie,) = [c for c in tab.page.context.cookies() if c["name"] == "ba_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["expires"] > 0  # not a cookie for ever: it ends with the session
    assert cookie["secure"] is False  # served over plain HTTP here; Secure over HTTPS
    assert tab.page.evaluate("document.cookie") == ""  # scripts cannot read it


def test_the_cookie_is_secure_over_https(site: Site) -> None:
    # Behind a TLS-terminating proxy the app sees https (uvicorn's --proxy-headers):
    # here the scheme is set as such a proxy would make it.
    form = site.api.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = site.api.post(
        "/signin",
        data={"key": site.keys[Role.ANALYST], "csrf": csrf[1]},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "SameSite=strict" in cookie


def test_a_form_without_its_csrf_token_is_refused(tab: Watched, site: Site) -> None:
    sign_in(tab, site)
    cookies = {c["name"]: c["value"] for c in tab.page.context.cookies()}
    with httpx.Client(base_url=site.url, cookies=cookies) as client:
        # Sign-out with a wrong token: refused, and the session lives on.
        refused = client.post("/signout", data={"csrf": "forged"})
        assert refused.status_code == 403
        assert "The sign-out form was not this page" in refused.text
        assert client.get("/performance/data").status_code == 200
        # A form posted from another site is refused whatever it carries.
        other = client.post(
            "/signout", data={"csrf": "x"}, headers={"Origin": "https://evil.example"}
        )
        assert other.status_code == 403
        # Sign-in without the token its form set (login CSRF): refused.
        login = client.post("/signin", data={"key": site.keys[Role.ANALYST], "csrf": "x"})
        assert login.status_code == 403
    tab.page.reload()
    tab.page.wait_for_selector("#tile-success_rate")


def test_signing_out_ends_the_session_for_good(tab: Watched, site: Site) -> None:
    sign_in(tab, site)
    cookies = {c["name"]: c["value"] for c in tab.page.context.cookies()}
    tab.page.click("form.signout button")
    tab.page.wait_for_url(f"{site.url}/signin")
    # The old cookie, replayed, signs no one in: the session is gone on the server.
    with httpx.Client(base_url=site.url, cookies=cookies) as client:
        assert client.get("/performance/data").status_code == 401
        page = client.get("/performance")
        assert page.status_code == 401
        assert "sign in again" in page.text


def test_a_tampered_cookie_gives_a_clear_page(tab: Watched, site: Site) -> None:
    tab.page.context.add_cookies([{"name": "ba_session", "value": "forged-value", "url": site.url}])
    answer = tab.page.goto(f"{site.url}/performance")
    assert answer is not None
    assert answer.status == 401
    assert "session has ended or is not valid" in tab.page.inner_text("#problem-detail")
    tab.errors.clear()  # the 401 document itself is logged as a failed resource


def test_a_revoked_key_ends_its_sessions(tab: Watched, site: Site) -> None:
    issued = site.api.post(
        "/api/banking-analytics/admin/keys",
        json={"name": "short-lived", "role": "analyst"},
        headers=site.as_key(Role.ADMIN),
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    tab.page.goto(f"{site.url}/signin")
    tab.page.fill("#key", body["secret"])
    tab.page.click("form[action='/signin'] button[type=submit]")
    tab.page.wait_for_selector("#tile-success_rate")
    revoked = site.api.delete(
        f"/api/banking-analytics/admin/keys/{body['key_id']}", headers=site.as_key(Role.ADMIN)
    )
    assert revoked.status_code == 200, revoked.text
    answer = tab.page.goto(f"{site.url}/performance")
    assert answer is not None
    assert answer.status == 401
    tab.errors.clear()
