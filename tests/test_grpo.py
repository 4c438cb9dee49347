"""GRPO through trl's GRPOTrainer: recipe -> GRPOConfig, prompt data and its checks, the run
contract (metrics, sample completions, adapter, resume) on the tiny random Llama, the reward
preview, and (slow) the embedded model learning a format within a few steps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core import recipes
from core.train import run_dir as run_files
from core.train import trainer_configs, training, training_data

ROOT = Path(__file__).resolve().parent.parent


def write_prompts(path: Path, n: int = 8, *, missing_answer_every: int = 0) -> Path:
    with open(path, "w") as handle:
        for i in range(n):
            row = {"messages": [{"role": "system", "content": "Reply as 'Answer: N'."},
                                {"role": "user", "content": f"What is {i} plus {i}?"}], "answer": str(2 * i)}
            if missing_answer_every and i % missing_answer_every == 0:
                del row["answer"]
            handle.write(json.dumps(row) + "\n")
    return path


def grpo_recipe(model, data: Path, *, grpo: dict | None = None, **training_fields) -> recipes.Recipe:
    fields = {"method": "grpo", "max_steps": 2, "batch_size": 4, "learning_rate": 1e-3, "save_steps": 1}
    fields.update(training_fields)
    settings = {"num_generations": 4, "max_completion_length": 6, "kl_beta": 0.05,
                "rewards": {"format": {"pattern": "^Answer: "}, "answer": {"mode": "numeric", "weight": 0.5},
                            "length": {"min": 1, "max": 40}}}
    settings.update(grpo or {})
    return recipes.from_dict({"name": "grpo-test", "model": {"name": str(model)}, "data": {"path": str(data)},
                              "training": fields, "grpo": settings})


def test_grpo_config_from_recipe(tmp_path):
    recipe = grpo_recipe("embedded", write_prompts(tmp_path / "p.jsonl"), grad_accum=2)
    config = trainer_configs.grpo_config(recipe, str(tmp_path / "out"), steps_per_epoch=4, has_eval=False)
    assert (config.num_generations, config.max_completion_length, config.beta) == (4, 6, 0.05)
    assert config.reward_weights == [1.0, 0.5, 1.0]  # the order of the recipe's rewards
    assert config.generation_batch_size == 8 and not config.bf16 and not config.activation_checkpointing  # CPU: fp32
    assert config.remove_unused_columns is False and config.use_vllm is False


def test_grpo_prompts_skip_rows_without_the_answer_field(tmp_path, embedded_tokenizer):
    recipe = grpo_recipe("embedded", write_prompts(tmp_path / "p.jsonl", 6, missing_answer_every=3))
    prepared = training_data.prepare(recipe, embedded_tokenizer)
    assert len(prepared.train) == 4
    assert [reason for _, reason in prepared.skipped] == ["no 'answer' (grpo.rewards.answer) field"] * 2
    assert prepared.skipped[0][0].endswith("(line 1)")
    assert training_data.steps_per_epoch(recipe, prepared) == 4  # 4 prompts x 4 completions, 4 completions a step


def test_grpo_with_no_usable_prompt_names_the_first_problem(tmp_path, embedded_tokenizer):
    recipe = grpo_recipe("embedded", write_prompts(tmp_path / "p.jsonl", 2, missing_answer_every=1))
    with pytest.raises(recipes.RecipeError, match=r"no usable GRPO prompts .* first: .*line 1.*'answer'"):
        training_data.prepare(recipe, embedded_tokenizer)


def test_grpo_run_writes_reward_metrics_sample_table_adapter_and_resumes(tmp_path, tiny_model_dir):
    recipe = grpo_recipe(tiny_model_dir, write_prompts(tmp_path / "p.jsonl"))
    run = tmp_path / "run"
    trainer, stopped = training.train(recipe, run, log=lambda _: None)
    assert not stopped and trainer.state.global_step == 2
    train = [r for r in run_files.read_metrics(run) if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    for key in ("reward", "reward_std", "rewards/format/mean", "rewards/format/std", "rewards/answer/mean",
                "rewards/length/mean", "kl", "completions/mean_length", "clip_ratio/region_mean", "loss", "lr"):
        assert all(key in r for r in train), key
    table = run_files.read_completions(run)
    assert {row["step"] for row in table} == {1, 2} and len(table) == 8  # 4 completions per step
    row = table[0]
    assert re.fullmatch(r"What is \d plus \d\?", row["prompt"]) and set(row["rewards"]) == {"format", "answer", "length"}
    present = {k: v for k, v in row["rewards"].items() if v is not None}
    assert row["total"] == pytest.approx(sum({"format": 1, "answer": 0.5, "length": 1}[k] * v for k, v in present.items()))
    assert (run / "adapter" / "adapter_model.safetensors").is_file() and (run / "adapter" / "recipe.yaml").is_file()
    assert run_files.latest_checkpoint(run).name == "checkpoint-2"

    recipe.training.max_steps = 3  # resume where it stopped and go one step further
    trainer, _ = training.train(recipe, run, resume="last", log=lambda _: None)
    assert trainer.state.global_step == 3
    assert [r["step"] for r in run_files.read_metrics(run) if r["split"] == "train"][-1] == 3


def test_reward_preview_scores_every_sample(tmp_path, tiny_model_dir):
    from core.train import reward_preview

    recipe = grpo_recipe(tiny_model_dir, write_prompts(tmp_path / "p.jsonl", 3))
    result = reward_preview.preview(recipe, prompts=2, samples=3)
    assert len(result["rows"]) == 6 and {r["prompt_index"] for r in result["rows"]} == {0, 1}
    assert result["weights"] == {"format": 1.0, "answer": 0.5, "length": 1.0}
    for row in result["rows"]:
        # The tiny random model writes noise: no format, no right answer; length is scored.
        assert row["rewards"]["format"] == 0.0 and row["rewards"]["answer"] in (0.0, None)
        assert row["total"] == pytest.approx(row["rewards"]["length"] + 0.5 * (row["rewards"]["answer"] or 0))
    assert result["summary"]["format"] == {"mean": 0.0, "std": 0.0, "scored": 6}
    assert result["summary"]["total"]["groups"] == 2


def test_cli_rewards_preview(tmp_path, tiny_model_dir, capsys):
    from studio.cli import commands as cli

    recipe = grpo_recipe(tiny_model_dir, write_prompts(tmp_path / "p.jsonl", 2))
    path = tmp_path / "grpo.yaml"
    recipes.save(recipe, path)
    assert cli.main(["rewards", "preview", str(path), "--prompts", "1", "--samples", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["rows"]) == 2 and set(data["summary"]) == {"format", "answer", "length", "total"}
    assert cli.main(["rewards", "preview", str(path), "--prompts", "1", "--samples", "2"]) == 0
    text = capsys.readouterr().out
    assert "Reward preview of grpo-test" in text and "format 0.00" in text and "total" in text
    sft = tmp_path / "sft.yaml"
    sft.write_text(f"data: {{path: {tmp_path / 'p.jsonl'}}}\n")
    assert cli.main(["rewards", "preview", str(sft)]) == 2
    assert "the reward preview is for grpo recipes" in capsys.readouterr().err


@pytest.mark.slow
def test_embedded_model_learns_the_format_between_first_and_last_logging_step(tmp_path, embedded_dir):
    """The bundled CPU recipe, shortened: the share of 'Answer:' replies goes up."""
    recipe = recipes.load(ROOT / "configs" / "grpo-format-cpu.yaml",
                          ["training.max_steps=12", "training.logging_steps=4", "training.save_steps=100"])
    run = tmp_path / "run"
    training.train(recipe, run, log=lambda _: None)
    curve = [r["rewards/format/mean"] for r in run_files.read_metrics(run) if r["split"] == "train"]
    assert len(curve) >= 3, curve
    assert curve[-1] > curve[0], f"format reward did not rise: {curve}"


def test_prompt_rows_with_reference_fields_load_as_grpo_prompts(tmp_path, embedded_tokenizer):
    data = tmp_path / "gsm.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"What is {i} times 3?", "answer": str(3 * i)}) for i in range(4)) + "\n")
    recipe = grpo_recipe("embedded", data)
    prepared = training_data.prepare(recipe, embedded_tokenizer)
    assert prepared.format == "prompt_completion" and len(prepared.train) == 4 and not prepared.skipped
    assert all(row["prompt"][-1]["role"] == "user" for row in prepared.train)
    assert {json.loads(row["reference"])["answer"] for row in prepared.train} == {"0", "3", "6", "9"}
