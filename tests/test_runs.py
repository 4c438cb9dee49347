"""Runs: the run directory contract with a real worker process on the tiny model: a full run
dir, stop and resume, a killed worker reported failed, one run at a time, the launch commands."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from core import recipes
from core.train import runs
from core.workspace import workspace
from tests.helpers.data import tiny_recipe, wait_for, write_chats


def test_fake_status_with_dead_pid_reads_failed_with_log_tail(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text("loading\nstep 3\nRuntimeError: boom\n")
    dead = os.fork()
    if dead == 0:  # a child that exits at once gives us a pid that is certainly gone
        os._exit(0)
    os.waitpid(dead, 0)
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": dead, "step": 3, "created_at": runs.now_iso()}))
    status = runs.read_status(run)
    assert status["state"] == "failed" and "RuntimeError: boom" in status["error"]
    assert json.loads((run / "status.json").read_text())["state"] == "failed"  # persisted for every reader


def test_read_metrics_skips_half_written_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert runs.read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}]


def test_model_artifacts_order(tmp_path):
    for name in ("best", "adapter", "checkpoints/checkpoint-2", "checkpoints/checkpoint-10"):
        (tmp_path / name).mkdir(parents=True)
    labels = [label for label, _ in runs.model_artifacts(tmp_path)]
    assert labels == ["best", "final", "checkpoint-10", "checkpoint-2"]


def test_launch_command_follows_the_run_folder(tmp_path):
    recipe = recipes.from_dict({"data": {"path": "x"}, "training": {"distributed": "fsdp", "num_processes": 4}})
    run = runs.create_run(recipe, workspace().runs / "run")
    command = runs.launch_command(recipe, run, resume="last")
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[3:5] == ["--config_file", str(run / "accelerate_config.yaml")]
    assert command[-5:] == ["-m", "core.train.worker", str(run), "--resume", "last"]
    single = recipes.from_dict({"data": {"path": "x"}})
    plain = runs.create_run(single, workspace().runs / "plain")
    assert runs.launch_command(single, plain) == [sys.executable, "-m", "core.train.worker", str(plain)]


def test_qlora_start_refused_before_a_folder_exists(tmp_path, tiny_model_dir):
    from core.models import QLoRANeedsCUDA

    recipe = tiny_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl"), tuning="qlora")
    with pytest.raises(QLoRANeedsCUDA):
        runs.start(recipe)
    assert runs.list_runs() == []


# ---------------------------------------------------------------- real workers


@pytest.mark.slow
def test_worker_writes_the_whole_run_dir(tmp_path, tiny_model_dir):
    run = runs.start(tiny_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl")))
    status = runs.wait(run, timeout=240)
    assert status["state"] == "completed", runs.tail_log(run)
    assert {"recipe.yaml", "status.json", "metrics.jsonl", "train.log", "checkpoints", "adapter", "best"} <= {p.name for p in run.iterdir()}
    for label, folder in runs.model_artifacts(run):
        assert (folder / "recipe.yaml").is_file() and (folder / "tokenizer.json").is_file(), label
    assert [label for label, _ in runs.model_artifacts(run)][:2] == ["best", "final"]
    metrics = runs.read_metrics(run)
    assert {m["split"] for m in metrics} >= {"train", "eval"} and max(m["step"] for m in metrics) == 4
    info = runs.list_runs()[0]
    assert info.run_id == run.name and info.state == "completed" and info.final_loss is not None
    assert info.best_eval_loss is not None and info.recipe["name"] == "tiny"


@pytest.mark.slow
def test_stop_leaves_checkpoint_and_resume_continues(tmp_path, tiny_model_dir):
    recipe = tiny_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl", 40), max_steps=60, save_steps=1000,
                         eval_steps=1000)
    run = runs.start(recipe)
    wait_for(lambda: runs.read_status(run).get("step", 0) >= 2)
    runs.stop(run)
    status = runs.wait(run, timeout=120)
    assert status["state"] == "stopped", runs.tail_log(run)
    stopped_at = status["step"]
    assert 2 <= stopped_at < 60
    assert runs.latest_checkpoint(run).name == f"checkpoint-{stopped_at}"
    assert not (run / "adapter").exists()  # a stopped run has checkpoints, not a final adapter

    runs.resume(run)
    status = runs.wait(run, timeout=240)
    assert status["state"] == "completed", runs.tail_log(run)
    steps = [m["step"] for m in runs.read_metrics(run) if m["split"] == "train"]
    assert steps[: stopped_at] == list(range(1, stopped_at + 1))
    assert steps[stopped_at] == stopped_at + 1 and steps[-1] == 60  # continued, not restarted
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_killed_worker_is_failed_and_second_start_refused(tmp_path, tiny_model_dir):
    data = write_chats(tmp_path / "d.jsonl", 40)
    run = runs.start(tiny_recipe(tiny_model_dir, data, max_steps=100000, save_steps=100000, eval_steps=100000))
    try:
        wait_for(lambda: (s := runs.read_status(run)).get("state") == "running" and s.get("step", 0) >= 1 and s)
        with pytest.raises(runs.RunBusy, match="one run at a time"):
            runs.start(tiny_recipe(tiny_model_dir, data))
        with pytest.raises(runs.RunError, match="still running"):
            runs.delete_run(run)
    finally:  # a 100000-step worker must never outlive the test
        pid = runs.read_status(run).get("pid")
        if pid:
            os.kill(pid, signal.SIGKILL)
    failed = wait_for(lambda: (s := runs.read_status(run))["state"] == "failed" and s, timeout=30)
    assert "ended without finishing" in failed["error"] and "train.log" in failed["error"]
    assert runs.active_run() is None
    runs.delete_run(run)
    assert not run.exists()


def test_one_answer_to_which_base_model_tuned_weights_need(tmp_path, tiny_model_dir):
    """Issue 23: chat, evaluation and export each answered this, with different precedence. Now one
    function does: the recipe saved with the weights first (it travels), then adapter_config.json."""
    import json

    import pytest

    from core.eval.guard import resolve_target
    from core.export.source import resolve_source
    from core.train.run_dir import UnknownBase, base_model_for

    run = tmp_path / "run"
    adapter = run / "adapter"
    adapter.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "completed"}))
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone/elsewhere"}))
    (run / "recipe.yaml").write_text(f"name: r\nmodel: {{name: '{tiny_model_dir}'}}\n")
    assert base_model_for(adapter) == str(tiny_model_dir)  # the recipe's name, though the adapter recorded another
    (run / "recipe.yaml").write_text("name: r\nmodel: {name: /gone/too}\n")
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir)}))
    assert base_model_for(adapter) == str(tiny_model_dir)  # the recipe's model is gone: the recorded one resolves
    assert resolve_target(run).base_model == str(tiny_model_dir)
    assert resolve_source(run, "final").base_name == str(tiny_model_dir)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone/elsewhere"}))
    with pytest.raises(UnknownBase, match="tried '/gone/too' or '/gone/elsewhere'"):
        base_model_for(adapter)
