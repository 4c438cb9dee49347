"""Making datasets in the browser: grounded Q&A from the sample documents through a stand-in
Ollama server (the real client, in the studio's background worker), watched to the end and
opened in the Dataset tab; then the mode build from the sample records, opened the same way."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.helpers.browser import MAKE_OLLAMA_PORT
from tests.helpers.ollama_standin import StandIn

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_make_qa_then_review_it(studio, page, shot):
    with StandIn(["malformed"], delay_s=0.05, port=MAKE_OLLAMA_PORT) as server:
        page.goto(studio.url)
        page.get_by_text("Make a dataset: Q&A from documents").click()
        page.locator("#make-qa-name input, #make-qa-name textarea").first.fill("e2e-qa")
        page.locator("#make-count input").fill("6")
        page.locator("#make-host input, #make-host textarea").first.fill(server.host)
        page.locator("#make-model input, #make-model textarea").first.fill("qwen3:4b")
        page.locator("#make-start").click()
        try:
            page.locator("#make-status").get_by_text("is ready").wait_for(timeout=90_000)
        finally:
            shot(page, "after-start")
        expect(page.locator("#make-progress")).to_contain_text(re.compile(r"6 / 6 pairs · 6 kept · 1 rejected"))
        expect(page.locator("#make-progress")).to_contain_text("pairs/min")
        shot(page, "made")
    page.locator("#make-open").click()
    status = page.locator("#ds-status")
    status.get_by_text("checked in").wait_for(timeout=60_000)
    assert "e2e-qa.jsonl" in status.inner_text() and "6 records" in status.inner_text()
    assert "format messages" in status.inner_text()
    page.locator("#ds-record").get_by_text("Context:").first.wait_for()
    shot(page, "opened")


def test_mode_build_then_review_it(studio, page, shot):
    page.goto(studio.url)
    page.get_by_text("Make a dataset: Q&A from documents").click()
    page.get_by_role("tab", name="Mode-tagged samples from raw records").click()
    page.locator("#make-modes-build").click()
    page.locator("#make-modes-summary").get_by_text("Clean").wait_for(timeout=60_000)
    shot(page, "built")
    page.locator("#make-modes-open").click()
    status = page.locator("#ds-status")
    status.get_by_text("checked in").wait_for(timeout=60_000)
    assert "final.jsonl" in status.inner_text() and "36 records" in status.inner_text()
    assert "format modes" in status.inner_text()
    shot(page, "opened")


def test_make_qa_with_the_embedded_model(studio, page, shot):
    """The bundled 135M model through transformers, one pair, no retries: the run completes and
    its pair is either kept (and opens for review) or set aside with its reason."""
    page.goto(studio.url)
    page.get_by_text("Make a dataset: Q&A from documents").click()
    page.get_by_label("transformers (local model)").check()
    expect(page.locator("#make-model input, #make-model textarea").first).to_have_value("embedded")
    page.locator("#make-count input").fill("1")
    page.get_by_label("Token budget per reply (num_predict)").fill("40")
    page.get_by_label("Retries per pair").fill("0")
    name = page.locator("#make-qa-name input, #make-qa-name textarea").first
    name.fill("e2e-embedded")
    expect(name).to_have_value("e2e-embedded")
    page.locator("#make-start").click()
    expect(page.locator("#make-status")).to_contain_text("e2e-embedded.jsonl")
    page.locator("#make-status").get_by_text(re.compile("is ready|finished without")).wait_for(timeout=300_000)
    progress = page.locator("#make-progress").inner_text()
    assert "1 / 1 pairs" in progress and "completed" in progress
    shot(page, "made")
    page.locator("#make-open").click()
    status = page.locator("#ds-status")
    if "1 kept" in progress:
        status.get_by_text("checked in").wait_for(timeout=60_000)
        assert "e2e-embedded.jsonl" in status.inner_text()
    else:  # the small model's pair was rejected: the empty file says so instead of breaking the page
        expect(status).to_contain_text("e2e-embedded.jsonl")
        assert "rejected.log" in page.locator("#make-status").inner_text()
    shot(page, "opened")
