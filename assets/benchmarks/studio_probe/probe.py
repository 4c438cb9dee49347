"""Loads one part of the studio's offline probe from the JSONL file beside this one (lm-eval's
`custom_dataset` hook: no download, no Hub)."""

from __future__ import annotations

import json
from pathlib import Path


def load(part: str, **_metadata):
    import datasets

    rows = [json.loads(line) for line in (Path(__file__).with_name(f"{part}.jsonl")).read_text().splitlines() if line.strip()]
    return {"test": datasets.Dataset.from_list(rows)}
