"""Bulk actions (core.dataset.bulk): reject / approve what a filter shows, keep one per group of
duplicates, redact personal data; recorded in the review like single clicks, undoable without
losing a later click, carried into the export; and `studio check --fix` from the command line."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from core.dataset import bulk, checks, reader, review
from core.dataset.pages import select

ROOT = Path(__file__).resolve().parent.parent
WORDS = [f"{a}{b}" for a in ("oak", "fern", "moss", "reed", "pine") for b in ("stone", "lake", "hill", "wind", "cloud", "path")]


def _chat(question, answer):
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.fixture
def dataset(tmp_path):
    """30 distinct records; row 31 repeats row 3 with two words more, row 32 copies row 8, row 33
    holds an e-mail address and a Hugging Face token."""
    rng = random.Random(11)
    rows = [_chat(" ".join(rng.choices(WORDS, k=10)), " ".join(rng.choices(WORDS, k=35))) for _ in range(30)]
    rows.append(_chat(rows[2]["messages"][0]["content"], rows[2]["messages"][1]["content"] + " once more"))
    rows.append(rows[7])
    rows.append(_chat("Write to maria.lopez@gmail.com about the invoice",
                      "Done. I used the key hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 to upload it."))
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i + 1}", **row}) + "\n" for i, row in enumerate(rows)), encoding="utf-8")
    return path


def _items(path, positions):
    items = list(reader.stream(path))
    return [(p, items[p]) for p in positions]


def test_keep_one_per_group_rejects_the_repeats_and_spares_a_persons_approval(dataset):
    report = checks.check(dataset)
    assert {tuple(c["rows"]) for c in report.duplicates["clusters"]} == {(3, 31), (8, 32)}
    repeats = select(report, total=report.rows, with_findings="near duplicates").tolist() + \
        select(report, total=report.rows, with_findings="exact duplicates").tolist()
    assert sorted(repeats) == [2, 31]  # row 3 (31 is longer: kept) and row 32 (the copy)
    review.open_review(dataset).set_status("r3", "approved", position=2)
    outcome = bulk.keep_one_per_group(dataset, report, _items(dataset, range(report.rows)))
    assert (outcome.changed, outcome.left_alone) == (1, 1)
    state = review.open_review(dataset)
    assert state.status("r32") == "rejected" and state.status("r3") == "approved" and state.status("r31") == "pending"


def test_reject_all_then_undo_keeps_a_later_click(dataset):
    state = review.open_review(dataset)
    state.set_note("r5", "check the numbers")
    outcome = bulk.set_status(dataset, _items(dataset, range(0, 10)), "rejected")
    assert outcome.changed == 10
    assert review.open_review(dataset).counts()["rejected"] == 10
    assert json.loads((state.file.parent / review.UNDO_FILE).read_text())["actions"][-1]["label"] == "rejected 10 records"
    review.open_review(dataset).set_status("r2", "approved", position=1)  # a click after the bulk action
    undone = review.open_review(dataset).undo_bulk()
    assert undone["label"] == "rejected 10 records"
    after = review.open_review(dataset)
    assert after.status("r1") == "pending" and after.status("r2") == "approved"  # the later click stays
    assert after.get("r5")["note"] == "check the numbers" and after.status("r5") == "pending"
    assert "r1" not in after.records  # nothing a person did is left on it
    assert after.undo_bulk() is None and after.last_bulk() is None


def test_redact_saves_placeholders_as_edits_that_the_export_carries_and_undo_takes_back(dataset):
    outcome = bulk.redact(dataset, _items(dataset, range(33)))
    assert (outcome.changed, outcome.spans, outcome.left_alone) == (1, 2, 32)
    examples = [x for x in reader.stream(dataset) if isinstance(x, reader.Example)]
    summary = review.export_reviewed(dataset, examples, "messages", style="original")
    last = json.loads(summary.path.read_text().splitlines()[-1])
    assert last["messages"][0]["content"] == "Write to [EMAIL] about the invoice"
    assert "[HF_TOKEN]" in last["messages"][1]["content"] and "hf_AbC" not in summary.path.read_text()
    assert last["id"] == "r33"  # the original row's shape, its id kept
    review.open_review(dataset).undo_bulk()
    assert "messages" not in review.open_review(dataset).get("r33")


def test_a_damaged_undo_list_is_a_message(dataset):
    state = review.open_review(dataset)
    bulk.set_status(dataset, _items(dataset, [0]), "approved")
    (state.file.parent / review.UNDO_FILE).write_text("{not json")
    with pytest.raises(review.ReviewError, match="undo list is damaged"):
        state.undo_bulk()
    with pytest.raises(review.ReviewError, match="unknown"):
        bulk.set_status(dataset, [], "maybe")


def _studio(*args):
    return subprocess.run([sys.executable, "-m", "studio.cli", *args], capture_output=True, text=True, cwd=ROOT, check=False)


def test_cli_fix_writes_a_deduplicated_or_redacted_copy(dataset, tmp_path):
    before = dataset.read_bytes()
    out = tmp_path / "deduped.jsonl"
    done = _studio("check", str(dataset), "--fix", "dedupe", "--out", str(out), "--json")
    summary = json.loads(done.stdout)
    assert summary["fix"]["dropped"] == 2 and summary["fix"]["written"] == 31
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert "r3" not in kept and "r32" not in kept and {"r31", "r8"} <= set(kept)
    assert summary["duplicates"]["clusters"][0]["keep"] in (8, 31)
    out = tmp_path / "redacted.jsonl"
    done = _studio("check", str(dataset), "--fix", "redact", "--out", str(out))
    assert "redacted 2 piece(s) of personal data or secrets in 1 record(s)" in done.stdout
    assert "near duplicates  rows 3, 31" in done.stdout
    assert "[EMAIL]" in out.read_text() and "maria.lopez" not in out.read_text()
    assert dataset.read_bytes() == before  # the original is never written
    clean = _studio("check", str(out))
    assert "secret" not in clean.stdout and "personal data" not in clean.stdout
    refused = _studio("check", str(dataset), "--fix", "dedupe", "--out", str(dataset))
    assert refused.returncode == 2 and "never overwritten" in refused.stderr and "Traceback" not in refused.stderr
    alone = _studio("check", str(dataset), "--fix", "redact")
    assert alone.returncode == 2 and "--fix and --out go together" in alone.stderr
    loose = _studio("check", str(dataset), "--near-threshold", "0.99")
    assert "rows 3, 31" not in loose.stdout and "rows 8, 32" in loose.stdout  # the exact copy is still alike
