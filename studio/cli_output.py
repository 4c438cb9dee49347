"""What every `studio` command prints under --json: one indented JSON object, non-ASCII kept as
text, anything else (paths, dates) as its string."""

from __future__ import annotations

import json


def print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
