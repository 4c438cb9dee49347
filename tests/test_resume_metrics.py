"""After a kill and a resume, charts and the model card show one value per step (issue 12): the
reader keeps the resumed session's record per (split, step), and the worker trims the records
past the checkpoint it resumes from."""

from __future__ import annotations

import json
import os
import signal

import pytest

from core.export import hub
from core.train import run_dir, runs
from studio.ui.train import charts as train_charts
from tests.helpers.data import tiny_recipe, wait_for, write_chats


def _killed_then_resumed(folder):
    """metrics.jsonl as a run killed at step 6 after checkpoint-4, then resumed to step 8, leaves it."""
    killed = [{"step": s, "split": "train", "loss": 10.0 - s} for s in range(1, 7)]
    killed.insert(4, {"step": 4, "split": "eval", "loss": 5.0})
    killed.append({"step": 6, "split": "eval", "loss": 0.5})  # an eval the resumed session redoes
    resumed = [{"step": s, "split": "train", "loss": 8.0 - s} for s in range(5, 9)]
    resumed += [{"step": 6, "split": "eval", "loss": 4.0}, {"step": 8, "split": "summary", "train_loss": 3.0}]
    folder.mkdir(exist_ok=True)
    lines = [json.dumps(r) for r in killed] + ['{"step": 7, "spl'] + [json.dumps(r) for r in resumed]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_reader_keeps_one_record_per_split_and_step(tmp_path):
    run = _killed_then_resumed(tmp_path / "run")
    records = runs.read_metrics(run)
    train = [(r["step"], r["loss"]) for r in records if r["split"] == "train"]
    assert train == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0), (5, 3.0), (6, 2.0), (7, 1.0), (8, 0.0)]
    assert [(r["step"], r["loss"]) for r in records if r["split"] == "eval"] == [(4, 5.0), (6, 4.0)]
    assert [r["split"] for r in records].count("summary") == 1


def test_chart_input_has_one_point_per_step(tmp_path):
    run = _killed_then_resumed(tmp_path / "run")
    steps, values = train_charts.series(runs.read_metrics(run), "loss")
    assert steps == list(range(1, 9)) and values[4:] == [3.0, 2.0, 1.0, 0.0]
    figure = train_charts.loss_figure(runs.read_metrics(run), smoothing=0.0)
    for trace in figure.data:
        assert len(set(trace.x)) == len(trace.x), trace.name


def test_model_card_losses_come_from_the_resumed_session(tmp_path):
    run = _killed_then_resumed(tmp_path / "run")
    losses = hub.losses(run_dir.read_metrics(run))
    # The killed session's 0.5 at step 6 was replaced by the resumed session's 4.0.
    assert losses == {"final_train_loss": 0.0, "final_train_step": 8, "final_eval_loss": 4.0, "final_eval_step": 6,
                      "best_eval_loss": 4.0, "best_eval_step": 6}


def test_trim_drops_records_past_the_checkpoint_and_ends_the_half_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "split": "train", "loss": 1.0}) for s in range(1, 7))
                                       + '\n{"step": 7, "spl')
    assert run_dir.trim_metrics(run, 4) == 2
    text = (run / "metrics.jsonl").read_text()
    assert text.endswith("\n") and [r["step"] for r in runs.read_metrics(run)] == [1, 2, 3, 4]
    assert run_dir.checkpoint_step(run / "checkpoints" / "checkpoint-40") == 40


@pytest.mark.slow
def test_kill_and_resume_leaves_each_step_once_in_the_file(tmp_path, tiny_model_dir):
    data = write_chats(tmp_path / "d.jsonl", 40)
    recipe = tiny_recipe(tiny_model_dir, data, max_steps=10, save_steps=3, eval_steps=100000)
    run = runs.start(recipe)

    def past_a_checkpoint():  # a step logged after the newest checkpoint, a whole step before the next one
        status, newest = runs.read_status(run), runs.latest_checkpoint(run)
        logged = [r["step"] for r in runs.read_metrics(run) if r.get("split") == "train"]
        ahead = newest is not None and logged and max(logged) > run_dir.checkpoint_step(newest)
        return status if status.get("step", 0) >= 4 and status["step"] % 3 == 1 and ahead else None

    status = wait_for(past_a_checkpoint, timeout=240, poll=0.05)
    os.kill(status["pid"], signal.SIGKILL)
    wait_for(lambda: runs.read_status(run)["state"] == "failed", timeout=30)
    checkpoint = runs.latest_checkpoint(run)
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.endswith("}")]
    assert checkpoint is not None and max(logged) > run_dir.checkpoint_step(checkpoint), "nothing logged past the checkpoint"
    runs.resume(run)
    assert runs.wait(run, timeout=240)["state"] == "completed", runs.tail_log(run)
    raw = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["split"], r["step"]) for r in raw]
    assert len(keys) == len(set(keys)), "the worker must trim the killed session's records past the checkpoint"
    assert [r["step"] for r in raw if r["split"] == "train"] == list(range(1, 11))
    assert "dropped" in runs.tail_log(run, 200)
