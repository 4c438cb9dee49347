"""The bad-input corpus (tests/bad_inputs.py) through `studio check` and `studio train --dry-run`
as subprocesses, as a person would run them: no traceback anywhere, every case named (the file,
and the line or row where there is one), exit codes as documented (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import bad_inputs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[bad_inputs.Case]]:
    folder = tmp_path_factory.mktemp("bad-inputs")
    return folder, bad_inputs.build(folder)


def _studio(*args: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "studio.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ}, timeout=300, check=False)
    return done.returncode, done.stdout, done.stderr


def _studio_each(commands: list[tuple[str, ...]]) -> list[tuple[int, str, str]]:
    """`_studio` for each command, as many at once as the machine has cores (each is a fresh
    process that spends its time importing): the answers in the commands' order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda args: _studio(*args), commands))


def _problems(case: bad_inputs.Case, code: int, expected: int, out: str, err: str, says: list[str]) -> list[str]:
    text = out + err
    found = []
    if "Traceback" in text:
        found.append("printed a traceback")
    if code != expected:
        found.append(f"exit {code}, expected {expected}")
    found += [f"does not say {s!r}" for s in says if s not in text]
    if code == 2 and (err.count("\n") != 1 or not err.startswith("error: ")):
        found.append(f"an error must be one line 'error: ...', got {err[:300]!r}")
    return [f"{case.name}: {problem}" for problem in found]


def test_check_answers_every_bad_dataset(corpus):
    folder, cases = corpus
    problems = []
    checked = [c for c in cases if c.check_rc is not None]
    answers = _studio_each([args for c in checked for args in (("check", str(folder / c.path)),
                                                               ("check", str(folder / c.path), "--json"))])
    for case, (code, out, err), as_json in zip(checked, answers[::2], answers[1::2]):
        problems += _problems(case, code, case.check_rc, out, err, case.check_says)
        code, out, err = as_json
        try:
            report = json.loads(out)
        except json.JSONDecodeError:
            problems.append(f"{case.name}: --json printed no JSON object: {out[:200]!r}")
            continue
        if code != case.check_rc or report["ok"] is not (case.check_rc == 0) or "Traceback" in err:
            problems.append(f"{case.name}: --json exit {code}, ok {report.get('ok')}")
    assert not problems, "\n".join(problems)


def test_dry_run_refuses_every_bad_dataset_and_recipe_in_one_line(corpus):
    folder, cases = corpus
    problems = []
    refused = [c for c in cases if c.train_rc == 2]
    for case, (code, out, err) in zip(refused, _studio_each([("train", str(folder / c.recipe), "--dry-run") for c in refused])):
        problems += _problems(case, code, 2, out, err, case.train_says)
    assert not problems, "\n".join(problems)


# Each plan loads torch and a tokenizer in a fresh process (tens of seconds on a busy 2-core
# machine), so the slow test plans the cases whose bad rows differ in kind, not all of them.
PLANNED = ("a Latin-1 line", "5 MB lines", "mixed line types", "CSV stray quote", "deep nesting (JSONL)")


@pytest.mark.slow
def test_dry_run_plans_the_usable_messy_datasets(corpus):
    """Messy but usable: the plan counts the bad rows and trains on the rest."""
    folder, cases = corpus
    problems = []
    planned = [c for c in cases if c.train_rc == 0 and c.name in PLANNED]
    for case, (code, out, err) in zip(planned, _studio_each([("train", str(folder / c.recipe), "--dry-run") for c in planned])):
        problems += _problems(case, code, 0, out, err, ["Steps:", *case.train_says])
    assert not problems, "\n".join(problems)
