"""`studio queue`, `studio sweep` and `studio train --accelerate-config`, called in-process."""

from __future__ import annotations

import json

import pytest

from core import recipes
from core.train import runs
from studio.cli import commands as cli
from tests.helpers.data import tiny_recipe, write_chats


def _recipe_file(tmp_path, tiny_model_dir) -> str:
    path = tmp_path / "tiny.yaml"
    recipes.save(tiny_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl")), path)
    return str(path)


def test_dry_run_shows_the_users_accelerate_config(tmp_path, tiny_model_dir, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text("distributed_type: DEEPSPEED\nnum_processes: 4\ndeepspeed_config:\n  zero_stage: 3\n")
    assert cli.main(["train", _recipe_file(tmp_path, tiny_model_dir), "--accelerate-config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("Launch: accelerate launch --config_file <run-dir>/accelerate_config.yaml --log_dir <run-dir>/launcher "
            "-m core.train.worker") in out
    assert "zero_stage: 3" in out


def test_bad_accelerate_config_is_one_clear_error(tmp_path, tiny_model_dir, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("num_processes: 2\n")
    assert cli.main(["train", _recipe_file(tmp_path, tiny_model_dir), "--accelerate-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.yaml" in err and "distributed_type" in err and "Traceback" not in err
    assert runs.list_runs() == []


def test_sweep_queue_and_compare_from_the_command_line(tmp_path, tiny_model_dir, busy_slot, capsys):  # noqa: F811
    recipe = _recipe_file(tmp_path, tiny_model_dir)
    assert cli.main(["sweep", recipe, "--grid", "training.learning_rate=1e-3,1e-4", "--grid", "lora.r=4", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [r["params"] for r in record["runs"]] == [{"training.learning_rate": 1e-3, "lora.r": 4},
                                                      {"training.learning_rate": 1e-4, "lora.r": 4}]
    assert cli.main(["queue", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["queue"]
    assert [q["run_id"] for q in listed] == [r["run_id"] for r in record["runs"]]
    second = record["runs"][1]["run_id"]
    assert cli.main(["queue", "move", second, "top"]) == 0 and capsys.readouterr().out.startswith("  1. " + second)
    assert cli.main(["queue", "cancel", second]) == 0
    capsys.readouterr()
    assert cli.main(["sweep", "--compare", record["sweep_id"], "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert {row["state"] for row in rows} == {"queued", "cancelled"}
    assert cli.main(["queue", "cancel", "no-such-run"]) == 2
    assert "not waiting in the queue" in capsys.readouterr().err
    assert cli.main(["sweep", "--compare", "../../etc"]) == 2


@pytest.mark.parametrize("command", ["queue", "sweep"])
def test_scale_subcommands_have_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0 and f"usage: studio {command}" in capsys.readouterr().out
