"""What `studio` commands print: under --json one indented JSON object (non-ASCII kept as text,
anything else, paths and dates, as its string), and a training metric as one line (`studio train`
and a Hugging Face job's follower print the same)."""

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
