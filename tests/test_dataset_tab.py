"""The Dataset tab's handlers (studio.ui.dataset: tab, record, state), called directly,
as the browser would call them."""

from __future__ import annotations

import json

from core.dataset import review
from core.workspace import ASSETS, workspace
from studio.ui.dataset import record as rec
from studio.ui.dataset import state as dstate
from studio.ui.dataset import summary as dataset_summary
from studio.ui.dataset import tab

FILTERS = ("any", "any", False, "", "file order")


def open_copy(name: str, tmp_home=None) -> str:
    """Open a copy of a bundled asset placed in the test's workspace (review state stays private)."""
    target = workspace().datasets / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((ASSETS / name).read_bytes())
    path, status = tab.open_dataset(None, None, str(target), "auto", "")
    assert path, status
    dataset_summary.check_dataset(path)
    return path


def test_open_check_and_findings_on_the_contaminated_sample():
    target = workspace().datasets / "c.jsonl"
    target.write_bytes((ASSETS / "cognitive_modes_contaminated.jsonl").read_bytes())
    path, status = tab.open_dataset(None, None, str(target), "auto", "")
    assert "format **modes**" in status and "90 records" in status
    status, cards, *_plots, rows, modes = dataset_summary.check_dataset(path)
    assert "7 problem(s)" in status and "Mode contamination" in cards
    assert [4, 4, "foreign tags <action>", "a sample of mode dual contains tags of mode agent",
            "Remove the other mode's tags, or reject the record: they teach the model to mix modes."] in rows
    assert all(row[4] for row in rows), "every finding says what to do"
    assert modes["choices"] == ["any", "dual", "emulation", "agent"]


def test_browse_filters_pages_and_search():
    path = open_copy("cognitive_modes_contaminated.jsonl")
    rows, caption, page = tab.browse(path, *FILTERS, 1)
    assert len(rows) == tab.PAGE_SIZE and rows[0][:4] == [1, "modes-001", "dual", "pending"] and "90 matching" in caption
    flagged, caption, _ = tab.browse(path, "any", "any", True, "", "file order", 1)
    assert [r[0] for r in flagged] == [4, 8, 12, 25, 32]
    agents, _, _ = tab.browse(path, "agent", "any", False, "", "file order", 1)
    assert {r[2] for r in agents} == {"agent"}
    found, caption, _ = tab.browse(path, "any", "any", False, "HEXAGONAL lattice", "file order", 1)
    assert [r[1] for r in found] == ["modes-001"]
    last, caption, page = tab.browse(path, *FILTERS, 99)
    assert page == 6 and "page 6 of 6" in caption


def test_record_view_highlights_tags_and_shows_findings():
    path = open_copy("cognitive_modes_contaminated.jsonl")
    shown = rec.show_record(path, 4)
    number, html, original, choices, swap = shown.number, shown.view, shown.original, shown.which, shown.swap
    assert number == 4 and "foreign tags &lt;action&gt;" in html
    assert 'title="agent mode tag"' in html and 'title="dual mode tag"' in html
    assert json.loads(original)["id"] == "modes-004" and swap["visible"] is False
    assert choices["choices"] == ["1 · system", "2 · user", "3 · assistant"]
    assert choices["value"] == "3 · assistant"  # the reply is what a reviewer edits most, so it is ready
    assert shown.editing == {"id": "modes-004", "number": 4, "which": "3 · assistant"}
    assert "record 4" in shown.edit_text["label"] and shown.edit_text["value"]


def test_think_blocks_collapse_in_the_chat_view():
    path = open_copy("friction_sample.jsonl")
    html = rec.show_record(path, 1)[1]
    assert "<details" in html and "Thinking (" in html and "&lt;think&gt;" not in html


def test_review_keys_advance_and_persist():
    path = open_copy("cognitive_modes.jsonl")
    assert rec.approve_record(path, 1, *FILTERS) == 2
    assert rec.reject_record(path, 2, *FILTERS) == 3
    state = review.open_review(path)
    assert state.status("modes-001") == "approved" and state.status("modes-002") == "rejected"
    # under a 'pending' filter the next record skips what was reviewed
    assert dstate.next_record(path, 1, "any", "pending", False, "", "file order") == 3
    assert dstate.previous_record(path, 5, "any", "pending", False, "", "file order") == 4
    rows, _, _ = tab.browse(path, "any", "approved", False, "", "file order", 1)
    assert [r[0] for r in rows] == [1]
    assert rec.reset_record(path, 2, *FILTERS) == 2 and review.open_review(path).status("modes-002") == "pending"
    assert "1 approved" in rec.show_record(path, 1).progress


def test_edit_note_and_revert():
    path = open_copy("rag_grounding.jsonl")
    text, editing = rec.choose_message(path, 1, "3 · assistant")
    assert text["value"].startswith("According to the context")
    message = rec.save_edit(path, 1, "3 · assistant", "A shorter grounded answer.", editing)
    assert "original file is unchanged" in message
    html = rec.show_record(path, 1)[1]
    assert "A shorter grounded answer." in html and "edited" in html
    assert "Note saved" in rec.save_note(path, 1, "checked against the passage")
    assert rec.show_record(path, 1)[3] == "checked against the passage"
    rec.revert_edits(path, 1)
    assert "According to the context" in rec.show_record(path, 1)[1]


def test_the_editor_follows_the_open_record_and_saves_only_into_it():
    """Issue 22: after Approve / Next the editor held record 1's text and Save wrote it into the
    open record. Every record change reloads the editor; a save names and checks its record."""
    path = open_copy("rag_grounding.jsonl")
    first = rec.show_record(path, 1)
    edited = "Record one, edited."
    assert "Edit saved for record 1" in rec.save_edit(path, 1, first.which["value"], edited, first.editing)
    number = rec.approve_record(path, 1, *FILTERS)  # moves on to record 2
    second = rec.show_record(path, number, first.which["value"], first.editing)
    assert second.number == 2 and second.editing["id"] != first.editing["id"]
    assert second.edit_text["value"] != edited and "record 2" in second.edit_text["label"]
    # a text box that still holds record 1 (a stale page) is refused, and record 2 keeps its text
    refused = rec.save_edit(path, 2, first.which["value"], edited, first.editing)
    assert refused.startswith("**Not saved.**") and "record 1" in refused
    state = review.open_review(path)
    assert "messages" not in state.get(second.editing["id"])
    # record 3 edited with its own editor: records 1 and 3 hold their own text
    third = rec.show_record(path, 3, second.which["value"], second.editing)
    assert "Edit saved for record 3" in rec.save_edit(path, 3, third.which["value"], "Record three.", third.editing)
    assert rec.show_record(path, 1).edit_text["value"] == edited
    assert rec.show_record(path, 3).edit_text["value"] == "Record three."
    # after a save on the same record the picked message stays picked
    user = rec.choose_message(path, 3, "2 · user")[1]
    again = rec.show_record(path, 3, "2 · user", user)
    assert again.which["value"] == "2 · user" and again.editing == user


def test_preference_pairs_show_side_by_side_and_swap():
    path = open_copy("epistemic_dpo.jsonl")
    shown = rec.show_record(path, 1)
    html, choices, swap = shown.view, shown.which, shown.swap
    assert swap["visible"] is True and "chosen reply" in html and "rejected reply" in html
    assert choices["value"] == "chosen reply"
    before = rec.choose_message(path, 1, "chosen reply")[0]["value"]
    assert "Swapped" in rec.swap_pair(path, 1)
    assert rec.choose_message(path, 1, "rejected reply")[0]["value"] == before


def test_label_mask_uses_the_embedded_tokenizer(embedded_dir):
    path = open_copy("friction_sample.jsonl")
    segments, info = rec.show_mask(path, 1, "embedded", 512)
    trained = "".join(text for text, label in segments if label == "trained")
    assert "</think>" in trained and "Start with a modular monolith" in trained
    assert "five-person startup" not in trained and "learns to write" in info
    cards, figure = dataset_summary.count_tokens(path, "embedded", 512)
    assert "Tokens trained" in cards and figure.data


def test_export_and_reopen():
    path = open_copy("cognitive_modes.jsonl")
    rec.reject_record(path, 1, *FILTERS)
    file, message = tab.export_dataset(path, "all rows except rejected", "normalized")
    assert "Wrote **89** rows" in message
    reopened, status = tab.open_dataset(None, None, file, "auto", "")
    assert reopened == file and "89 records" in status
    assert any(value == file for _, value in tab.dataset_choices())


def test_bad_input_never_raises():
    path, status = tab.open_dataset(None, None, "/etc/passwd", "auto", "")
    assert path == "" and "outside the folders" in status
    path, status = tab.open_dataset(None, None, None, "auto", "")
    assert path == "" and "Pick a sample" in status
    broken = workspace().datasets / "broken.jsonl"
    broken.write_bytes(b'{"prompt": "a", "completion": "b"}\n{oops\n\xff\xfe\n')
    path, status = tab.open_dataset(None, None, str(broken), "auto", "")
    status, cards, *_ = dataset_summary.check_dataset(path)
    assert "2 problem(s)" in status
    html = rec.show_record(path, 2)[1]
    assert "can't be used" in html and "line 2" in html
    assert rec.approve_record(path, 2, *FILTERS) == 2  # bad rows can't be reviewed; stays put
    assert rec.show_record("", 1)[1].startswith("<p>No record")


def test_upload_is_copied_into_the_workspace(tmp_path):
    upload = tmp_path / "mine.jsonl"
    upload.write_bytes((ASSETS / "epistemic_dpo.jsonl").read_bytes())
    path, status = tab.open_dataset(None, str(upload), None, "auto", "")
    assert path.startswith(str(workspace().datasets / "uploads")) and "preference" in status


def test_tab_builds_inside_the_app():
    from studio.ui.app import build_app

    app = build_app()
    labels = {getattr(c["props"].get("label"), "key", c["props"].get("label")) for c in app.config["components"]}  # English
    assert {"Sample or workspace dataset", "Message to edit", "Reviewer note", "Run to export", "Recipe"} <= labels
    wired = {fn.fn for fn in app.fns.values()}
    assert {tab.open_dataset, dataset_summary.check_dataset, rec.save_edit, rec.show_record} <= wired


def test_label_mask_of_stacked_conversations(embedded_dir):
    path = open_copy("friction_sample.jsonl")
    one, _ = rec.show_mask(path, 1, "embedded", 1024, 1)
    three, info = rec.show_mask(path, 1, "embedded", 1024, 3)
    assert info.startswith("Records 1-3 stacked")
    text = "".join(t for t, _ in three)
    assert text.count("<|im_start|>user") == 3 and text.count("<|im_start|>system") == 1
    assert sum(1 for _, label in three if label) > sum(1 for _, label in one if label)


def test_a_file_changed_since_its_review_is_said_on_opening():
    import os
    import time

    path = open_copy("cognitive_modes.jsonl")
    rec.approve_record(path, 1, *FILTERS)
    _, status = tab.open_dataset(None, None, str(path), "auto", "")
    assert "changed since" not in status
    target = workspace().datasets / "cognitive_modes.jsonl"
    target.write_text(target.read_text() + "\n")
    later = time.time() + 5
    os.utime(target, (later, later))
    _, status = tab.open_dataset(None, None, str(target), "auto", "")
    assert "This file changed since it was last reviewed" in status


def test_a_bad_line_is_shown_as_it_is_and_fixed_in_place():
    """Issue 22: a bad line is named by its real line number with its raw text, and fixed here."""
    target = workspace().datasets / "two-bad.jsonl"
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]}
    target.write_text(json.dumps(good) + "\n\n" + '{"messages": [{"role": "user", "content": "Hi"},\n' + json.dumps(good) + "\n")
    path, _ = tab.open_dataset(None, None, str(target), "auto", "")
    dataset_summary.check_dataset(path)
    bad = rec.show_record(path, 2)
    assert "line 3" in bad.view and "{&quot;messages&quot;: [{&quot;role&quot;: &quot;user&quot;" in bad.view
    assert bad.which["value"] == rec.WHOLE_LINE and "Line 3 of the file" in bad.edit_text["label"]
    still_bad = rec.save_edit(path, 2, rec.WHOLE_LINE, bad.edit_text["value"] + " oops", bad.editing)
    assert still_bad.startswith("**Not saved.** Line 3 is still not valid JSON")
    answer = rec.save_edit(path, 2, rec.WHOLE_LINE, '{"messages": [{"role": "user", "content": "Hi"}, '
                           '{"role": "assistant", "content": "Hello."}]}', bad.editing)
    assert answer.startswith("Line 3 fixed in the file"), answer
    lines = target.read_text().splitlines()
    assert lines[0] == json.dumps(good) and lines[1] == "" and json.loads(lines[2])["messages"][1]["content"] == "Hello."
    assert "can't be used" not in rec.show_record(path, 2).view and dstate.opened(path).report.bad_rows == []
    fixes = (review.review_dir(target) / review.FIXES_FILE).read_text().splitlines()
    assert json.loads(fixes[0])["before"] == '{"messages": [{"role": "user", "content": "Hi"},'
    stale = rec.save_edit(path, 2, rec.WHOLE_LINE, "{}", bad.editing)  # the record is fine now: a normal record's editor
    assert stale.startswith("**Not saved.**") or "Pick a message" in stale
    assert not review.dataset_changed(review.open_review(target))  # the fix is not "changed since reviewed"


def test_quality_targets_fit_the_kind_of_data_and_never_say_no_problems_over_a_bad_card():
    """Issue 22: the 25-40-word target of one seed's style marked every plain Q&A answer too long."""
    target = workspace().datasets / "qa.jsonl"
    answer = " ".join(["word"] * 90)
    target.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                                                        {"role": "assistant", "content": f"{answer} {i}."}]}) + "\n"
                              for i in range(12)))
    path, _ = tab.open_dataset(None, None, str(target), "auto", "")
    status, cards, *_ = dataset_summary.check_dataset(path)
    report = dstate.opened(path).report
    assert report.targets["name"] == "general" and report.metrics["avg_words"]["status"] == "good"
    assert "no problems found" in status and "instructions and Q&amp;A" in cards
    cards, status = dataset_summary.regrade(path, "short-replies")  # the person says: short conversational replies
    assert report.metrics["avg_words"]["status"] == "bad" and "No problems found" not in cards
    assert "quality target(s)" in status and "quality target(s) missed" in cards
