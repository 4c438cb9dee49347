"""Two people on one studio (STUDIO_AUTH with two logins), each in their own browser: each sees
only their own runs, and the header says the workspace is theirs, at desktop and phone widths."""

from __future__ import annotations

import pytest

from tests.helpers.browser import Studio, open_tab
from tests.helpers.data import visitors_runs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_people(studio_home_e2e):
    visitors_runs(studio_home_e2e, {f"user:{user}": f"{user}-first-run" for user in ("ana", "bob")})
    server = Studio(studio_home_e2e, {"STUDIO_AUTH": "ana:pw-of-ana,bob:pw-of-bob", "STUDIO_DEMO": "0"}).start()
    yield server
    server.close()


@pytest.mark.parametrize("user, other, width", [("ana", "bob", 1366), ("bob", "ana", 390)])
def test_each_person_sees_only_their_own_runs(two_people, browser, shot, user, other, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(two_people.url)
        page.get_by_label("username").fill(user)
        page.get_by_label("password").fill(f"pw-of-{user}")
        page.get_by_role("button", name="Login").click()
        page.get_by_text("your own (nobody else sees it)").wait_for()
        open_tab(page, "Train")
        page.get_by_text(f"{user}-first-run").first.wait_for()
        assert page.get_by_text(f"{other}-first-run").count() == 0
        html = page.content()
        at = html.find(str(two_people.home))
        assert at < 0, html[max(0, at - 300):at + 200]
        shot(page, f"{user}-{width}")
    finally:
        context.close()
