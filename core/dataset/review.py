"""Review: a person's verdicts on a dataset's rows (approve / reject / edit / note), stored
beside the dataset in the workspace, and the reviewed dataset they produce.

State lives in `STUDIO_HOME/datasets/<name>-<hash>/review.json`, one file per dataset path,
rewritten atomically after every change so a crash or restart loses nothing. The original
dataset file is never written. Rows are keyed by `Example.id` (the row's own `id`, else its
line or row number). This module knows nothing about the UI, checks or tokenizers.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.dataset import formats
from core.dataset.reader import Example, to_normalized
from core.errors import BadInput
from core.workspace import append_jsonl, atomic_path, workspace, write_json_atomic

STATUSES = ("pending", "approved", "rejected")


class ReviewError(BadInput):
    """A review status, export style or review-state file that can't be used."""


def check_status(status: str) -> None:
    """ReviewError unless `status` is one a record can have (every write checks it here)."""
    if status not in STATUSES:
        raise ReviewError(f"review status '{status}' is unknown; use one of {', '.join(STATUSES)}")


def review_dir(dataset_path: str | Path) -> Path:
    """The workspace folder that holds one dataset's review state and exports."""
    resolved = Path(dataset_path).expanduser().resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in resolved.stem)[:40] or "dataset"
    return workspace().datasets / f"{stem}-{digest}"


def _fingerprint(path: Path) -> dict:
    try:
        stat = path.stat()
        return {"size": stat.st_size, "mtime": int(stat.st_mtime)}
    except OSError:
        return {}


@dataclass
class ReviewState:
    """Verdicts for one dataset: {example id: {"status", "note", "label"?, "messages"?, "chosen"?, "rejected"?}}.
    `label` is the thumbs-up / thumbs-down on the record's last reply (True good, False bad, None
    not given), which KTO trains on; `status` says whether the record is used at all."""

    dataset: Path
    records: dict[str, dict] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return review_dir(self.dataset) / "review.json"

    def get(self, example_id: str) -> dict:
        return self.records.get(example_id, {"status": "pending"})

    def status(self, example_id: str) -> str:
        return self.records.get(example_id, {}).get("status", "pending")

    def counts(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for record in self.records.values():
            counts[record.get("status", "pending")] += 1
        return counts

    def label_counts(self) -> dict[str, int]:
        """Replies the reviewer marked good and bad (thumbs up / down)."""
        labels = [record.get("label") for record in self.records.values()]
        return {"good": labels.count(True), "bad": labels.count(False)}

    def save(self) -> None:
        write_json_atomic(self.file, {"dataset": str(self.dataset), "fingerprint": _fingerprint(self.dataset),
                                      "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                      "records": self.records})

    @contextlib.contextmanager
    def _latest(self):
        """Hold the dataset's review lock with the records as last saved: two clicks handled at
        once (a note and an approval, a browser and the CLI) each change the saved state, and
        neither writes back a copy that misses the other's change."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with _THREAD_LOCK, open(self.file.with_name(".review.lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self.records = _read_records(self.file)
            yield

    def _update(self, example_id: str, position: int | None = None, **changes) -> dict:
        with self._latest():
            record = dict(self.get(example_id))
            record.update(changes)
            if position is not None:
                record["position"] = position  # lets the Dataset tab filter by status without reading every row
            record["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.records[example_id] = record
            self.save()
        return record

    def set_status(self, example_id: str, status: str, *, position: int | None = None) -> dict:
        check_status(status)
        return self._update(example_id, position, status=status)

    def set_note(self, example_id: str, note: str, *, position: int | None = None) -> dict:
        return self._update(example_id, position, note=note)

    def set_label(self, example_id: str, label: bool | None, *, position: int | None = None) -> dict:
        """Thumbs up (True) or down (False) on the record's last reply; None takes it back."""
        if label not in (True, False, None):
            raise ReviewError(f"a reply's label is good (true), bad (false) or none, not {label!r}")
        return self._update(example_id, position, label=label)

    def statuses_by_position(self) -> dict[int, str]:
        """{position: status} for reviewed rows whose position is known."""
        return {r["position"]: r.get("status", "pending") for r in self.records.values() if "position" in r}

    def edit(self, example_id: str, *, messages: list[dict] | None = None, chosen: str | None = None,
             rejected: str | None = None, position: int | None = None) -> dict:
        """Record edited text; only the fields given change. The original file is untouched."""
        changes = {}
        if messages is not None:
            changes["messages"] = [dict(m) for m in messages]
        if chosen is not None:
            changes["chosen"] = chosen
        if rejected is not None:
            changes["rejected"] = rejected
        return self._update(example_id, position, **changes)

    def swap(self, example: Example, *, position: int | None = None) -> dict:
        """Swap a preference pair's chosen and rejected replies (edits included)."""
        current = apply_edits(example, self.get(example.id))
        return self.edit(example.id, chosen=current.rejected, rejected=current.chosen, position=position)

    def update_many(self, changes: dict[str, dict], label: str) -> int:
        """A bulk action: every record's changes under one lock and one atomic write, the records
        as they were before kept first in the undo file, so `undo_bulk` can put them back."""
        for change in changes.values():
            if "status" in change:
                check_status(change["status"])
        if not changes:
            return 0
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._latest():
            before = {example_id: self.records.get(example_id) for example_id in changes}
            undo = _read_undo(self.file)
            undo.append({"label": label, "at": stamp, "before": before, "changes": changes})
            write_json_atomic(self.file.with_name(UNDO_FILE), {"actions": undo[-UNDO_KEEP:]})
            for example_id, change in changes.items():
                record = dict(self.get(example_id))
                record.update(change)
                record["updated_at"] = stamp
                self.records[example_id] = record
            self.save()
        return len(changes)

    def last_bulk(self) -> dict | None:
        """The bulk action `undo_bulk` would take back (label, time, how many records), or None."""
        actions = _read_undo(self.file)
        return actions[-1] if actions else None

    def undo_bulk(self) -> dict | None:
        """Take back the last bulk action: each field it set goes back to what it was, unless the
        record was changed again since (then that later change stays). Returns the action."""
        with self._latest():
            actions = _read_undo(self.file)
            if not actions:
                return None
            action = actions.pop()
            for example_id, change in action["changes"].items():
                old = action["before"].get(example_id) or {}
                record = dict(self.records.get(example_id, {}))
                for key, value in change.items():
                    if key == "position" or record.get(key) != value:
                        continue  # a later click changed this field: it stays
                    if key in old:
                        record[key] = old[key]
                    else:
                        record.pop(key, None)
                if not set(record) - {"position", "updated_at"} or (not old and record.keys() <= {"position", "updated_at", "status"}
                                                                    and record.get("status", "pending") == "pending"):
                    self.records.pop(example_id, None)  # nothing left that a person did
                else:
                    self.records[example_id] = record
            write_json_atomic(self.file.with_name(UNDO_FILE), {"actions": actions})
            self.save()
        return action

    def revert(self, example_id: str) -> dict:
        """Drop the edits of one row, keeping its status and note."""
        with self._latest():
            record = {k: v for k, v in self.get(example_id).items() if k not in ("messages", "chosen", "rejected")}
            self.records[example_id] = record
            self.save()
        return record


def open_review(dataset_path: str | Path) -> ReviewState:
    """The saved review state of a dataset (empty when none was saved yet)."""
    state = ReviewState(Path(dataset_path).expanduser().resolve())
    state.records = _read_records(state.file)
    return state


_THREAD_LOCK = threading.Lock()  # flock alone does not order two threads of one process
UNDO_FILE = "bulk-undo.json"  # beside review.json: the last bulk actions, with the records as they were before
UNDO_KEEP = 10


def _read_undo(review_file: Path) -> list[dict]:
    file = review_file.with_name(UNDO_FILE)
    if not file.is_file():
        return []
    try:
        return list(json.loads(file.read_text(encoding="utf-8")).get("actions", []))
    except json.JSONDecodeError as error:
        raise ReviewError(f"{file}: the bulk actions' undo list is damaged ({error}); move it aside to go on") from None


def _read_records(file: Path) -> dict[str, dict]:
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8")).get("records", {})
    except json.JSONDecodeError as error:
        raise ReviewError(f"{file}: review state is damaged ({error}); move it aside to start over") from None


FIXES_FILE = "fixes.jsonl"


def fix_line(dataset_path: str | Path, line: int, expected: str, text: str) -> str:
    """Put a person's fix of one bad line into a JSONL dataset, in place: the line must still read
    as it did when they opened it (`expected`), and the fix must be one JSON object (a pretty,
    several-line object is made one line). The file is rewritten atomically; the line before and
    after goes into the review folder's fixes.jsonl, so nothing is lost. Returns the new line."""
    path = Path(dataset_path)
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise ReviewError(f"{path.name}: only a JSONL file's lines can be fixed here; fix this row in the file itself")
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReviewError(f"Line {line} is still not valid JSON: {error.msg} at column {error.colno} of the text box "
                          f"(line {error.lineno}). Nothing was written.") from None
    if not isinstance(row, dict):
        raise ReviewError(f"Line {line} must be one JSON object {{...}}, not a {type(row).__name__}. Nothing was written.")
    fixed = json.dumps(row, ensure_ascii=False)
    state = open_review(path)
    with state._latest():
        with open(path, "rb") as source, atomic_path(path) as partial, open(partial, "wb") as out:
            found = None
            for number, raw in enumerate(source, 1):
                if number == line:
                    found = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    if found != expected.rstrip("\r\n"):
                        raise ReviewError(f"Line {line} changed since it was opened; open the dataset again and redo the fix. "
                                          "Nothing was written.")
                    ending = b"\r\n" if raw.endswith(b"\r\n") else b"\n"
                    raw = fixed.encode() + ending
                out.write(raw)
            if found is None:
                raise ReviewError(f"{path.name} has no line {line} any more; open it again. Nothing was written.")
        append_jsonl(review_dir(path) / FIXES_FILE, {"line": line, "before": expected, "after": fixed,
                                                      "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        state.save()  # the review now knows the file as fixed: no "changed since reviewed" warning for this
    return fixed


def dataset_changed(state: ReviewState) -> bool:
    """True when the dataset file changed since the review was saved (ids may no longer match)."""
    if not state.file.is_file():
        return False
    saved = json.loads(state.file.read_text(encoding="utf-8")).get("fingerprint", {})
    return bool(saved) and saved != _fingerprint(state.dataset)


def apply_edits(example: Example, record: dict) -> Example:
    """The example as the reviewer left it (edited messages / replies and the reviewer's label applied)."""
    label = record.get("label")
    if not any(k in record for k in ("messages", "chosen", "rejected")) and label is None:
        return example
    return replace(example, messages=copy.deepcopy(record.get("messages", example.messages)),
                   chosen=record.get("chosen", example.chosen), rejected=record.get("rejected", example.rejected),
                   label=example.label if label is None else label)


def apply_review(dataset_path: str | Path, examples: list[Example], *, only_approved: bool = False) -> list[Example]:
    """The examples a training run should use: edits applied, rejected rows dropped, and
    rows not approved dropped too when `only_approved`. A reply labelled bad is not one to learn
    to write: SFT, DPO and GRPO leave it out too (KTO reads `labelled` instead)."""
    return [example for example, _ in _reviewed(dataset_path, examples, only_approved=only_approved)
            if example.label is not False]


def _reviewed(dataset_path, examples, *, only_approved: bool):
    """(example as reviewed, status) for every example the review keeps."""
    state = open_review(dataset_path)
    for example in examples:
        record = state.records.get(example.id, {})
        status = record.get("status", "pending")
        if status == "rejected" or (only_approved and status != "approved"):
            continue
        yield apply_edits(example, record), status


def labelled(dataset_path: str | Path, examples: list[Example], *, only_approved: bool = False) -> tuple[list[Example], int]:
    """KTO's examples, each a conversation ending in the reply its `label` judges (True good), and
    how many rows had no label to give. A label comes from the reviewer's thumbs, else the row's
    own; a preference pair gives its chosen reply as good and its rejected one as bad. A plain
    chat without either is labelled by its review status (approved good, rejected bad), so a set
    reviewed for SFT trains KTO as it is; a labelled row rejected by the reviewer is left out."""
    state = open_review(dataset_path)
    kept, unlabelled = [], 0
    for example in examples:
        record = state.records.get(example.id, {})
        status = record.get("status", "pending")
        example = apply_edits(example, record)
        if example.is_preference or example.label is not None:
            if status == "rejected" or (only_approved and status != "approved"):
                continue
            if example.is_preference:
                kept += [replace(example, id=f"{example.id}#{side}", chosen=None, rejected=None, label=good,
                                 messages=example.messages + [{"role": "assistant", "content": reply}])
                         for side, reply, good in (("chosen", example.chosen, True), ("rejected", example.rejected, False))]
            else:
                kept.append(example)
        elif status in ("approved", "rejected") and example.messages and example.messages[-1]["role"] == "assistant":
            kept.append(replace(example, label=status == "approved"))
        else:
            unlabelled += 1
    return kept, unlabelled


@dataclass
class ExportSummary:
    path: Path
    written: int
    left_out: int
    normalized_fallback: int  # edited rows written normalized because the original shape can't hold edits


def original_row(example: Example, record: dict, fmt: str) -> tuple[dict, bool]:
    """The row in its original shape with edits applied, and whether that worked (else normalized)."""
    edited = apply_edits(example, record)
    if edited is example:
        return example.source, True
    row = formats.with_edits(example.source, edited, fmt)
    return (row, True) if row is not None else (to_normalized(edited), False)


def export_reviewed(dataset_path: str | Path, examples, fmt: str, *, only_approved: bool = False,
                    style: str = "normalized", out: Path | None = None) -> ExportSummary:
    """Write the reviewed dataset as JSONL (normalized rows, or the original row shapes),
    streaming to a temporary file that replaces `out` only when complete."""
    if style not in ("normalized", "original"):
        raise ReviewError(f"export style '{style}' is unknown; use normalized or original")
    state = open_review(dataset_path)
    suffix = "-approved" if only_approved else ""
    out = Path(out) if out else review_dir(dataset_path) / f"{Path(dataset_path).stem}-reviewed{suffix}.jsonl"
    written = left_out = fallback = 0
    with atomic_path(out) as partial:
        with open(partial, "w", encoding="utf-8") as handle:
            for example in examples:
                record = state.records.get(example.id, {})
                status = record.get("status", "pending")
                if status == "rejected" or (only_approved and status != "approved"):
                    left_out += 1
                    continue
                if style == "original":
                    row, kept_shape = original_row(example, record, fmt)
                    fallback += not kept_shape
                else:
                    row = to_normalized(apply_edits(example, record))
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
    return ExportSummary(out, written, left_out, fallback)
