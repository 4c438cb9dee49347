"""The Dataset tab's bulk actions (studio.ui.dataset.bulk_actions), called as the browser calls
them: the findings filter picks a kind of finding, an action applies to every record shown,
and undo takes it back; forged values are messages."""

from __future__ import annotations

import json

from core.dataset import review
from core.workspace import ASSETS, workspace
from studio.ui.dataset import bulk_actions, tab
from studio.ui.dataset import summary as dataset_summary


def _open(name: str, text: str) -> str:
    target = workspace().datasets / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    path, status = tab.open_dataset(None, None, str(target), "auto", "")
    assert path, status
    dataset_summary.check_dataset(path)
    return path


def test_keep_one_per_group_over_the_near_duplicates_filter_then_undo():
    path = _open("math.jsonl", (ASSETS / "grpo_math.jsonl").read_text())  # templated word problems: some near alike
    shown, caption, _ = tab.browse(path, "any", "any", "near duplicates", "", "file order", 1)
    repeats = int(caption.split()[0])
    assert shown and repeats == path.dataset.report.counts["near_duplicates"]
    message = bulk_actions.apply_bulk(path, bulk_actions.KEEP_ONE, "any", "any", "near duplicates", "", "file order")
    assert message.startswith(f"**{repeats}** repeats rejected") and "Undo" in message
    assert review.open_review(path).counts()["rejected"] == repeats
    kept = {c["keep"] for c in path.dataset.report.duplicates["clusters"]}
    rejected = {r["position"] + 1 for r in review.open_review(path).records.values() if r["status"] == "rejected"}
    assert not kept & rejected  # the proposed record of each group stays
    _, caption, _ = tab.browse(path, "any", "rejected", "any finding", "", "file order", 1)
    assert caption.startswith(f"{repeats} matching")
    assert bulk_actions.undo_bulk(path).startswith("Undone: keep one per group: reject")
    assert review.open_review(path).counts()["rejected"] == 0
    assert bulk_actions.undo_bulk(path) == "No bulk action to undo."


def test_redact_what_the_personal_data_filter_shows():
    rows = [{"messages": [{"role": "user", "content": f"question {i} about rivers"},
                          {"role": "assistant", "content": f"answer {i} about rivers and lakes"}]} for i in range(8)]
    rows[5]["messages"][0]["content"] = "Call me on +1 415 555 2671 or write to tom.baker@gmail.com"
    path = _open("pii.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    shown, _, _ = tab.browse(path, "any", "any", "personal data or secrets", "", "file order", 1)
    assert [row[0] for row in shown] == [6]
    message = bulk_actions.apply_bulk(path, bulk_actions.REDACT, "any", "any", "personal data or secrets", "", "file order")
    assert message.startswith("**2** pieces of personal data or secrets redacted in **1** records")
    edited = review.open_review(path).get("line-6")["messages"][0]["content"]
    assert edited == "Call me on [PHONE] or write to [EMAIL]"
    again = bulk_actions.apply_bulk(path, bulk_actions.REDACT, "any", "any", "personal data or secrets", "", "file order")
    assert again.startswith("No personal data or secrets")  # the edits are what is redacted now


def test_reject_all_shown_by_a_search_and_forged_values():
    path = _open("plain.jsonl", (ASSETS / "rag_grounding.jsonl").read_text())
    assert bulk_actions.apply_bulk(path, bulk_actions.REJECT, "any", "any", "all records", "no such words", "file order") \
        == "No records match the filters: nothing was changed."
    assert bulk_actions.apply_bulk(path, "delete everything", "any", "any", "all records", "", "file order") \
        == "Pick what to do with the records shown."
    assert bulk_actions.apply_bulk("", bulk_actions.REJECT, "any", "any", "all records", "", "file order") == "Open a dataset first."
    message = bulk_actions.apply_bulk(path, bulk_actions.APPROVE, "any", "pending", "../../etc", "", "file order")
    assert message.startswith("**60** records approved")  # an unknown findings filter filters nothing
    assert review.open_review(path).counts()["approved"] == 60


def test_mark_every_reply_shown_good_or_bad_for_kto_then_undo():
    rows = [{"messages": [{"role": "user", "content": f"q {i}"},
                          {"role": "assistant", "content": f"reply {i} " + ("as an AI" if i % 2 else "")}]} for i in range(6)]
    path = _open("replies.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    message = bulk_actions.apply_bulk(path, bulk_actions.BAD, "any", "any", "all records", "as an AI", "file order")
    assert message.startswith("**3** replies marked bad")
    assert review.open_review(path).label_counts() == {"good": 0, "bad": 3}
    assert bulk_actions.undo_bulk(path).startswith("Undone: bad 3 replies")
    assert review.open_review(path).label_counts() == {"good": 0, "bad": 0}
    pairs = _open("pairs.jsonl", (ASSETS / "epistemic_dpo.jsonl").read_text())
    left = bulk_actions.apply_bulk(pairs, bulk_actions.GOOD, "any", "any", "all records", "", "file order")
    assert left.startswith("**0** replies marked good; 25 preference pairs left as they are")
