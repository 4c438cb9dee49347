"""Distributed: accelerate's config files in the run folder, and a real 2-process data-parallel
run on CPU (gloo) against the 1-process run with the same global batch."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml

from core import recipes
from core.train import distributed, runs
from core.workspace import workspace
from tests.helpers.data import tiny_recipe, wait_for, write_chats


def _recipe(**training):
    return recipes.from_dict({"data": {"path": "x"}, "training": training})


def test_config_files_for_each_strategy(tmp_path):
    ddp = runs.create_run(_recipe(num_processes=2), workspace().runs / "ddp")
    config = yaml.safe_load((ddp / "accelerate_config.yaml").read_text())
    assert config["distributed_type"] == "MULTI_GPU" and config["num_processes"] == 2
    assert config["main_process_port"] == 0  # a free port: runs and test sessions never collide
    fsdp = distributed.config_for(_recipe(num_processes=4, distributed="fsdp"))
    assert fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_use_orig_params"] is True
    zero = distributed.config_for(_recipe(num_processes=8, distributed="deepspeed", grad_accum=4))
    assert zero["deepspeed_config"]["zero_stage"] == 2 and zero["deepspeed_config"]["gradient_accumulation_steps"] == 4
    one = runs.create_run(_recipe(distributed="ddp"), workspace().runs / "one")
    assert distributed.config_path(one) is None  # one process: no accelerate, no config file


def test_user_config_is_copied_and_sets_the_process_count(tmp_path):
    user = tmp_path / "my_accelerate.yaml"
    user.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 3\nfsdp_config:\n  fsdp_version: 2\n")
    config = distributed.read_user_config(user)
    run = runs.create_run(_recipe(), workspace().runs / "run", accelerate_config=config)
    assert yaml.safe_load((run / "accelerate_config.yaml").read_text())["fsdp_config"] == {"fsdp_version": 2}
    saved = recipes.load(run / "recipe.yaml")
    assert saved.training.num_processes == 3 and saved.training.distributed == "fsdp"


@pytest.mark.parametrize("text, message", [
    ("- not a mapping\n", "no distributed_type"),
    ("distributed_type: TPU_POD\n", "not supported"),
    ("distributed_type: MULTI_GPU\nnum_processes: two\n", "num_processes"),
    ("distributed_type: [unclosed\n", "not a valid accelerate config"),
])
def test_bad_user_config_names_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(recipes.RecipeError, match=message) as caught:
        distributed.read_user_config(path)
    assert str(path) in str(caught.value)
    with pytest.raises(recipes.RecipeError, match="not found"):
        distributed.read_user_config(tmp_path / "missing.yaml")


def test_agree_is_the_local_flag_in_one_process():
    assert distributed.agree(True) is True and distributed.agree(False) is False


@pytest.mark.slow
def test_two_cpu_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_model_dir):
    """2 gloo processes x batch 2 against 1 process x batch 4: the same samples per optimizer
    step (tokens seen agree step by step), a loss curve within a few percent, one writer."""
    data = write_chats(tmp_path / "d.jsonl", 25)  # 20 train rows: whole global batches of 4
    common = dict(max_steps=6, save_steps=3, eval_steps=3, learning_rate=1e-3)
    one = runs.start(tiny_recipe(tiny_model_dir, data, batch_size=4, **common))
    assert runs.wait(one, timeout=300)["state"] == "completed", runs.tail_log(one)
    two = runs.start(tiny_recipe(tiny_model_dir, data, batch_size=2, num_processes=2, **common))
    assert (two / "accelerate_config.yaml").is_file()
    status = runs.wait(two, timeout=400)
    log = (two / "train.log").read_text()
    assert status["state"] == "completed", log[-3000:]
    assert "[studio rank 0]" in log and "[studio rank 1]" in log  # every process's log reaches train.log
    train = {run: [m for m in runs.read_metrics(run) if m["split"] == "train"] for run in (one, two)}
    assert [m["step"] for m in train[two]] == [m["step"] for m in train[one]] == list(range(1, 7))  # one writer
    assert [m["tokens_seen"] for m in train[two]] == [m["tokens_seen"] for m in train[one]]
    for a, b in zip(train[one], train[two]):
        assert b["loss"] == pytest.approx(a["loss"], rel=0.05), (a["loss"], b["loss"])
    assert (two / "adapter" / "adapter_model.safetensors").is_file() and (two / "best" / "best.json").is_file()
    assert runs.latest_checkpoint(two).name == "checkpoint-6"
    assert json.loads((two / "status.json").read_text())["step"] == 6
    # torchrun's per-rank folders are kept with the run, none left in the temporary folder
    assert (two / distributed.LAUNCHER_LOGS).is_dir()
    assert not list(Path(tempfile.gettempdir()).glob("torchelastic_*")), "torchrun left a folder in the temporary folder"


@pytest.mark.slow
def test_two_process_run_stops_together_and_resumes(tmp_path, tiny_model_dir):
    data = write_chats(tmp_path / "d.jsonl", 40)
    run = runs.start(tiny_recipe(tiny_model_dir, data, batch_size=1, num_processes=2, max_steps=400, save_steps=1000,
                                 eval_steps=1000))
    wait_for(lambda: runs.read_status(run).get("step", 0) >= 2, timeout=300)
    runs.stop(run)
    status = runs.wait(run, timeout=120)
    assert status["state"] == "stopped", runs.tail_log(run, 60)
    stopped_at = status["step"]
    assert runs.latest_checkpoint(run).name == f"checkpoint-{stopped_at}"
    runs.resume(run)
    wait_for(lambda: runs.read_status(run).get("step", 0) > stopped_at, timeout=300)
    runs.stop(run)
    assert runs.wait(run, timeout=120)["state"] == "stopped", runs.tail_log(run, 60)


def test_a_rank_zero_worker_starts_the_next_run_without_its_launcher_variables():
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_PORT": "1234", "TORCHELASTIC_RUN_ID": "x",
           "ACCELERATE_USE_CPU": "True", "OMP_NUM_THREADS": "1", "HOME": "/home/me", "STUDIO_HOME": "/w"}
    assert distributed.clean_env(env) == {"HOME": "/home/me", "STUDIO_HOME": "/w"}
    mine = {"OMP_NUM_THREADS": "4", "ACCELERATE_LOG_LEVEL": "info"}
    assert distributed.clean_env(dict(mine)) == mine  # outside a launched process: the user's own


@pytest.mark.slow
def test_two_process_run_that_fails_reads_failed_with_the_reason(tmp_path, tiny_model_dir):
    data = write_chats(tmp_path / "d.jsonl")
    run = runs.start(tiny_recipe(tiny_model_dir, data, batch_size=1, num_processes=2))
    data.unlink()  # gone before the processes (which take seconds to import torch) read it
    status = runs.wait(run, timeout=300)
    assert status["state"] == "failed" and "not found" in status["error"], status
    assert "Traceback" in (run / "train.log").read_text()
    assert runs.active_run() is None
