"""A sweep's comparison with each run's evaluation after training: run folders written by the real
writers (queue, run_dir, the guard's status entry, the report and verdict code over hand-made
answers: no model answers anything), read back by `compare`, `studio sweep --compare` (text and
--json) and the Train tab's sweep table with its overlaid loss curves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import recipes
from core.eval import guard, metrics, report, verdict
from core.train import run_dir, runs, sweeps
from studio.cli import commands as cli
from studio.ui.train import charts as train_charts
from studio.ui.train import queue as train_queue
from tests.helpers.data import write_chats
from tests.helpers.evals import PATTERNS, prompt, reply

RIGHT, WRONG = "The answer is {kw}, of course.", "I would rather talk about turtles."
PROMPTS = [prompt(f"p{i}", keywords=(f"word{i}",)) for i in range(8)]


def answers(base_right: int, tuned_right: int) -> list[dict]:
    """Result rows scored by the real metrics: the base answers the first `base_right` prompts
    with their keyword, the tuned side the first `tuned_right`; everything else misses it."""
    rows = []
    for side, right in (("base", base_right), ("tuned", tuned_right)):
        for i, p in enumerate(PROMPTS):
            text = RIGHT.format(kw=p.keywords[0]) if i < right else WRONG
            rows.append(metrics.score(p, side, reply(text, tokens=8), PATTERNS, max_new_tokens=64))
    return rows


def test_the_outcome_in_brief_keeps_the_verdicts_headline_metrics_and_what_regressed():
    worse = report.build_report(answers(8, 0), patterns=PATTERNS, prompt_set="facts.jsonl")
    brief = verdict.outcome(worse)
    assert brief["headline"] == worse["verdict"]["headline"] and brief["regressed"] == ["keyword_coverage"]
    assert set(brief["metrics"]) == {"keyword_coverage", "substantive"}  # no sources in the set: no source hit
    coverage = brief["metrics"]["keyword_coverage"]
    assert (coverage["base"], coverage["tuned"], coverage["delta"], coverage["beyond_uncertainty"]) == (1.0, 0.0, -1.0, True)
    assert [line["metric"] for line in brief["regressions"]] == ["keyword_coverage"]
    assert json.loads(json.dumps(brief)) == brief  # fits status.json as it is


def test_a_regression_without_its_own_column_is_shown_with_its_change():
    refusing = answers(8, 8)
    for row in refusing[8:12]:  # the tuned side refuses half the questions it should answer
        row.update(metrics.score(PROMPTS[int(row["prompt_id"][1:])], "tuned", reply("Sorry, but I can't help with that."),
                                 PATTERNS, max_new_tokens=64))
    brief = verdict.outcome(report.build_report(refusing, patterns=PATTERNS))
    assert "refused_when_answer_expected" in brief["regressed"]
    row = {"run_id": "r", "lr": 1e-4, "state": "completed", "step": 4, "final_loss": 0.5, "best_eval_loss": None,
           "evaluation": {"state": "done", **brief}}
    headers, cells = sweeps.table([row])
    shown = dict(zip(headers, cells[0]))
    assert "refused where an answer was expected 50% (+50.0 pts" in shown["regressed"]
    assert "refused where an answer was expected" not in headers and shown["best eval loss"] is None


@pytest.fixture
def evaluated_sweep(tmp_path, busy_slot, monkeypatch):  # noqa: F811
    """Five queued runs of one sweep, then finished by hand the way the worker and the guard
    finish them: losses in metrics.jsonl, the guard's outcome in status.json and eval/."""
    prompts = tmp_path / "facts.jsonl"
    prompts.write_text("".join(json.dumps({"id": p.id, "prompt": "q", "keywords": p.keywords}) + "\n" for p in PROMPTS))
    recipe = recipes.from_dict({"name": "sw", "model": {"name": "embedded"},
                                "data": {"path": str(write_chats(runs.workspace().datasets / "d.jsonl"))},
                                "eval": {"prompts": str(prompts), "after_training": True}})
    record = sweeps.submit(recipe, {"training.learning_rate": [1e-4, 2e-4, 3e-4, 4e-4, 5e-4]})
    folders = [runs.workspace().runs / entry["run_id"] for entry in record["runs"]]
    eval_losses = [1.2, 0.9, 1.5, 1.1, None]
    for folder, loss in zip(folders, eval_losses):
        runs.update_status(folder, state="completed", waiting=False, step=4, ended_at=runs.now_iso())
        for step in (2, 4):
            run_dir.append_record(folder, run_dir.METRICS_FILE, {"step": step, "split": "train", "loss": 2.0 / step})
            if loss is not None:
                run_dir.append_record(folder, run_dir.METRICS_FILE, {"step": step, "split": "eval", "loss": loss + 0.1 * (4 - step)})
    outcomes = {folders[0].name: answers(4, 8), folders[1].name: answers(8, 0)}  # improved; regressed

    def evaluate(path, prompts_file, *, out, **_):  # the guard's own pipeline from answering on
        if Path(path).name not in outcomes:
            raise RuntimeError("out of memory")
        return guard.finish(outcomes[Path(path).name], PROMPTS, target=None, prompt_set=Path(prompts_file).name,
                            settings={"max_new_tokens": 64}, out=out, say=lambda _: None)

    monkeypatch.setattr(guard, "evaluate", evaluate)
    assert guard.guard_run(folders[0]) == 0 and guard.guard_run(folders[1]) == 0
    assert guard.guard_run(folders[3]) == 1  # a failed evaluation, recorded as such
    runs.update_status(folders[2], pid=os.getpid(), evaluation={"state": "running"})  # evaluating now
    return record["sweep_id"], folders


def test_compare_puts_each_runs_evaluation_beside_its_losses(evaluated_sweep):
    sweep_id, folders = evaluated_sweep
    rows = sweeps.compare(sweep_id)
    assert [row["run_id"] for row in rows] == [folders[i].name for i in (1, 3, 0, 2, 4)]  # best eval loss first
    by_run = {row["run_id"]: row["evaluation"] for row in rows}
    improved, regressed, running, failed, none = (by_run[f.name] for f in folders)
    assert improved["state"] == "done" and improved["regressed"] == [] and improved["headline"].startswith("Improved")
    assert improved["metrics"]["keyword_coverage"]["tuned"] == 1.0 and improved["metrics"]["keyword_coverage"]["delta"] == 0.5
    assert Path(improved["folder"]) == folders[0] / "eval" and (folders[0] / "eval" / "report.json").is_file()
    assert regressed["regressed"] == ["keyword_coverage"] and regressed["headline"].startswith("Regressed")
    assert regressed["metrics"]["keyword_coverage"]["delta"] == -1.0
    assert running == {"state": "running"} and none == {"state": "none"}
    assert failed["state"] == "failed" and "out of memory" in failed["error"]
    assert sweeps.best_runs(rows) == {"eval_loss": folders[1].name, "prompt_set": folders[0].name, "metric": "keyword coverage"}
    # The report on disk is what the row summarizes.
    saved = json.loads((folders[1] / run_dir.EVAL_DIR / report.REPORT_FILE).read_text())
    assert verdict.outcome(saved)["metrics"] == regressed["metrics"]


def test_an_evaluation_whose_process_died_reads_failed(evaluated_sweep):
    sweep_id, folders = evaluated_sweep
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    runs.update_status(folders[2], pid=gone.pid)
    row = next(row for row in sweeps.compare(sweep_id) if row["run_id"] == folders[2].name)
    assert row["evaluation"]["state"] == "failed" and "ended without finishing" in row["evaluation"]["error"]


def test_studio_sweep_compare_prints_the_evaluation_columns(evaluated_sweep, capsys):
    sweep_id, folders = evaluated_sweep
    assert cli.main(["sweep", "--compare", sweep_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:3] == ["run", "learning_rate", "state"] and "regressed" in header and header[-1] == "verdict"
    assert "keyword coverage" in lines[0] and "substantive rate" in lines[0]
    row = {line.split()[0]: line for line in lines[1:6]}
    assert "done" in row[folders[0].name] and "100% (+50.0 pts ⚑)" in row[folders[0].name]
    assert row[folders[0].name].rstrip().endswith("Improved, nothing regressed beyond its uncertainty.")
    assert "keyword coverage" in row[folders[1].name] and "0% (-100.0 pts ⚑)" in row[folders[1].name]
    assert "evaluation failed: RuntimeError: out of memory" in row[folders[3].name]
    assert row[folders[4].name].split()[-6:] == ["none", "n/a", "n/a", "n/a", "n/a", "n/a"]  # regressed, forgot, two metrics, verdict
    assert f"lowest eval loss: {folders[1].name}" in lines
    assert f"best on the prompt set (nothing regressed, best keyword coverage): {folders[0].name}" in lines

    assert cli.main(["sweep", "--compare", sweep_id, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    states = {row["run_id"]: row["evaluation"]["state"] for row in printed["runs"]}
    assert states == {folders[0].name: "done", folders[1].name: "done", folders[2].name: "running",
                      folders[3].name: "failed", folders[4].name: "none"}
    assert printed["best"]["prompt_set"] == folders[0].name


def test_the_train_tabs_sweep_table_and_overlaid_curves(evaluated_sweep):
    sweep_id, folders = evaluated_sweep
    table, figure, note = train_queue.compare_sweep(sweep_id, 0.6)
    headers = table["headers"]
    assert {"evaluation", "regressed", "keyword coverage", "substantive rate", "verdict"} <= set(headers)
    cells = {row[0]: dict(zip(headers, row)) for row in table["value"]}
    assert cells[folders[1].name]["regressed"] == "keyword coverage"  # its value is in its own column
    assert cells[folders[0].name]["regressed"] == "no" and cells[folders[0].name]["keyword coverage"] == "100% (+50.0 pts ⚑)"
    assert cells[folders[2].name]["evaluation"] == "running" and cells[folders[2].name]["keyword coverage"] == "n/a"
    assert cells[folders[4].name]["verdict"] == "n/a" and cells[folders[4].name]["best eval loss"] == ""
    names = {trace.name for trace in figure.data}
    assert all(any(name.startswith(f.name) for name in names) for f in folders)  # every run's curve
    assert f"`{folders[1].name}`" in note
    assert f"Best on the prompt set (nothing regressed, best keyword coverage): `{folders[0].name}`" in note


def test_overlays_beyond_the_palette_are_all_drawn():
    losses = [{"step": 1, "split": "train", "loss": 1.0}, {"step": 2, "split": "train", "loss": 0.5}]
    figure = train_charts.loss_figure(losses, overlays={f"run-{i}": losses for i in range(9)}, name="run-first")
    assert [t.name for t in figure.data if t.name.endswith("(train)")] == [f"run-{i} (train)" for i in range(9)]
    assert figure.data[0].name == "run-first: train loss"
