"""Pages: random access to a dataset's records, for browsing a page at a time.

A JSONL file is indexed by the byte offset of each non-blank line (8 bytes a row) and a page
is read, parsed and normalized only when asked for, so a million-row file never becomes a
million Python dicts. Other formats (JSON, CSV, Parquet, folders) are read once into a list.
`select` filters and sorts positions with numpy over the compact arrays a check produced.
Positions count records in file order, bad rows included, exactly as core.dataset.checks counts them.
This module knows nothing about the UI; it reads files and review state, and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.dataset import formats, reader
from core.dataset.reader import BadRow, Example

_CHUNK = 8 << 20
_INDEX_CHUNK = 32 << 20


class PagedDataset:
    """`len()`, `get(position)` and `search(text)` over one dataset."""

    def __init__(self, path: str | Path, format: str = "auto", *, format_template: str | None = None,
                 system_prompt: str | None = None):
        self.path = Path(path)
        opened = reader.stream(path, format, format_template=format_template, system_prompt=system_prompt)
        self.format, self.evidence = opened.format, opened.evidence
        self.template, self.system_prompt = opened.template, system_prompt
        self.lazy = self.path.is_file() and self.path.suffix.lower() in (".jsonl", ".ndjson")
        if self.lazy:
            self.offsets, self.line_numbers = _index_lines(self.path)
            self.items: list = []
        else:
            self.items = list(opened)

    def __len__(self) -> int:
        return len(self.offsets) if self.lazy else len(self.items)

    def get(self, position: int) -> Example | BadRow:
        if not self.lazy:
            return self.items[position]
        return self.page([position])[0]

    def page(self, positions: list[int]) -> list[Example | BadRow]:
        """The records at `positions`, read from disk in one open of the file."""
        if not self.lazy:
            return [self.items[p] for p in positions]
        out = []
        with open(self.path, "rb") as handle:
            for position in positions:
                handle.seek(int(self.offsets[position]))
                out.append(self._record(handle.readline(), int(self.line_numbers[position]), position + 1))
        return out

    def _record(self, raw: bytes, line: int, number: int) -> Example | BadRow:
        row = reader.parse_line(raw, line)
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if isinstance(row, str):
            return BadRow(str(self.path), line, row, number, raw=text)
        if self.format == "unknown":
            return BadRow(str(self.path), line, self.evidence, number, raw=text)
        try:
            return formats.normalize(row, self.format, example_id=f"line-{line}", line=line, row_number=number,
                                     format_template=self.template, system_prompt=self.system_prompt)
        except (formats.RowError, KeyError, TypeError, AttributeError) as error:
            return BadRow(str(self.path), line, reader.row_error_text(error), number, raw=text)

    def search(self, text: str) -> list[int]:
        """Positions of records whose raw text contains `text` (case-insensitive)."""
        needle = text.strip().lower()
        if not needle:
            return list(range(len(self)))
        if not self.lazy:
            return [i for i, item in enumerate(self.items) if needle in _searchable(item)]
        needles = {json.dumps(needle, ensure_ascii=False)[1:-1].encode(), json.dumps(needle)[1:-1].encode()}
        hits: set[int] = set()
        for needle_bytes in needles:
            for offset in _find_all(self.path, needle_bytes):
                hits.add(int(self.offsets.searchsorted(offset, side="right")) - 1)
        return sorted(h for h in hits if h >= 0)


def _searchable(item: Example | BadRow) -> str:
    if isinstance(item, BadRow):
        return item.reason.lower()
    return json.dumps(item.source, ensure_ascii=False).lower() + " " + item.id.lower()


def _index_lines(path: Path):
    """(byte offset, line number) of every non-blank line, as numpy arrays. Newlines are found
    with numpy, 32 MB at a time through one reused buffer: about a second for a million rows
    (a Python loop over the lines takes several) and no more memory than the buffer."""
    import numpy as np

    size = path.stat().st_size
    buffer = bytearray(_INDEX_CHUNK)
    starts, firsts, pending = [], [], np.zeros(1, dtype=np.int64)  # line 1 starts at byte 0
    with open(path, "rb", buffering=0) as handle:
        base = 0
        while n := handle.readinto(buffer):
            chunk = np.frombuffer(buffer, dtype=np.uint8, count=n)
            candidates = np.concatenate((pending, np.flatnonzero(chunk == 10) + 1 + base))
            inside = candidates < base + n  # a line starting exactly at the chunk's end waits for the next
            starts.append(candidates[inside])
            firsts.append(chunk[candidates[inside] - base].copy())
            pending = candidates[~inside]
            base += n
    starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    firsts = np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.uint8)
    lengths = np.diff(np.append(starts, size))
    # Blank: "\n", "\r\n", or (rarely) other whitespace only, which is confirmed by reading it.
    maybe_blank = np.flatnonzero((firsts == 10) | (firsts == 13) | (firsts == 32) | (firsts == 9))
    blank = np.zeros(len(starts), dtype=bool)
    with open(path, "rb") as handle:
        for index in maybe_blank.tolist():
            if lengths[index] <= 2 and firsts[index] == 10:
                blank[index] = True
                continue
            handle.seek(int(starts[index]))
            blank[index] = not handle.read(int(lengths[index])).strip()
    keep = ~blank
    return starts[keep], (np.arange(len(starts), dtype=np.int64) + 1)[keep]


def _find_all(path: Path, needle: bytes):
    """Byte offsets of every case-insensitive occurrence, reading the file in 8 MB chunks."""
    overlap = len(needle) - 1
    with open(path, "rb") as handle:
        base, tail = 0, b""
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                return
            block = (tail + chunk).lower()
            start = 0
            while (found := block.find(needle, start)) != -1:
                yield base - len(tail) + found
                start = found + 1
            tail = chunk[-overlap:] if overlap else b""
            base += len(chunk)


# The findings a browser can filter on: shown name -> the report's finding kinds (CheckReport.counts keys).
FINDING_FILTERS = {
    "personal data or secrets": {"personal_data", "secrets"},
    "near duplicates": {"near_duplicates"},
    "exact duplicates": {"exact_duplicates"},
    "evaluation leaks": {"eval_leaks"},
    "mode contamination": {"contamination"},
    "bad rows": {"bad_rows"},
    "empty turns or role order": {"empty_turns", "role_order"},
    "broken preference pairs": {"identical_pairs", "empty_sides"},
    "parts left out": {"left_out_parts"},
}


def select(report, *, total: int, mode: str | None = None, statuses: dict[int, str] | None = None,
           status: str | None = None, with_findings: bool | str = False, hits: list[int] | None = None,
           sort: str = "file order"):
    """Positions to browse, as a numpy array, after filters and sort.

    `statuses` maps position -> review status for reviewed rows (the rest are pending).
    `with_findings`: True for records with any finding, or a FINDING_FILTERS name for one kind.
    `sort` is one of: file order, longest first, shortest first, findings first."""
    import numpy as np

    keep = np.ones(total, dtype=bool)
    if report is not None and len(report.modes) == total:
        modes = np.frombuffer(report.modes, dtype=np.int8)
        if mode:
            code = report.mode_names.index(mode) if mode in report.mode_names else -2
            keep &= modes == code
    flagged = np.zeros(total, dtype=bool)
    if report is not None and report.findings:
        flagged[[p for p in report.findings if p < total]] = True
    if with_findings in FINDING_FILTERS:
        kinds = FINDING_FILTERS[with_findings]
        wanted = np.zeros(total, dtype=bool)
        if report is not None:
            wanted[[p for p, found in report.finding_kinds.items() if p < total and found & kinds]] = True
        keep &= wanted
    elif with_findings:
        keep &= flagged
    if status:
        reviewed = np.zeros(total, dtype=bool)
        marked = [p for p, s in (statuses or {}).items() if s == status and p < total]
        if status == "pending":
            reviewed[[p for p, s in (statuses or {}).items() if s != "pending" and p < total]] = True
            keep &= ~reviewed
        else:
            reviewed[marked] = True
            keep &= reviewed
    if hits is not None:
        found = np.zeros(total, dtype=bool)
        found[np.asarray(hits, dtype=np.int64)] = True
        keep &= found
    positions = np.nonzero(keep)[0]
    if sort in ("longest first", "shortest first") and report is not None and len(report.words) == total:
        words = np.frombuffer(report.words, dtype=np.uint32)[positions]
        order = np.argsort(-words.astype(np.int64) if sort == "longest first" else words, kind="stable")
        positions = positions[order]
    elif sort == "findings first":
        positions = positions[np.argsort(~flagged[positions], kind="stable")]
    return positions
