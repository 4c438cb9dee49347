"""core.dataset.review: verdicts saved beside the dataset, applied for training, exported."""

from __future__ import annotations

import json

from core.dataset import reader, review
from core.workspace import ASSETS, workspace


def copy_asset(tmp_path, name):
    target = tmp_path / name
    target.write_bytes((ASSETS / name).read_bytes())
    return target


def test_state_lives_in_the_workspace_and_survives_reopening(tmp_path):
    path = copy_asset(tmp_path, "cognitive_modes.jsonl")
    before = path.read_bytes()
    state = review.open_review(path)
    state.set_status("modes-001", "approved", position=0)
    state.set_status("modes-002", "rejected", position=1)
    state.set_note("modes-002", "tags fine, answer wrong")
    state.edit("modes-003", messages=[{"role": "user", "content": "edited"}, {"role": "assistant", "content": "yes"}])
    assert state.file.parent.parent == workspace().datasets
    assert not list(state.file.parent.glob(".*.tmp"))  # atomic write left no temp file
    again = review.open_review(path)
    assert again.counts() == {"pending": 1, "approved": 1, "rejected": 1}
    assert again.get("modes-002")["note"] == "tags fine, answer wrong"
    assert again.statuses_by_position() == {0: "approved", 1: "rejected"}
    assert path.read_bytes() == before  # the original file is never written
    assert not review.dataset_changed(again)
    path.write_text(path.read_text() + "\n")
    assert review.dataset_changed(again)


def test_apply_review_drops_rejected_and_applies_edits(tmp_path):
    path = copy_asset(tmp_path, "cognitive_modes.jsonl")
    examples = reader.load(path).examples
    state = review.open_review(path)
    state.set_status("modes-001", "approved")
    state.set_status("modes-002", "rejected")
    edited = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<thought>x</thought><world>y</world>"}]
    state.edit("modes-004", messages=edited)
    state.set_status("modes-004", "approved")
    kept = review.apply_review(path, examples)
    assert len(kept) == len(examples) - 1 and "modes-002" not in {e.id for e in kept}
    assert next(e for e in kept if e.id == "modes-004").messages == edited
    assert examples[3].messages != edited  # the loaded examples themselves are untouched
    approved = review.apply_review(path, examples, only_approved=True)
    assert [e.id for e in approved] == ["modes-001", "modes-004"]


def test_swap_and_revert_a_preference_pair(tmp_path):
    path = copy_asset(tmp_path, "epistemic_dpo.jsonl")
    first = reader.load(path).examples[0]
    state = review.open_review(path)
    state.swap(first)
    (swapped,) = review.apply_review(path, [first])
    assert (swapped.chosen, swapped.rejected) == (first.rejected, first.chosen)
    state.revert(first.id)
    (back,) = review.apply_review(path, [first])
    assert (back.chosen, back.rejected) == (first.chosen, first.rejected)


def test_export_normalized_reads_back_for_training(tmp_path):
    path = copy_asset(tmp_path, "epistemic_dpo.jsonl")
    examples = reader.load(path).examples
    state = review.open_review(path)
    state.set_status("dpo-01", "rejected")
    state.edit("dpo-02", chosen="An edited, better reply.")
    state.set_status("dpo-02", "approved")
    summary = review.export_reviewed(path, examples, "preference")
    assert (summary.written, summary.left_out) == (24, 1)
    exported = reader.load(summary.path)
    assert exported.format == "preference" and len(exported.examples) == 24
    assert exported.examples[0].id == "dpo-02" and exported.examples[0].chosen == "An edited, better reply."
    only = review.export_reviewed(path, examples, "preference", only_approved=True)
    assert only.written == 1 and only.path != summary.path


def test_export_original_shape_keeps_untouched_rows_verbatim(tmp_path):
    path = copy_asset(tmp_path, "rag_grounding.jsonl")
    examples = reader.load(path).examples
    state = review.open_review(path)
    messages = [dict(m) for m in examples[0].messages]
    messages[-1]["content"] = "Edited grounded answer."
    state.edit(examples[0].id, messages=messages)
    summary = review.export_reviewed(path, examples, "messages", style="original")
    rows = [json.loads(line) for line in summary.path.read_text().splitlines()]
    assert rows[0]["messages"][-1]["content"] == "Edited grounded answer." and rows[0]["grounded"] is True
    assert rows[1:] == [e.source for e in examples[1:]]
    assert summary.normalized_fallback == 0


def test_export_original_friction_with_edits_falls_back_to_normalized(tmp_path):
    path = copy_asset(tmp_path, "friction_sample.jsonl")
    examples = reader.load(path).examples[:2]
    review.open_review(path).edit(examples[0].id, messages=[{"role": "user", "content": "q"},
                                                            {"role": "assistant", "content": "a"}])
    summary = review.export_reviewed(path, examples, "friction", style="original")
    rows = [json.loads(line) for line in summary.path.read_text().splitlines()]
    assert summary.normalized_fallback == 1 and rows[0]["messages"][1]["content"] == "a"
    assert rows[1] == examples[1].source


def test_damaged_state_says_what_to_do(tmp_path):
    path = copy_asset(tmp_path, "epistemic_dpo.jsonl")
    state = review.open_review(path)
    state.file.parent.mkdir(parents=True, exist_ok=True)
    state.file.write_text("{broken")
    try:
        review.open_review(path)
    except ValueError as error:
        assert "move it aside" in str(error)
    else:  # pragma: no cover
        raise AssertionError("a damaged review file must be reported")


def test_two_changes_made_at_once_both_survive(tmp_path):
    """Two handlers (a note and an approval, or a browser and the CLI) each opened the state before
    the other saved: every change re-reads the saved state under the lock, so neither is lost."""
    import threading

    path = copy_asset(tmp_path, "cognitive_modes.jsonl")
    first, second = review.open_review(path), review.open_review(path)
    first.set_status("modes-001", "approved", position=0)
    second.set_note("modes-002", "checked")  # `second` was opened before the approval was saved
    states = [review.open_review(path) for _ in range(8)]
    threads = [threading.Thread(target=state.set_status, args=(f"modes-{10 + i:03d}", "rejected"))
               for i, state in enumerate(states)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    saved = review.open_review(path)
    assert saved.status("modes-001") == "approved" and saved.get("modes-002")["note"] == "checked"
    assert saved.counts()["rejected"] == 8
