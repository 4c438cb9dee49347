"""What `studio` commands print: under --json one indented JSON object (non-ASCII kept as text,
anything else, paths and dates, as its string), and a training metric as one line (`studio train`
and a Hugging Face job's follower print the same), and what `studio check --fix` wrote."""

from __future__ import annotations

import json


def print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def metric_line(record: dict, total) -> str:
    parts = [f"step {record.get('step')}/{total or '?'}", record.get("split", "")]
    for key in ("loss", "lr", "grad_norm", "rewards/accuracies", "rewards/margins", "reward", "kl", "tokens_per_s", "eta"):
        value = record.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{key} {value:.4g}")
    return "  ".join(parts)


def fix_line(how: str, fixed) -> str:
    if how == "dedupe":
        done = f"left out {fixed.dropped} record(s) that repeat another"
    else:
        done = f"redacted {fixed.redacted_spans} piece(s) of personal data or secrets in {fixed.redacted_records} record(s)"
        if fixed.normalized:
            done += f" ({fixed.normalized} written normalized: their format can't hold edited text)"
    bad = f"; {fixed.bad_rows} unreadable row(s) left out" if fixed.bad_rows else ""
    return f"fixed copy: {fixed.out}: {fixed.written} record(s) written, {done}{bad}"
