"""ORPO and SimPO (no reference model) and IPO (a DPO loss) on the tiny model, through trl 1.x's
trainers: a run completes, logs the method's own metrics, its reward margin rises on the pairs it
trains on, it resumes from a checkpoint, and the dry run (CLI too) names the trainer and its loss."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core import recipes
from core.train import run_dir as run_files
from core.train import training
from tests.helpers.data import make_recipe, write_chats, write_pairs
from tests.helpers.server import ROOT

OWN_METRICS = {"orpo": ("log_odds_ratio", "log_odds_chosen", "nll_loss", "rewards/margins", "rewards/accuracies"),
               "simpo": ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected")}


@pytest.mark.parametrize("method", ["orpo", "simpo"])
def test_a_run_raises_its_margin_and_resumes(tmp_path, tiny_model_dir, method):
    recipe = make_recipe(tiny_model_dir, write_pairs(tmp_path / "p.jsonl", 4), method=method, max_steps=8, save_steps=8,
                         learning_rate=5e-3, logging_steps=1, beta=0.1 if method == "orpo" else 2.0)
    run = tmp_path / "run"
    trainer, stopped = training.train(recipe, run, log=lambda _: None)
    assert not stopped and trainer.state.global_step == 8
    train = [r for r in run_files.read_metrics(run) if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 9))
    for key in OWN_METRICS[method]:
        assert all(key in r for r in train), key
    margins = [r["rewards/margins"] for r in train]
    assert sum(margins[-2:]) / 2 > sum(margins[:2]) / 2, margins  # chosen pulls away from rejected
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert run_files.latest_checkpoint(run).name == "checkpoint-8"

    recipe.training.max_steps = 9  # resume where it ended and go one step further
    trainer, _ = training.train(recipe, run, resume="last", log=lambda _: None)
    assert trainer.state.global_step == 9
    assert [r["step"] for r in run_files.read_metrics(run) if r["split"] == "train"][-1] == 9


def test_the_dry_run_names_the_trainer_and_its_loss(tmp_path, tiny_model_dir):
    pairs = write_pairs(tmp_path / "p.jsonl")
    orpo = training.plan(make_recipe(tiny_model_dir, pairs, method="orpo"))
    assert orpo["trainer"] == "ORPOTrainer" and orpo["trainer_config"]["beta"] == 0.1 and orpo["train_tokens"]["pairs"]
    simpo = training.plan(make_recipe(tiny_model_dir, pairs, method="simpo", simpo_gamma=1.0))
    assert simpo["trainer"].startswith("CPOTrainer") and simpo["trainer_config"]["loss_type"] == "simpo"
    assert simpo["trainer_config"]["cpo_alpha"] == 0.0 and simpo["trainer_config"]["simpo_gamma"] == 1.0
    recipe = tmp_path / "ipo.yaml"
    recipe.write_text(make_recipe(tiny_model_dir, pairs, method="dpo", dpo_loss="ipo").to_yaml())
    done = subprocess.run([sys.executable, "-m", "studio.cli", "train", str(recipe), "--dry-run", "--json"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["trainer_config"]["loss_type"] == ["ipo"]


def test_sft_data_is_refused_with_the_method_named(tmp_path, tiny_model_dir):
    with pytest.raises(recipes.RecipeError, match="training.method is orpo but .* holds no preference pairs"):
        training.plan(make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl"), method="orpo"))
