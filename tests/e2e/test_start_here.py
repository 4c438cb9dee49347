"""The first screen for a newcomer, in the browser at desktop and phone widths: the "Start here"
guide takes each step to its tab; hiding it is remembered by the browser across reloads."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("width,height", [(1366, 900), (390, 844)], ids=["desktop", "phone"])
def test_start_here_goes_to_each_step_and_hides_for_good(studio, browser, shot, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(studio.url)
        guide = page.locator("#start-here")
        expect(guide).to_be_visible()
        expect(guide).to_contain_text("1. Look at the data")
        expect(page.get_by_label("Sample or workspace dataset")).to_have_value("Sample: friction_sample.jsonl")
        shot(page, f"guide-{width}")
        page.locator("#start-go-train").click()
        expect(page.locator("#train-dataset")).to_contain_text("friction_sample.jsonl")
        expect(page.get_by_role("button", name="Start", exact=True)).to_be_visible()
        page.locator("#start-go-chat").click()
        expect(page.get_by_label("Tuned side")).to_be_visible()
        shot(page, f"went-to-chat-{width}")
        page.locator("#start-hide").click()
        expect(guide).to_be_hidden()
        page.reload()
        expect(page.locator("#start-show")).to_be_visible()
        expect(guide).to_be_hidden()  # remembered by this browser
        page.locator("#start-show").click()
        expect(guide).to_be_visible()
    finally:
        context.close()
