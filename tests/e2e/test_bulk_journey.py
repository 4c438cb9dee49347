"""A reviewer cleans a dataset without code: the near-duplicate card and finding, the findings
filter, keep one per group, redact what the personal-data filter shows, undo, export."""

from __future__ import annotations

import json
import random

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORDS = [f"{a}{b}" for a in ("oak", "fern", "moss", "reed", "pine") for b in ("stone", "lake", "hill", "wind", "cloud", "path")]


def _planted(folder):
    """20 records; record 21 says what record 3 says with a few words more; record 22 holds a
    phone number and an e-mail address."""
    rng = random.Random(4)
    rows = [{"id": f"r{i + 1}", "messages": [{"role": "user", "content": " ".join(rng.choices(WORDS, k=10))},
                                             {"role": "assistant", "content": " ".join(rng.choices(WORDS, k=35))}]}
            for i in range(20)]
    rows.append({"id": "r21", "messages": [rows[2]["messages"][0],
                                           {"role": "assistant", "content": rows[2]["messages"][1]["content"] + " once more"}]})
    rows.append({"id": "r22", "messages": [{"role": "user", "content": "Call +1 415 555 2671 or mail tom.baker@gmail.com"},
                                           {"role": "assistant", "content": "I will call tomorrow."}]})
    path = folder / "datasets" / "to-clean.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _pick(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option).first.click()


def test_clean_a_dataset_with_bulk_actions(studio, page, shot):
    path = _planted(studio.home)
    page.goto(studio.url)
    page.get_by_label("…or type a path inside the workspace, or a Hub dataset name (owner/name)").fill(str(path))
    page.locator("#ds-open").click()
    page.locator("#ds-status").get_by_text("checked in").wait_for(timeout=60_000)
    expect(page.locator("#ds-cards")).to_contain_text("Near duplicates")
    expect(page.locator("#ds-findings")).to_contain_text("says nearly what record 21 says")
    shot(page, "checked")

    _pick(page, "Findings", "near duplicates")
    expect(page.locator("#ds-page")).to_contain_text("r3")
    page.locator("#ds-bulk").get_by_text("Act on every record shown").click()
    _pick(page, "What to do", "keep one per group of duplicates (reject the repeats shown)")
    page.locator("#ds-bulk-apply").click()
    expect(page.locator("#ds-bulk-status")).to_contain_text("1 repeats rejected")
    expect(page.locator("#ds-page")).to_contain_text("rejected")
    shot(page, "kept-one")

    _pick(page, "Findings", "personal data or secrets")
    expect(page.locator("#ds-page")).to_contain_text("r22")
    _pick(page, "What to do", "redact personal data and secrets in the records shown")
    page.locator("#ds-bulk-apply").click()
    expect(page.locator("#ds-bulk-status")).to_contain_text("2 pieces of personal data or secrets redacted in 1 records")
    page.locator("#ds-next").click()  # the next record the filter shows
    expect(page.locator("#ds-record")).to_contain_text("[PHONE]")
    shot(page, "redacted")

    page.locator("#ds-bulk-undo").click()
    expect(page.locator("#ds-bulk-status")).to_contain_text("Undone: redact 1 records")
    expect(page.locator("#ds-record")).to_contain_text("415 555 2671")
    page.locator("#ds-bulk-apply").click()  # redact again, and keep it
    expect(page.locator("#ds-bulk-status")).to_contain_text("redacted in 1 records")

    page.get_by_text("Export the reviewed dataset").click()
    page.get_by_role("button", name="Export as JSONL").click()
    page.get_by_text("Wrote", exact=False).last.wait_for()
    exported = next((studio.home / "datasets").glob("to-clean-*/to-clean-reviewed.jsonl")).read_text()
    assert "[PHONE]" in exported and "tom.baker" not in exported and '"r3"' not in exported
    assert len(exported.splitlines()) == 21  # 22 records, the repeat rejected
    shot(page, "exported")
    page.set_viewport_size({"width": 390, "height": 900})
    page.locator("#ds-bulk").scroll_into_view_if_needed()
    shot(page, "phone")
