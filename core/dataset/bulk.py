"""Bulk actions: one decision over many records at once, for a reviewer who found a hundred
near duplicates or a column of e-mail addresses and should not click each one.

In the review (the Dataset tab): reject or approve every record a filter shows, keep one record
per group of duplicates (the others rejected), redact personal data and secrets into typed
placeholders ([EMAIL], [HF_TOKEN] ...). Each is recorded in the review state like single clicks,
in one atomic write, and can be undone (core.dataset.review keeps the records as they were);
the exported reviewed set carries it.

From the command line (`studio check --fix redact|dedupe --out FILE`): the same fixes written
as a new JSONL file, the original left as it is.
This module knows nothing about the UI.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from core.dataset import formats, privacy, review
from core.dataset.reader import BadRow, DatasetError, Example, stream, to_normalized
from core.workspace import atomic_path

REPEATS = {"exact_duplicates", "near_duplicates"}  # finding kinds of a record that repeats another
FIXES = ("redact", "dedupe")


@dataclass
class BulkOutcome:
    changed: int
    left_alone: int = 0  # records the action skips (already approved by a person, nothing to redact ...)
    spans: int = 0  # redacted pieces


def _target(items: Iterable[tuple[int, Example | BadRow]]) -> list[tuple[int, Example]]:
    return [(position, item) for position, item in items if isinstance(item, Example)]


def set_status(dataset_path: str | Path, items: Iterable[tuple[int, Example | BadRow]], status: str) -> BulkOutcome:
    """`status` for every record given (bad rows have no verdict: they are left out); an unknown
    status is refused, whatever is selected."""
    review.check_status(status)
    chosen = _target(items)
    changes = {item.id: {"status": status, "position": position} for position, item in chosen}
    changed = review.open_review(dataset_path).update_many(changes, f"{status} {len(changes)} records")
    return BulkOutcome(changed)


def set_label(dataset_path: str | Path, items: Iterable[tuple[int, Example | BadRow]], label: bool) -> BulkOutcome:
    """Thumbs up (True) or down (False) on the last reply of every record given; preference pairs
    already say which reply is good and are left alone."""
    chosen = _target(items)
    single = [(position, item) for position, item in chosen if not item.is_preference]
    changes = {item.id: {"label": label, "position": position} for position, item in single}
    changed = review.open_review(dataset_path).update_many(changes, f"{'good' if label else 'bad'} {len(changes)} replies")
    return BulkOutcome(changed, left_alone=len(chosen) - len(single))


def keep_one_per_group(dataset_path: str | Path, report, items: Iterable[tuple[int, Example | BadRow]]) -> BulkOutcome:
    """Reject each record given that repeats another (an exact copy, or a near duplicate that is
    not its group's proposed record); a record a person approved is left as it is."""
    state = review.open_review(dataset_path)
    repeats = [(position, item) for position, item in _target(items) if report.finding_kinds.get(position, set()) & REPEATS]
    changes, approved = {}, 0
    for position, item in repeats:
        if state.status(item.id) == "approved":
            approved += 1
            continue
        changes[item.id] = {"status": "rejected", "position": position}
    return BulkOutcome(state.update_many(changes, f"keep one per group: reject {len(changes)} records"), approved)


def redacted(example: Example) -> tuple[Example, int]:
    """The example with personal data and secrets replaced by typed placeholders, and how many."""
    spans = 0

    def clean(text: str | None) -> str | None:
        nonlocal spans
        if not text:
            return text
        found = privacy.scan(text)
        spans += len(found)
        return privacy.mask(text, found) if found else text

    messages = [{**message, "content": clean(message["content"])} for message in example.messages]
    chosen, rejected = clean(example.chosen), clean(example.rejected)
    if not spans:
        return example, 0
    return replace(example, messages=messages, chosen=chosen, rejected=rejected), spans


def redact(dataset_path: str | Path, items: Iterable[tuple[int, Example | BadRow]]) -> BulkOutcome:
    """Redact the records given, as the reviewer left them (edits applied): the redacted text is
    saved as an edit of each record that held something."""
    state = review.open_review(dataset_path)
    changes, spans, clean = {}, 0, 0
    for position, item in _target(items):
        current = review.apply_edits(item, state.get(item.id))
        fixed, found = redacted(current)
        if not found:
            clean += 1
            continue
        spans += found
        change = {"messages": [dict(m) for m in fixed.messages], "position": position}
        if fixed.is_preference:
            change.update(chosen=fixed.chosen, rejected=fixed.rejected)
        changes[item.id] = change
    return BulkOutcome(state.update_many(changes, f"redact {len(changes)} records"), clean, spans)


@dataclass
class FixSummary:
    out: Path
    written: int
    dropped: int  # repeats left out (dedupe)
    redacted_records: int
    redacted_spans: int
    bad_rows: int  # unreadable rows, left out (the check lists them)
    normalized: int  # redacted rows written normalized: their format can't hold edited text


def fix_file(path: str | Path, how: str, out: str | Path, report, *, format: str = "auto",
             format_template: str | None = None) -> FixSummary:
    """Write `path` fixed as JSONL to `out` (atomically; `path` itself is never written):
    `dedupe` leaves out every record that repeats another (`report`: the check of `path`),
    `redact` replaces personal data and secrets with typed placeholders. Rows keep their own shape
    where the format can hold the change."""
    if how not in FIXES:
        raise DatasetError(f"--fix {how}: use one of {', '.join(FIXES)}")
    out = Path(out)
    if out.suffix.lower() not in (".jsonl", ".ndjson"):
        raise DatasetError(f"{out}: the fixed dataset is written as JSONL; name a .jsonl file")
    if out.resolve() == Path(path).resolve():
        raise DatasetError(f"{out}: that is the dataset itself; name a new file (the original is never overwritten)")
    opened = stream(path, format, format_template=format_template)
    written = dropped = records = spans = bad = normalized = 0
    with atomic_path(out) as partial, open(partial, "w", encoding="utf-8") as handle:
        for position, item in enumerate(opened):
            if isinstance(item, BadRow):
                bad += 1
                continue
            row = item.source
            if how == "dedupe" and report.finding_kinds.get(position, set()) & REPEATS:
                dropped += 1
                continue
            if how == "redact":
                fixed, found = redacted(item)
                if found:
                    records, spans = records + 1, spans + found
                    row = formats.with_edits(item.source, fixed, opened.format)
                    if row is None:
                        row, normalized = to_normalized(fixed), normalized + 1
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    return FixSummary(out, written, dropped, records, spans, bad, normalized)
