"""What a run folder tells after a kill and a resume: one metrics value per step (the resumed
session's), in the charts and the model card; `studio runs` gives a failed run's reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.export import hub
from core.train import run_dir, runs
from core.workspace import workspace

ROOT = Path(__file__).resolve().parent.parent


def _killed_and_resumed_run() -> Path:
    """Killed at step 5 after a checkpoint at step 3, then resumed from it: steps 4 and 5 twice."""
    run = workspace().runs / "resumed"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "completed", "step": 6, "total_steps": 6}))
    killed = [{"step": s, "split": "train", "loss": 10.0 + s} for s in range(1, 6)]
    killed.insert(4, {"step": 4, "split": "eval", "loss": 0.5})  # a stale, better-looking eval
    resumed = [{"step": s, "split": "train", "loss": 1.0 + s} for s in range(4, 7)] + [{"step": 6, "split": "eval", "loss": 2.0}]
    marker = {"step": 3, "split": "resume"}  # what the callback writes when a session resumes
    lines = [json.dumps(r) for r in killed] + ['{"step": 5, "spl', json.dumps(marker)] + [json.dumps(r) for r in resumed]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_metrics_hold_one_value_per_step_after_a_resume():
    run = _killed_and_resumed_run()
    train = [(m["step"], m["loss"]) for m in runs.read_metrics(run) if m["split"] == "train"]
    assert train == [(1, 11.0), (2, 12.0), (3, 13.0), (4, 5.0), (5, 6.0), (6, 7.0)]
    assert [(m["step"], m["loss"]) for m in runs.read_metrics(run) if m["split"] == "eval"] == [(6, 2.0)]
    info = runs.run_info(run)
    assert info.final_loss == 7.0 and info.best_eval_loss == 2.0


def test_older_runs_without_a_resume_marker_keep_the_last_value_per_step():
    records = [{"step": s, "split": "train", "loss": float(s)} for s in (1, 2, 3, 2, 3, 4)]
    assert [r["step"] for r in run_dir.one_per_step(records)] == [1, 2, 3, 4]


def test_the_model_card_counts_the_resumed_session_only():
    losses = hub.losses(run_dir.read_metrics(_killed_and_resumed_run()))
    assert losses["best_eval_loss"] == 2.0 and losses["best_eval_step"] == 6
    assert losses["final_train_loss"] == 7.0


def test_studio_runs_gives_a_failed_runs_reason():
    run = workspace().runs / "broke"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "failed", "step": 2, "total_steps": 9,
                                                 "error": "ValueError: data.max_length too small (the full traceback is in train.log)"}))
    env = {**os.environ, "STUDIO_HOME": str(workspace().root)}
    table = subprocess.run([sys.executable, "-m", "studio.cli", "runs"], check=False, cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert "why: ValueError: data.max_length too small" in table.stdout, table.stdout + table.stderr
    listed = subprocess.run([sys.executable, "-m", "studio.cli", "runs", "--json"], check=False, cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert json.loads(listed.stdout)["runs"][0]["error"].startswith("ValueError: data.max_length too small")
