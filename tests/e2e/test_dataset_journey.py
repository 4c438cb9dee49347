"""A reviewer's journey in the Dataset tab: open a sample, see the contamination finding,
approve and edit records, export the reviewed set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _pick_dropdown(page, label: str, option: str) -> None:
    page.get_by_label(label).click()
    page.get_by_role("option", name=option).first.click()


def test_review_journey(studio, page, shot):
    page.goto(studio.url)
    _pick_dropdown(page, "Sample or workspace dataset", "cognitive_modes_contaminated.jsonl")
    page.get_by_role("button", name="Open and check").click()
    status = page.locator("#ds-status")
    status.get_by_text("problem(s) found").wait_for()
    assert "format modes" in status.inner_text()
    findings = page.locator("#ds-findings")
    findings.get_by_text("foreign tags <action>").first.wait_for()
    shot(page, "checked")

    # Approve the first record; the progress bar counts it.
    page.locator("#ds-approve").click()
    page.locator("#ds-progress").get_by_text("1 approved").wait_for()

    # Edit the assistant reply of the record now shown (the second one).
    page.get_by_role("tab", name="Edit and note").click()
    _pick_dropdown(page, "Message to edit", "3 · assistant")
    text = page.locator("#ds-edit-text textarea")
    expect(page.locator("#ds-edit-text")).to_contain_text("Text of record 2")
    expect(text).not_to_have_value("")  # the reply's current text is loaded before we replace it
    text.fill("<instruction>Reviewed and corrected.</instruction> <action>fixed</action>")
    page.get_by_role("button", name="Save edit").click()
    page.get_by_text("Edit saved for record").wait_for()
    # The record re-renders after the edit (note box included); wait for it before typing the note.
    page.locator("#ds-record").get_by_text("Reviewed and corrected.").wait_for(state="attached")
    page.get_by_label("Reviewer note").fill("rewrote the reply")
    page.get_by_role("button", name="Save note").click()
    page.get_by_text("Note saved").wait_for()
    shot(page, "edited")

    # Review state is beside the dataset in the workspace, never in the original file.
    review_files = list((studio.home / "datasets").glob("*/review.json"))
    assert review_files, "review state was not saved in the workspace"
    state = json.loads(review_files[0].read_text())
    assert "rewrote the reply" in json.dumps(state)

    page.get_by_text("Export the reviewed dataset").click()
    page.get_by_role("button", name="Export as JSONL").click()
    page.get_by_text(".jsonl", exact=False).last.wait_for()
    shot(page, "exported")
    exported = [p for p in (studio.home / "datasets").rglob("*.jsonl") if "export" in p.name or "reviewed" in p.name]
    assert exported, "no exported file in the workspace"
    rows = [json.loads(line) for line in Path(exported[-1]).read_text().splitlines() if line.strip()]
    assert len(rows) == 90  # all rows except rejected: none rejected
    assert any("Reviewed and corrected." in json.dumps(row) for row in rows)


def test_edit_one_record_move_on_edit_another(studio, page, shot):
    """Issue 22: the editor kept record 1's text after Next and Save wrote it into the open record.
    Edit record 1, move on twice, edit record 3: each keeps its own text, record 2 none."""
    page.goto(studio.url)
    _pick_dropdown(page, "Sample or workspace dataset", "rag_grounding.jsonl")
    page.get_by_role("button", name="Open and check").click()
    page.locator("#ds-status").get_by_text("records").first.wait_for()
    page.get_by_role("tab", name="Edit and note").click()
    box, text = page.locator("#ds-edit-text"), page.locator("#ds-edit-text textarea")
    expect(box).to_contain_text("Text of record 1")
    original_one = text.input_value()
    text.fill("Record one, rewritten by the reviewer.")
    page.get_by_role("button", name="Save edit").click()
    page.get_by_text("Edit saved for record 1").wait_for()
    for number in (2, 3):
        page.locator("#ds-next").click()
        expect(box).to_contain_text(f"Text of record {number}")
    expect(text).not_to_have_value("Record one, rewritten by the reviewer.")
    assert text.input_value() != original_one  # record 3's own reply is loaded
    shot(page, "record-3-loaded")
    text.fill("Record three, rewritten by the reviewer.")
    page.get_by_role("button", name="Save edit").click()
    page.get_by_text("Edit saved for record 3").wait_for()
    shot(page, "record-3-saved")

    state = next(json.loads(f.read_text()) for f in (studio.home / "datasets").glob("rag_grounding*/review.json"))
    edited = {key: json.dumps(record) for key, record in state["records"].items() if "messages" in record}
    assert len(edited) == 2, state
    positions = {record["position"]: json.dumps(record) for record in state["records"].values() if "messages" in record}
    assert "Record one, rewritten" in positions[0] and "Record three, rewritten" in positions[2]
    page.locator("#ds-prev").click()
    expect(box).to_contain_text("Text of record 2")
    assert "rewritten by the reviewer" not in text.input_value()


def test_opening_a_dataset_offers_it_to_train_and_never_swaps_it_in(studio, page, shot):
    """Issue 22: with the smoke recipe loaded, opening a 2-row broken upload in the Dataset tab put
    it into the Train form; the form said "Recipe is valid" and planned 40 steps on it. Now the
    Train tab says which dataset a run uses and why, offers the opened one, and warns about it."""
    from tests.helpers.browser import open_tab

    broken = studio.home / "datasets" / "uploads" / "two-rows.jsonl"
    broken.parent.mkdir(parents=True, exist_ok=True)
    good = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]})
    broken.write_text(f"{good}\n{{broken\n{good}\n")
    page.goto(studio.url)
    open_tab(page, "Train")
    page.get_by_role("button", name="Load recipe").click()
    line = page.locator("#train-dataset")
    expect(line).to_contain_text("friction_sample.jsonl (the recipe's data.path)")
    open_tab(page, "Dataset")
    page.get_by_label("…or type a path inside the workspace", exact=False).fill("datasets/uploads/two-rows.jsonl")
    page.get_by_role("button", name="Open and check").click()
    page.locator("#ds-status").get_by_text("problem(s) found").wait_for()
    open_tab(page, "Train")
    use = page.locator("#train-use-dataset")
    expect(use).to_contain_text("Use two-rows.jsonl")
    expect(line).to_contain_text("friction_sample.jsonl")  # not swapped in behind the person's back
    shot(page, "offered")
    use.click()
    expect(line).to_contain_text("two-rows.jsonl (picked from the Dataset tab)")
    expect(line).to_contain_text("Only 2 usable example(s)")
    expect(line).to_contain_text("1 of 3 rows")
    expect(use).to_be_hidden()
    shot(page, "warned")
