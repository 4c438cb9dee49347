"""The studio opens in a real browser with its header and four tabs."""

from __future__ import annotations

import pytest

from tests.helpers.browser import open_tab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_page_shows_header_and_tabs(studio, page, shot):
    page.goto(studio.url)
    header = page.locator("#studio-header")
    header.get_by_text("Workspace").wait_for()
    assert str(studio.home) in header.inner_text()
    assert "cpu" in header.inner_text() or "cuda" in header.inner_text()
    for name in ("Dataset", "Train", "Chat", "Export"):
        assert page.get_by_role("tab", name=name, exact=True).is_visible()
    shot(page, "opened")
    open_tab(page, "Export")
    shot(page, "export-tab")
