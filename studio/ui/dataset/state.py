"""The Dataset tab's memory: the dataset a visitor has open (its line index and check report,
never its rows), and where a record sits in the current filtered selection. Shared by the
tab's handler modules; no widgets here.

What a visitor opened lives in that visitor's session, not in this module: the tab's gr.State
holds an `OpenPath`, which reads as the dataset's path and carries its `OpenDataset`. Gradio
keeps it per browser session and drops it when the session closes, so visitors never evict or
see each other's open datasets."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from core.dataset import checks, pages, review
from core.dataset.contamination import load_config
from core.dataset.pages import PagedDataset, select

ALL_RECORDS, ANY_FINDING = "all records", "any finding"
FINDINGS_CHOICES = [ALL_RECORDS, ANY_FINDING, *pages.FINDING_FILTERS]


def findings_filter(value) -> bool | str:
    """The findings filter as pages.select takes it: False, True (any finding) or a kind's name.
    The page sends one of FINDINGS_CHOICES; True/False (the old checkbox) still work, anything
    else filters nothing."""
    if value is True or value == ANY_FINDING:
        return True
    return value if isinstance(value, str) and value in pages.FINDING_FILTERS else False


@dataclass
class OpenDataset:
    paged: PagedDataset
    format: str
    template: str | None
    report: checks.CheckReport | None = None
    tokens: dict | None = None
    searches: OrderedDict = field(default_factory=OrderedDict)

    @property
    def path(self) -> Path:
        return self.paged.path


class OpenPath(str):
    """An open dataset's path (a plain str to messages, the Train tab and JSON) that carries the
    visitor's OpenDataset; handlers get it back from the tab's gr.State on every event."""

    dataset: OpenDataset

    def __new__(cls, path: str, dataset: OpenDataset) -> OpenPath:
        handle = super().__new__(cls, path)
        handle.dataset = dataset
        return handle


def opened(path: str | None) -> OpenDataset | None:
    """The dataset behind a handle from `open_path`; None for a plain or empty path."""
    return getattr(path, "dataset", None)


def open_path(path: str, dataset: OpenDataset) -> OpenPath:
    return OpenPath(path, dataset)


def mode_table() -> dict:
    return load_config()["modes"]


def positions(opened: OpenDataset, mode, status, only_findings, search, sort):
    hits = None
    query = (search or "").strip()
    if query:
        if query not in opened.searches:
            opened.searches[query] = opened.paged.search(query)
            while len(opened.searches) > 8:
                opened.searches.popitem(last=False)
        hits = opened.searches[query]
    statuses = review.open_review(opened.path).statuses_by_position()
    return select(opened.report, total=len(opened.paged), mode=None if mode in (None, "", "any") else mode,
                  statuses=statuses, status=None if status in (None, "", "any") else status,
                  with_findings=findings_filter(only_findings), hits=hits, sort=sort or "file order"), statuses


def record_at(path, number):
    dataset = opened(path)
    if dataset is None or not len(dataset.paged):
        return dataset, None, 0
    position = min(max(int(number or 1), 1), len(dataset.paged)) - 1
    return dataset, dataset.paged.get(position), position


def step(path, number, delta, mode, status, only_findings, search, sort) -> int:
    """The record number `delta` places away within the current selection."""
    import numpy as np

    dataset = opened(path)
    if dataset is None:
        return number
    chosen, _ = positions(dataset, mode, status, only_findings, search, sort)
    if not len(chosen):
        return number
    current = int(number or 1) - 1
    where = np.flatnonzero(chosen == current)
    if len(where):
        return int(chosen[min(max(int(where[0]) + delta, 0), len(chosen) - 1)] + 1)
    # The current record left the selection (e.g. just approved under a 'pending' filter).
    nearer = chosen[chosen > current] if delta > 0 else chosen[chosen < current]
    if len(nearer):
        return int((nearer.min() if delta > 0 else nearer.max()) + 1)
    return int(chosen[-1 if delta > 0 else 0] + 1)


def next_record(path, number, mode, status, only_findings, search, sort):
    return step(path, number, 1, mode, status, only_findings, search, sort)


def previous_record(path, number, mode, status, only_findings, search, sort):
    return step(path, number, -1, mode, status, only_findings, search, sort)


