"""Training in this process: recipe -> trl configs, data preparation, and short real runs on
the tiny random Llama (mechanics) and the embedded SmolLM2 (real behaviour, marked slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from core import recipes
from core.models import QLoRANeedsCUDA
from core.train import cpu_memory, trainer_configs, training, training_data
from tests.helpers.data import make_recipe, write_chats, write_pairs

# ---------------------------------------------------------------- configs


def test_sft_config_is_fp32_on_cpu_and_padding_free(tmp_path):
    recipe = make_recipe("embedded", tmp_path / "x.jsonl")
    config = trainer_configs.sft_config(recipe, str(tmp_path), steps_per_epoch=5, has_eval=False)
    assert config.bf16 is False and config.fp16 is False  # trl's bf16 default is 30x slower on a CPU
    assert config.padding_free is True and config.max_length is None
    assert config.assistant_only_loss is False and config.report_to == []


def test_save_every_epochs_becomes_steps(tmp_path):
    recipe = make_recipe("embedded", tmp_path / "x.jsonl", save_every_epochs=10, save_steps=None, max_steps=-1,
                         epochs=200.0)
    kwargs = trainer_configs.sft_kwargs(recipe, str(tmp_path), steps_per_epoch=7, has_eval=False)
    assert kwargs["save_strategy"] == "steps" and kwargs["save_steps"] == 70


def test_load_best_aligns_saves_with_evals(tmp_path):
    recipe = recipes.from_dict({"data": {"path": "x.jsonl", "eval_split": 0.2},
                                "training": {"eval_steps": 5, "save_steps": 3, "load_best_at_end": True}})
    config = trainer_configs.sft_config(recipe, str(tmp_path), steps_per_epoch=10, has_eval=True)
    assert config.load_best_model_at_end and config.save_steps == config.eval_steps == 5


def test_lora_config_from_recipe():
    recipe = recipes.from_dict({"data": {"path": "x"}, "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]}})
    config = trainer_configs.lora_config(recipe)
    assert config.r == 8 and config.lora_alpha == 16 and set(config.target_modules) == {"q_proj", "v_proj"}
    full = recipes.from_dict({"data": {"path": "x"}, "training": {"tuning": "full"}})
    assert trainer_configs.lora_config(full) is None


def test_qlora_without_cuda_fails_before_loading(tmp_path):
    recipe = recipes.from_dict({"data": {"path": str(write_chats(tmp_path / "d.jsonl"))}, "training": {"tuning": "qlora"}})
    with pytest.raises(QLoRANeedsCUDA, match="Use LoRA instead"):
        training.preflight(recipe)


# ---------------------------------------------------------------- data


def test_split_is_seeded_and_disjoint():
    items = list(range(20))
    train_a, eval_a = training_data.split_examples(items, 0.2, seed=3)
    train_b, eval_b = training_data.split_examples(items, 0.2, seed=3)
    assert (train_a, eval_a) == (train_b, eval_b) and len(eval_a) == 4
    assert not set(train_a) & set(eval_a)


def test_prepared_sft_labels_are_the_samples_mask(tmp_path, embedded_tokenizer):
    from core.dataset.samples import IGNORE

    recipe = make_recipe("embedded", write_chats(tmp_path / "d.jsonl"))
    prepared = training_data.prepare(recipe, embedded_tokenizer)
    dataset = training_data.sft_dataset(prepared.train)
    row = dataset[0]
    trained = embedded_tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE])
    assert "plus" in trained and "You add numbers" not in trained and "What is" not in trained


def test_plan_reports_steps_and_configs(tmp_path, tiny_model_dir):
    recipe = make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl", 10), max_steps=-1, epochs=2.0)
    plan = training.plan(recipe)
    assert plan["examples"] == 10 and plan["steps_per_epoch"] == 5 and plan["total_steps"] == 10
    assert plan["trainer_config"]["bf16"] is False and plan["train_tokens"]["trained_tokens"] > 0


def test_plan_counts_with_embedded_tokenizer_when_model_is_offline(tmp_path):
    recipe = make_recipe("nobody/not-a-real-model-xyz", write_chats(tmp_path / "d.jsonl"))
    plan = training.plan(recipe)
    assert plan["tokenizer"] == "embedded" and any("embedded" in note for note in plan["notes"])


def test_padding_free_batch_loss_matches_padded_batch(tiny_model_dir, embedded_tokenizer, tmp_path):
    """Padding-free concatenation must not let sequences attend to each other."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    recipe = make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl", 4))
    rows = training_data.sft_dataset(training_data.prepare(recipe, embedded_tokenizer).train)
    batch = [rows[i] for i in range(3)]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    pad_id = embedded_tokenizer.pad_token_id
    with torch.no_grad():
        free = DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=True)(batch)
        padded = DataCollatorForLanguageModeling(pad_token_id=pad_id)(batch)
        padded["labels"][:, 0] = -100  # padding-free masks each sequence's first token too
        # use_cache=False as trl's compute_loss passes it: with a cache transformers skips packed-sequence masking.
        loss_free = model(input_ids=free["input_ids"], position_ids=free["position_ids"], labels=free["labels"],
                          use_cache=False).loss
        loss_pad = model(**padded).loss
    assert free["input_ids"].numel() == sum(len(r["input_ids"]) for r in batch)  # no padding slots at all
    assert torch.allclose(loss_free, loss_pad, atol=1e-4)


def test_padding_to_a_multiple_keeps_the_loss_under_packed_attention(tiny_model_dir, embedded_tokenizer, tmp_path):
    """A padding-free row padded to a multiple of PAD_TO tokens (trl's pad_to_multiple_of, what a
    person may set to bound a CPU's shapes): with the studio's packed attention (the pads kept as one
    span) the loss is the unpadded one."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from core.train import packed_attention

    recipe = make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl", 4))
    rows = training_data.sft_dataset(training_data.prepare(recipe, embedded_tokenizer).train)
    batch = [rows[i] for i in range(3)]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert packed_attention.use_for(model)
    pad_id = embedded_tokenizer.pad_token_id
    with torch.no_grad():
        plain = DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=True)(batch)
        padded = DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=True, pad_to_multiple_of=cpu_memory.PAD_TO)(batch)
        assert padded["input_ids"].shape[1] % cpu_memory.PAD_TO == 0 and padded["input_ids"].shape[1] > plain["input_ids"].shape[1]
        losses = [model(input_ids=b["input_ids"], position_ids=b["position_ids"], labels=b["labels"], use_cache=False).loss
                  for b in (plain, padded)]
    assert len(packed_attention.sequence_bounds(padded["position_ids"])) == 4  # three sequences and one span of pads
    assert torch.allclose(losses[0], losses[1], atol=1e-5)


def test_trained_positions_give_the_same_loss_and_gradients(tiny_model_dir, embedded_tokenizer, tmp_path):
    """Only trained positions go through the LM head on CPU; loss and gradients must not change."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    recipe = make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl", 4))
    rows = training_data.sft_dataset(training_data.prepare(recipe, embedded_tokenizer).train)
    batch = DataCollatorForLanguageModeling(pad_token_id=embedded_tokenizer.pad_token_id, padding_free=True)(
        [rows[i] for i in range(3)])
    kept = training.trained_positions(batch["labels"])
    assert 0 < kept["logits_to_keep"].numel() < batch["labels"].shape[1]  # prompts are skipped
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), trainer_configs.lora_config(recipe))
    results = []
    for extra in ({}, kept):
        model.zero_grad()
        torch.manual_seed(0)  # the same LoRA dropout masks in both passes
        loss = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"],
                     use_cache=False, num_items_in_batch=torch.tensor(40), **extra).loss
        loss.backward()
        results.append((loss.detach(), [(n, p.grad.clone()) for n, p in model.named_parameters() if p.grad is not None]))
    (full, full_grads), (trained, trained_grads) = results
    assert torch.allclose(full, trained, atol=1e-6)
    assert len(full_grads) == len(trained_grads) > 0
    worst = max(float((a - b).abs().max() / (a.abs().max() + 1e-12)) for (_, a), (_, b) in zip(full_grads, trained_grads))
    assert worst < 1e-4, f"gradients differ by {worst:.2e} of their size"
    assert training.trained_positions(None) == {}


# ---------------------------------------------------------------- real runs


def _lora_and_base(model):
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    return lora, base


def _train_checks_what_changed(recipe, run_dir):
    import torch

    from core.train.callbacks import RunCallback

    tokenizer = training.load_tokenizer(recipe.model.name)
    prepared = training_data.prepare(recipe, tokenizer)
    model = training.load_policy_model(recipe)
    callback = RunCallback(run_dir, recipe_yaml=recipe.to_yaml(), update_status=lambda **_: None)
    trainer = training.build_trainer(recipe, run_dir / "checkpoints", tokenizer=tokenizer, model=model,
                                     prepared=prepared, callbacks=[callback])
    lora_before, base_before = _lora_and_base(trainer.model)
    trainer.train()
    lora_after, base_after = _lora_and_base(trainer.model)
    assert lora_before, "no LoRA parameters were created"
    assert any(not torch.equal(lora_before[n], lora_after[n]) for n in lora_before), "LoRA weights did not move"
    assert all(torch.equal(base_before[n], base_after[n]) for n in base_before), "base weights changed"
    folder = training.save_final(trainer, recipe, run_dir, tokenizer, recipe.to_yaml())
    return folder


def _loads_with_plain_peft(base: Path | str, adapter: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    assert any("lora_" in n for n, _ in model.named_parameters())


def test_lora_run_moves_only_lora_weights_tiny(tmp_path, tiny_model_dir):
    recipe = make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl"))
    folder = _train_checks_what_changed(recipe, tmp_path / "run")
    assert {"adapter_config.json", "adapter_model.safetensors", "recipe.yaml", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    _loads_with_plain_peft(tiny_model_dir, folder)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all(k in train[0] for k in ("loss", "lr", "grad_norm", "epoch", "elapsed", "peak_mem_mb"))


@pytest.mark.slow
def test_lora_run_moves_only_lora_weights_embedded(tmp_path, embedded_dir):
    recipe = make_recipe("embedded", write_chats(tmp_path / "d.jsonl", 6), max_steps=2)
    folder = _train_checks_what_changed(recipe, tmp_path / "run")
    _loads_with_plain_peft(embedded_dir, folder)


def test_dpo_run_logs_rewards(tmp_path, tiny_model_dir):
    recipe = make_recipe(tiny_model_dir, write_pairs(tmp_path / "p.jsonl"), method="dpo", max_steps=2)
    trainer, stopped = training.train(recipe, tmp_path / "run", log=lambda _: None)
    assert not stopped and trainer.state.global_step == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert train and all("rewards/accuracies" in r and "rewards/margins" in r for r in train)
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("loss, first", [("sigmoid", math.log(2)), ("ipo", 25.0)])
def test_dpo_loss_reaches_trl(tmp_path, tiny_model_dir, loss, first):
    """training.dpo_loss picks trl's loss: at the first step the policy is the reference (LoRA starts
    at zero), so DPO's loss is -log sigmoid(0) = log 2 and IPO's (0 - 1/(2 beta))^2 = 25 at beta 0.1."""
    recipe = make_recipe(tiny_model_dir, write_pairs(tmp_path / "p.jsonl"), method="dpo", max_steps=1, dpo_loss=loss,
                         beta=0.1)
    assert trainer_configs.dpo_kwargs(recipe, str(tmp_path), steps_per_epoch=1, has_eval=False)["loss_type"] == [loss]
    training.train(recipe, tmp_path / "run", log=lambda _: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    [step] = [r for r in records if r["split"] == "train"]
    assert step["loss"] == pytest.approx(first, rel=1e-3)


def test_dpo_loss_is_for_dpo_only(tmp_path, tiny_model_dir):
    with pytest.raises(recipes.RecipeError, match="training.dpo_loss is for method: dpo"):
        make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl"), dpo_loss="ipo")


def test_dpo_refuses_chat_data(tmp_path, tiny_model_dir, embedded_tokenizer):
    recipe = make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl"), method="dpo")
    with pytest.raises(recipes.RecipeError, match="no preference pairs"):
        training_data.prepare(recipe, embedded_tokenizer)


def test_full_fine_tune_writes_model_folder(tmp_path, tiny_model_dir):
    recipe = make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl", 4), tuning="full", max_steps=1)
    training.train(recipe, tmp_path / "run", log=lambda _: None)
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "config.json").is_file() and (model_dir / "recipe.yaml").is_file()


def test_cpu_loss_equals_trls_fused_loss(tmp_path, tiny_model_dir):
    """On a CPU the studio uses the model's own loss instead of trl's chunked kernel: same number."""
    import torch
    from trl import SFTTrainer

    recipe = make_recipe(tiny_model_dir, write_chats(tmp_path / "d.jsonl", 6))
    tokenizer = training.load_tokenizer(recipe.model.name)
    prepared = training_data.prepare(recipe, tokenizer)
    trainer = training.build_trainer(recipe, tmp_path / "out", tokenizer=tokenizer, model=training.load_policy_model(recipe),
                                     prepared=prepared)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    items = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        ours = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=items)
        trls = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch), num_items_in_batch=items)
    assert torch.allclose(ours, trls, atol=1e-4)
