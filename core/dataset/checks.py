"""Checks: one streaming pass over a dataset that finds what would hurt a fine-tune.

`check()` streams a dataset through a `Checker` (core.dataset.checker), in this process or, for
a big JSONL file, split across worker processes (core.dataset.check_pool). This module only
chooses between the two; what the checks look for lives in the checker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from core.dataset import check_pool, reader
from core.dataset.checker import NEAR_THRESHOLD, TARGET_NAMES, Checker, CheckReport, apply_targets, visible_words  # noqa: F401  (re-exported)
from core.dataset.contamination import load_config


def check(path: str | Path, format: str = "auto", *, modes_file: str | Path | None = None,
          mode_tags: dict | None = None, format_template: str | None = None, system_prompt: str | None = None,
          workers: int | None = None, progress=None, targets: str = "auto", leaks=None, hygiene: bool = True,
          near_threshold: float = NEAR_THRESHOLD) -> CheckReport:
    """Stream a dataset through every check. A big JSONL file is split across `workers`
    processes (default: one per CPU core). `progress(rows)` is called every 50,000 rows when
    the check runs in this process. `targets`: the quality targets to grade against (checker.TARGETS;
    auto picks by the kind of data). `leaks`: a core.dataset.leakage.LeakIndex of evaluation
    prompts the training text must not hold. `near_threshold`: the similarity (estimated Jaccard
    of word 3-shingles) from which two records are near duplicates. `hygiene=False` leaves out
    the personal-data, leakage and near-duplicate checks (the plain check benchmarks compare with)."""
    if not 0 < near_threshold <= 1:
        raise ValueError(f"near-duplicate threshold {near_threshold}: use a similarity above 0 and at most 1 (e.g. 0.7)")
    started = time.perf_counter()
    config = load_config(modes_file)
    table = mode_tags or config["modes"]
    opened = reader.stream(path, format, format_template=format_template, system_prompt=system_prompt)
    workers = os.cpu_count() or 1 if workers is None else workers
    report = None
    if opened.format != "unknown" and check_pool.worth_it(path, workers):
        try:
            report = check_pool.check_parallel(path, opened.format, opened.evidence, workers=workers, mode_table=table,
                                               fillers=config["filler_phrases"], template=opened.template,
                                               system_prompt=system_prompt, leaks=leaks, hygiene=hygiene,
                                               near_threshold=near_threshold)
        except (OSError, RuntimeError, ImportError):  # no worker processes here (BrokenProcessPool is a RuntimeError)
            report = None
    if report is None:
        report = CheckReport(str(path), opened.format, opened.evidence)
        checker = Checker(report, mode_table=table, filler_phrases=config["filler_phrases"], leaks=leaks, hygiene=hygiene,
                          near_threshold=near_threshold)
        for position, item in enumerate(opened):
            checker.add(item, position)
            if progress and position % 50_000 == 49_999:
                progress(position + 1)
        checker.finish()
    apply_targets(report, targets)
    report.elapsed_s = time.perf_counter() - started
    return report
