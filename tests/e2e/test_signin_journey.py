"""A Space with "Sign in with Hugging Face": two signed-in visitors, each in their own browser,
see only their own runs, through the page and through the real queue API. The sign-in is gradio's
own: its OAuth session cookie, signed with the key gradio derives from the Space's OAuth secret
(the Hub's side of the login, which needs the network, is the only part stood in for)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import httpx
import pytest

from tests.helpers.browser import Studio, open_tab
from tests.helpers.data import visitors_runs
from tests.helpers.server import queue_call

pytestmark = pytest.mark.e2e

SECRET = "space-oauth-secret"
SPACE_ENV = {"SYSTEM": "spaces", "SPACE_ID": "tuning-studio/demo", "OAUTH_CLIENT_ID": "studio-test-client", "OAUTH_CLIENT_SECRET": SECRET,
             "OAUTH_SCOPES": "openid profile contribute-repos jobs", "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}


def signed_in_cookie(name: str) -> str:
    """The `session` cookie gradio's OAuth callback sets for a signed-in visitor (starlette's
    SessionMiddleware format, with the key gradio.oauth.attach_oauth derives)."""
    from itsdangerous import TimestampSigner

    info = {"access_token": f"hf_{name}_oauth", "token_type": "bearer", "scope": SPACE_ENV["OAUTH_SCOPES"],
            "expires_at": int(time.time()) + 3600,
            "userinfo": {"preferred_username": name, "name": name.title(), "picture": "", "profile": ""}}
    data = base64.b64encode(json.dumps({"oauth_info": info}).encode())
    key = hashlib.sha256((SECRET + "-v4").encode()).hexdigest()
    return TimestampSigner(str(key)).sign(data).decode()


@pytest.fixture(scope="module")
def space(studio_home_e2e):
    visitors_runs(studio_home_e2e, {f"hf:{user}": f"{user}-space-run" for user in ("ana", "bob")})
    server = Studio(studio_home_e2e, SPACE_ENV).start()
    yield server
    server.close()


@pytest.mark.parametrize("user, other, width", [("ana", "bob", 1366), ("bob", "ana", 390)])
def test_signed_in_visitors_see_only_their_own_runs(space, browser, shot, user, other, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.add_cookies([{"name": "session", "value": signed_in_cookie(user), "url": space.url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(space.url)
        page.get_by_text("your own (nobody else sees it)").wait_for()
        page.get_by_text(f"Logout ({user})").wait_for()  # gradio's LoginButton reads the same sign-in
        open_tab(page, "Train")
        page.get_by_text(f"{user}-space-run").first.wait_for()
        assert page.get_by_text(f"{other}-space-run").count() == 0
        shot(page, f"{user}-{width}")
    finally:
        context.close()


def test_signed_in_visitors_through_the_queue_api(space):
    config = httpx.get(f"{space.url}/config", timeout=30).json()
    index = next(i for i, dep in enumerate(config["dependencies"]) if dep.get("api_name") == "refresh_history")
    for user, other in (("ana", "bob"), ("bob", "ana")):
        with httpx.Client(cookies={"session": signed_in_cookie(user)}, timeout=120) as client:
            answer = queue_call(space.url, uuid.uuid4().hex, config["dependencies"][index]["id"], [], client=client)
        assert f"{user}-space-run" in answer and f"{other}-space-run" not in answer
    anonymous = queue_call(space.url, uuid.uuid4().hex, config["dependencies"][index]["id"], [])
    assert "-space-run" not in anonymous  # not signed in: a workspace of the session's own
