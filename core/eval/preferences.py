"""A person's picks from the Chat tab: which of two answers was better, kept as preference data.

Each pick is appended to datasets/chat_preferences.jsonl as a conversational preference example
(the Dataset tab and DPO read it as is), with `chosen_side` (base or tuned) so a judge's verdict
on the same pair can be compared with the person's. `export_kto` writes the same picks as KTO's
unpaired data: each pick a good and a bad reply. This module knows nothing about judges.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import BadInput
from core.workspace import append_jsonl, atomic_path, read_jsonl, workspace

PREFERENCES_FILE = "chat_preferences.jsonl"
KTO_FILE = "chat_preferences-kto.jsonl"


def save_preference(prompt: list[dict], chosen: str, rejected: str, path: Path | None = None,
                    chosen_side: str | None = None) -> Path:
    """Append one conversational preference example (the Dataset tab opens it as preference data)."""
    if not chosen.strip() or not rejected.strip():
        raise BadInput("both panes need an answer before the exchange can be saved as a preference")
    if chosen.strip() == rejected.strip():
        raise BadInput("both answers are identical: a preference pair needs two different answers")
    path = path or workspace().datasets / PREFERENCES_FILE
    record = {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
              "rejected": [{"role": "assistant", "content": rejected}]}
    if chosen_side:
        record["chosen_side"] = chosen_side
    append_jsonl(path, record)
    return path


def read_picks(path: Path | None = None) -> list[dict]:
    """The saved picks that say which side the person chose: {prompt, base, tuned, person}."""
    picks = []
    for record in read_jsonl(path or workspace().datasets / PREFERENCES_FILE):
        try:
            side = record.get("chosen_side")
            chosen, rejected = record["chosen"][-1]["content"], record["rejected"][-1]["content"]
        except (KeyError, IndexError, TypeError, AttributeError):
            continue
        if side not in ("base", "tuned"):
            continue
        base, tuned = (chosen, rejected) if side == "base" else (rejected, chosen)
        picks.append({"prompt": record["prompt"], "base": base, "tuned": tuned, "person": side})
    return picks


def export_kto(path: Path | None = None, out: Path | None = None) -> Path:
    """The saved picks as trl's unpaired preference rows (prompt / completion / label), the
    chosen answer labelled good and the other bad, written whole or not at all; BadInput when
    there are no picks yet."""
    path = path or workspace().datasets / PREFERENCES_FILE
    out = out or path.with_name(KTO_FILE)
    rows = []
    for record in read_jsonl(path):
        try:
            replies = ((record["chosen"][-1]["content"], True), (record["rejected"][-1]["content"], False))
        except (KeyError, IndexError, TypeError, AttributeError):
            continue
        rows += [{"prompt": record["prompt"], "completion": [{"role": "assistant", "content": text}], "label": good}
                 for text, good in replies]
    if not rows:
        raise BadInput("no picks saved yet: pick the better answer of a base/tuned exchange first")
    with atomic_path(out) as partial:
        partial.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return out
