"""Recommended ranges for a run's settings, for its model's size and its data's size."""

from __future__ import annotations

import json

from core import recipes
from core.train import advice


def _recipe(**training) -> recipes.Recipe:
    return recipes.from_dict({"name": "t", "model": {"name": "embedded"}, "data": {"path": "x.jsonl"},
                              "lora": {"r": training.pop("r", 16)}, "training": training})


def test_the_bundled_smoke_settings_sit_inside_the_ranges_for_a_small_model_and_little_data():
    items = {a.setting: a for a in advice.recommend(_recipe(learning_rate=1e-3, epochs=3, batch_size=4), examples=60)}
    assert all(a.inside for a in items.values()), [a.line() for a in items.values()]
    assert set(items) == {"training.learning_rate", "lora.r", "training.epochs", "training.batch_size"}


def test_settings_far_off_are_named_with_the_range_and_why():
    items = {a.setting: a for a in advice.recommend(_recipe(learning_rate=1e-2, epochs=1, batch_size=64, r=128),
                                                    examples=50, params=7_000_000_000)}
    assert not items["training.learning_rate"].inside and "usually 5e-5–3e-4 ⚠️ high" in items["training.learning_rate"].line()
    assert not items["lora.r"].inside and "memorizes" in items["lora.r"].why
    assert items["training.epochs"].line().startswith("Epochs: yours 1, usually 3–10 ⚠️ low")
    assert not items["training.batch_size"].inside  # 64 examples a step on 50 examples: one step an epoch


def test_preference_training_and_a_step_limit_change_the_advice():
    dpo = {a.setting: a for a in advice.recommend(_recipe(method="dpo", learning_rate=5e-6, max_steps=30), examples=25)}
    assert dpo["training.learning_rate"].inside and "training.epochs" not in dpo  # max_steps decides, not epochs


def test_the_model_size_comes_from_the_name_or_the_folder(tmp_path):
    assert advice.model_parameters("embedded") == advice.EMBEDDED_PARAMS
    assert advice.model_parameters("Qwen/Qwen2.5-7B-Instruct") == 7_000_000_000
    assert advice.model_parameters("HuggingFaceTB/SmolLM2-1.7B") == 1_700_000_000
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 576, "num_hidden_layers": 30, "intermediate_size": 1536,
                                                      "vocab_size": 49152}))
    assert 120e6 < advice.model_parameters(str(tmp_path)) < 160e6
    assert advice.model_parameters("some/model") is None


def test_the_train_tab_and_the_dry_run_show_the_advice(capsys):
    from core.workspace import CONFIGS
    from studio.cli import commands as cli
    from studio.ui.train import tab as train_tab
    from studio.ui.train.form import FIELDS

    yaml_text = train_tab.load_recipe(str(CONFIGS / "smoke-cpu.yaml"))[len(FIELDS)]
    line = train_tab.dataset_line(yaml_text, "the recipe's data.path")
    assert "**Settings for this model and data:** Learning rate ✓" in line
    off = train_tab.dataset_line(yaml_text.replace("learning_rate: 1.0e-3", "learning_rate: 0.05")
                                 .replace("learning_rate: 0.001", "learning_rate: 0.05"), "test")
    assert "Learning rate ⚠️" in off and "- Learning rate: yours 0.05, usually 1e-4–1e-3 ⚠️ high" in off
    assert cli.main(["train", str(CONFIGS / "smoke-cpu.yaml"), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {item["setting"] for item in plan["advice"]} >= {"training.learning_rate", "lora.r"}
