"""With a login on, the browser shows gradio's login form (and only that) before logging in, and
the whole studio after."""

from __future__ import annotations

import pytest

from tests.helpers.browser import Studio

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def guarded(studio_home_e2e):
    server = Studio(studio_home_e2e, {"STUDIO_AUTH": "ana:s3cret-pass", "STUDIO_DEMO": "0"}).start()
    yield server
    server.close()


def test_login_form_first_then_the_studio(guarded, page, shot):
    page.goto(guarded.url)
    page.get_by_role("button", name="Login").wait_for()
    assert page.get_by_text("Recipe YAML").count() == 0
    shot(page, "login-form")
    page.get_by_label("username").fill("ana")
    page.get_by_label("password").fill("s3cret-pass")
    page.get_by_role("button", name="Login").click()
    page.get_by_role("tab", name="Train", exact=True).wait_for()
    shot(page, "logged-in")
