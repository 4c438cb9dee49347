"""Recipes: every shipped YAML loads and validates; bad input names the field and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core import recipes
from core.recipes import RecipeError

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_each_shipped_recipe_loads_and_validates(path):
    recipe = recipes.load(path)
    assert recipe.name == path.stem
    assert recipe.description
    # The round trip through YAML gives the same recipe.
    assert recipes.from_dict(recipes.yaml.safe_load(recipe.to_yaml())) == recipe


def test_shipped_recipes_cover_the_five_workflows():
    assert {p.stem for p in CONFIGS} >= {"friction-qlora", "rag-grounding-lora", "epistemic-dpo", "cognitive-modes-full", "smoke-cpu"}


def test_friction_recipe_is_a_faithful_translation():
    r = recipes.load(recipes.CONFIGS / "friction-qlora.yaml")
    assert r.model.name == "unsloth/DeepSeek-R1-Distill-Qwen-7B-unsloth-bnb-4bit"
    assert r.training.tuning == "qlora"
    assert (r.lora.r, r.lora.alpha) == (32, 64)
    assert r.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert (r.data.max_length, r.data.stack, r.data.eval_split, r.data.seed) == (4096, 4, 0.1, 42)
    assert (r.training.learning_rate, r.training.epochs, r.training.batch_size, r.training.grad_accum) == (2e-4, 7, 2, 4)
    assert r.training.warmup_ratio == 0.1 and r.data.response_only and r.training.early_stopping_patience
    assert r.data.format_template == "<think>{thought_stream}</think>{final_answer}"


def test_rag_and_dpo_and_full_recipes_match_their_runs():
    rag = recipes.load(recipes.CONFIGS / "rag-grounding-lora.yaml")
    assert (rag.model.name, rag.lora.r, rag.lora.alpha, rag.lora.dropout) == ("Qwen/Qwen3-4B", 16, 32, 0.05)
    assert (rag.training.epochs, rag.training.batch_size, rag.training.grad_accum, rag.training.lr_scheduler) == (3, 2, 8, "cosine")
    assert (rag.training.warmup_ratio, rag.data.max_length, rag.data.eval_split, rag.training.load_best_at_end) == (0.05, 2048, 0.05, True)
    dpo = recipes.load(recipes.CONFIGS / "epistemic-dpo.yaml")
    expected = ("Qwen/Qwen2.5-0.5B-Instruct", "dpo", 0.1, 1e-5)
    assert (dpo.model.name, dpo.training.method, dpo.training.beta, dpo.training.learning_rate) == expected
    assert (dpo.training.epochs, dpo.training.warmup_steps, dpo.training.weight_decay, dpo.training.max_grad_norm) == (200, 10, 0.01, 1.0)
    assert dpo.training.save_every_epochs == 10 and dpo.training.batch_size == 1
    full = recipes.load(recipes.CONFIGS / "cognitive-modes-full.yaml")
    assert (full.training.tuning, full.training.learning_rate, full.training.epochs, full.data.max_length) == ("full", 5e-6, 3, 2048)


def test_every_field_has_help():
    missing = [name for name, _, doc in recipes.all_fields() if not doc]
    assert missing == []
    assert recipes.field_help("training.learning_rate") == "Peak learning rate."


def _write(tmp_path, text) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_typo_key_names_the_field_and_suggests(tmp_path):
    path = _write(tmp_path, """
        data: {path: x.jsonl}
        training: {learning_rte: 1e-4}
    """)
    with pytest.raises(RecipeError, match=r"unknown key 'training.learning_rte'; did you mean 'training.learning_rate'"):
        recipes.load(path)


def test_wrong_type_names_the_field(tmp_path):
    path = _write(tmp_path, "data: {path: x.jsonl}\ntraining: {epochs: three}\n")
    with pytest.raises(RecipeError, match=r"training.epochs: expected a number, got 'three'"):
        recipes.load(path)


def test_negative_learning_rate_is_refused(tmp_path):
    path = _write(tmp_path, "data: {path: x.jsonl}\ntraining: {learning_rate: -0.001}\n")
    with pytest.raises(RecipeError, match=r"training.learning_rate must be positive"):
        recipes.load(path)


def test_bad_choice_lists_the_choices(tmp_path):
    path = _write(tmp_path, "data: {path: x.jsonl}\ntraining: {tuning: lorra}\n")
    with pytest.raises(RecipeError, match=r"training.tuning: expected one of lora, qlora, full"):
        recipes.load(path)


def test_missing_dataset_file_fails_before_any_model_loads(tmp_path):
    recipe = recipes.load(_write(tmp_path, "data: {path: nowhere.jsonl}\n"))
    with pytest.raises(RecipeError, match=r"data.path: dataset 'nowhere.jsonl' not found"):
        recipes.check_dataset_exists(recipe)


def test_invalid_yaml_names_the_line(tmp_path):
    path = _write(tmp_path, "data:\n  path: [unclosed\n")
    with pytest.raises(RecipeError, match=r"line \d+ is not valid YAML"):
        recipes.load(path)


def test_overrides_build_the_same_object(tmp_path):
    path = _write(tmp_path, "data: {path: x.jsonl}\n")
    recipe = recipes.load(path, ["training.learning_rate=1e-4", "lora.target_modules=[q_proj, v_proj]", "training.load_best_at_end=false"])
    assert recipe.training.learning_rate == 1e-4
    assert recipe.lora.target_modules == ["q_proj", "v_proj"]
    with pytest.raises(RecipeError, match="unknown key 'training.nope'"):
        recipes.load(path, ["training.nope=1"])
    with pytest.raises(RecipeError, match="expected key=value"):
        recipes.load(path, ["training.learning_rate"])


def test_conflicting_fields_are_named(tmp_path):
    path = _write(tmp_path, "data: {path: x.jsonl}\ntraining: {load_best_at_end: true}\n")
    with pytest.raises(RecipeError, match="training.load_best_at_end needs an eval set"):
        recipes.load(path)


def test_dataset_path_is_relative_to_the_recipe(tmp_path):
    (tmp_path / "d.jsonl").write_text("{}\n")
    recipe = recipes.load(_write(tmp_path, "data: {path: d.jsonl}\n"))
    assert recipes.check_dataset_exists(recipe) == (tmp_path / "d.jsonl").resolve()


def test_grpo_recipes_match_their_runs():
    cpu = recipes.load(recipes.CONFIGS / "grpo-format-cpu.yaml")
    assert (cpu.model.name, cpu.training.method, cpu.training.tuning) == ("embedded", "grpo", "lora")
    assert [name for name, _ in cpu.grpo.active_rewards()] == ["format", "answer"]
    assert cpu.grpo.rewards.format.pattern == r"^\s*The answer is\b" and not cpu.grpo.use_vllm
    gpu = recipes.load(recipes.CONFIGS / "grpo-math-gpu.yaml")
    assert gpu.grpo.use_vllm and gpu.grpo.vllm_mode == "colocate"
    assert (gpu.grpo.rewards.answer.mode, gpu.grpo.rewards.answer.field) == ("numeric", "answer")
    assert (gpu.training.batch_size * gpu.training.grad_accum) % gpu.grpo.num_generations == 0


@pytest.mark.parametrize("text, message", [
    ("training: {method: grpo}", r"grpo is missing: a grpo recipe needs a grpo section"),
    ("training: {method: grpo, batch_size: 3}\ngrpo: {rewards: {format: {}}}",
     r"training.batch_size x training.grad_accum \(3 completions a step\) must be a multiple of grpo.num_generations \(4\)"),
    ("training: {method: grpo, batch_size: 4}\ngrpo: {rewards: {}}", r"grpo.rewards is empty"),
    ("training: {method: sft}\ngrpo: {rewards: {format: {}}}", r"grpo is set but training.method is not grpo"),
    ("training: {method: grpo, batch_size: 4}\ngrpo: {rewards: {lenght: {}}}",
     r"unknown key 'grpo.rewards.lenght'; did you mean 'grpo.rewards.length'"),
    ("training: {method: grpo, batch_size: 4}\ngrpo: {rewards: {answer: {mode: fuzzy}}}",
     r"grpo.rewards.answer.mode: expected one of exact, numeric, keyword, got 'fuzzy'"),
    ("training: {method: grpo, batch_size: 4}\ngrpo: {rewards: {length: {min: 9, max: 3}}}", r"grpo.rewards.length needs 0 <= min <= max"),
    ("training: {method: grpo, batch_size: 4}\ndata: {path: x, eval_split: 0.1}\ngrpo: {rewards: {format: {}}}",
     r"data.eval_split must be 0 for grpo"),
])
def test_grpo_mistakes_name_the_field(tmp_path, text, message):
    path = _write(tmp_path, text if "data:" in text else "data: {path: x.jsonl}\n" + text)
    with pytest.raises(RecipeError, match=message):
        recipes.load(path)


def test_grpo_help_and_yaml_round_trip():
    assert recipes.field_help("grpo.rewards.answer.tolerance").startswith("Largest difference")
    assert "grpo.rewards.custom.path" in {name for name, _, _ in recipes.all_fields()}
    sft = recipes.load(recipes.CONFIGS / "smoke-cpu.yaml")
    assert "grpo" not in sft.to_yaml()  # an absent section stays out of the YAML
