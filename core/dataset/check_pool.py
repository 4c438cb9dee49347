"""Check pool: run core.dataset.checker over slices of one big JSONL file in worker processes, then
merge the partial results into one report, so a million-row file uses every core.

Slices start at line boundaries; each worker numbers its records from 1 and the merge shifts
rows and positions. Duplicates are matched after the merge (across slices), so every worker
gets the same PYTHONHASHSEED: Python's str hash is otherwise different in each process.
This module knows nothing about what the checks look for; it only splits and merges.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from core.dataset import reader
from core.dataset.checker import LIST_CAP, NEAR_THRESHOLD, Checker, CheckReport

MIN_BYTES = 32 << 20  # below this, starting workers costs more than it saves
_LISTS = ("bad_rows", "contamination", "empty_turns", "role_order", "preference_findings", "left_out", "personal_data",
          "eval_leaks")
_STATS = ("replies", "short", "long", "fillers", "total_words", "pairs", "identical", "empty_sides")


def worth_it(path: str | Path, workers: int) -> bool:
    path = Path(path)
    return (workers > 1 and path.is_file() and path.suffix.lower() in (".jsonl", ".ndjson")
            and path.stat().st_size >= MIN_BYTES)


def slices(path: Path, parts: int) -> list[tuple[int, int, int]]:
    """(start byte, end byte, first line number) for `parts` slices that begin at line starts."""
    size = path.stat().st_size
    starts = [0]
    with open(path, "rb") as handle:
        for i in range(1, parts):
            handle.seek(size * i // parts)
            handle.readline()
            if handle.tell() > starts[-1] and handle.tell() < size:
                starts.append(handle.tell())
        lines, position, first_lines = 1, 0, []
        handle.seek(0)
        for start in starts:
            while position < start:  # count newlines up to each start, 16 MB at a time
                chunk = handle.read(min(16 << 20, start - position))
                lines += chunk.count(b"\n")
                position += len(chunk)
            first_lines.append(lines)
    ends = starts[1:] + [size]
    return list(zip(starts, ends, first_lines))


def _check_slice(job: tuple) -> dict:
    path, start, end, first_line, fmt, template, system_prompt, mode_table, fillers, leaks, hygiene = job
    report = CheckReport(path, fmt, "")
    checker = Checker(report, mode_table=mode_table, filler_phrases=fillers, leaks=leaks, hygiene=hygiene)
    items = reader.jsonl_slice(path, start, end, first_line, fmt, template=template, system_prompt=system_prompt)
    for position, item in enumerate(items):
        checker.add(item, position)
    return {
        "rows": report.rows, "examples": report.examples, "words": report.words, "modes": report.modes,
        "mode_names": [n for n, _ in sorted(checker.mode_codes.items(), key=lambda kv: kv[1])],
        "lines": report.lines, "exact": checker.exact_hashes,
        "near": checker.signer.result() if checker.signer else None,
        "findings": report.findings, "finding_kinds": report.finding_kinds, "lists": {name: getattr(report, name) for name in _LISTS},
        "stats": {name: getattr(checker, name) for name in _STATS}, "counts": dict(checker.counts),
        "mode_counts": dict(checker.mode_counts), "categories": dict(checker.categories), "any_mode": checker.any_mode,
    }


def check_parallel(path: str | Path, fmt: str, evidence: str, *, workers: int, mode_table: dict, fillers: list[str],
                   template: str | None = None, system_prompt: str | None = None, leaks=None, hygiene: bool = True,
                   near_threshold: float = NEAR_THRESHOLD) -> CheckReport:
    """The same report `core.dataset.checks.check` gives, computed by `workers` processes."""
    path = Path(path)
    jobs = [(str(path), s, e, line, fmt, template, system_prompt, mode_table, fillers, leaks, hygiene)
            for s, e, line in slices(path, workers)]
    saved = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = "0"  # read by the spawned workers at start-up only
    try:
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=get_context("spawn")) as pool:
            parts = list(pool.map(_check_slice, jobs))
    finally:
        if saved is None:
            os.environ.pop("PYTHONHASHSEED", None)
        else:
            os.environ["PYTHONHASHSEED"] = saved
    report = CheckReport(str(path), fmt, evidence)
    # The merge computes nothing per row (hygiene=False); the workers' signatures are clustered in finish().
    checker = Checker(report, mode_table=mode_table, filler_phrases=fillers, hygiene=False, near_threshold=near_threshold)
    for part in parts:
        _merge(checker, part)
    return checker.finish()


def _merge(checker: Checker, part: dict) -> None:
    import numpy as np

    report, offset = checker.report, checker.report.rows
    report.rows += part["rows"]
    report.examples += part["examples"]
    report.words.extend(part["words"])
    report.lines.extend(part["lines"])
    checker.exact_hashes.extend(part["exact"])
    if part["near"] is not None:
        checker.near_parts.append(part["near"])
    codes = [checker.mode_codes.setdefault(name, len(checker.mode_codes)) for name in part["mode_names"]]
    local = np.frombuffer(part["modes"], dtype=np.int8)
    lookup = np.asarray(codes + [-1], dtype=np.int8)  # index -1 (no mode) maps to -1
    report.modes.frombytes(np.where(local >= 0, lookup[local], -1).astype(np.int8).tobytes())
    report.findings.update({position + offset: messages for position, messages in part["findings"].items()})
    report.finding_kinds.update({position + offset: kinds for position, kinds in part["finding_kinds"].items()})
    for name, entries in part["lists"].items():
        target = getattr(report, name)
        for entry in entries[: max(0, LIST_CAP - len(target))]:
            target.append({**entry, "row": entry["row"] + offset if entry.get("row") else entry.get("row")})
    for name, value in part["stats"].items():
        setattr(checker, name, getattr(checker, name) + value)
    checker.counts.update(part["counts"])
    checker.mode_counts.update(Counter(part["mode_counts"]))
    checker.categories.update(Counter(part["categories"]))
    checker.any_mode = checker.any_mode or part["any_mode"]
