"""Training: one recipe through trl's SFTTrainer or DPOTrainer with peft, in this process.

`train()` is what the worker runs: tokenizer, data, model (LoRA, QLoRA on CUDA, or full),
trainer, then the final adapter/ (or model/) with the recipe and tokenizer beside it.
`plan()` is the dry run: it validates recipe and data and reports samples, tokens, steps
and the exact trainer configs without loading the model's weights. This module knows
nothing about processes or the UI; core.train.runs starts it, core.train.callbacks reports from inside.
"""

from __future__ import annotations

from pathlib import Path

from core import decode_linear
from core.chat_template import adopt, render
from core.hosting import enforce_demo_limits
from core.models import ModelNotFound, device_policy, load_model, load_tokenizer
from core.precision import lean_adapters, training_policy
from core.recipes import PAIRED, Recipe
from core.train import advice, fused_lora, fused_norm, head_loss, packed_attention, trackers, trainer_configs, training_data
from core.train.grpo_data import CompletionLog, trl_rewards
from core.train.preflight import bad_row_where, data_warnings, preflight
from core.train.rewards import build_rewards
from core.train.run_dir import RECIPE_FILE, checkpoint_dir, checkpoint_step, latest_checkpoint, trim_metrics
from core.workspace import write_atomic


def load_policy_model(recipe: Recipe, policy=None):
    """The model to train: 4-bit for QLoRA (prepared for k-bit training), else the policy's dtype;
    on a CPU with attention one sequence at a time over packed batches (core.train.packed_attention),
    RMSNorm as one autograd node (core.train.fused_norm) and linear layers that decode a few rows at
    the memory's speed (core.decode_linear)."""
    policy = policy or device_policy()
    quantize = recipe.training.tuning == "qlora"
    model = load_model(recipe.model.name, quantize_4bit=quantize, trust_remote_code=recipe.model.trust_remote_code,
                       policy=policy)
    if quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.training.gradient_checkpointing)
    elif policy.device == "cpu":  # proven on CPU; CUDA keeps transformers' SDPA (docs/gpu-check.md)
        packed_attention.use_for(model)
        fused_norm.use_for(model)  # RMSNorm's training pass as one node (frozen norm weights only)
        decode_linear.use_for(model)  # GRPO's generations; every pass with gradients keeps F.linear
    return model


def build_trainer(recipe: Recipe, output_dir: Path, *, tokenizer, model, prepared, callbacks=(), completion_log=None,
                  policy=None):
    """The trl trainer for the recipe's method, over already prepared data, in `policy`'s precision
    (core.precision.training_policy() when not given)."""
    steps = training_data.steps_per_epoch(recipe, prepared)
    config = trainer_configs.trainer_config(recipe, str(output_dir), steps_per_epoch=steps, has_eval=prepared.has_eval,
                                            policy=policy)
    peft_config = trainer_configs.lora_config(recipe)
    common = dict(model=model, args=config, processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))
    if recipe.training.early_stopping_patience and prepared.has_eval:
        from transformers import EarlyStoppingCallback

        common["callbacks"].append(EarlyStoppingCallback(early_stopping_patience=recipe.training.early_stopping_patience))
    trainer = _method_trainer(recipe, prepared, common, completion_log)
    policy = policy or training_policy()
    if policy.device == "cpu" and recipe.training.tuning == "lora":
        if policy.autocast and recipe.training.method != "grpo":  # GRPO decodes with these layers (core.decode_linear)
            lean_adapters(trainer.model)  # frozen weights in bf16: no cast at every call (core.precision)
        # one autograd node a LoRA layer, the input cast once: where this machine measured it not slower
        trainer.studio_fused_lora = fused_lora.choose(trainer.model, policy.autocast)
        if recipe.training.method == "sft":  # the LM head and its loss chunk by chunk, where measured faster
            trainer.studio_fused_head = head_loss.choose(trainer.model, policy.autocast)
    return trainer


def _method_trainer(recipe: Recipe, prepared, common: dict, completion_log):
    if recipe.training.method == "grpo":
        return _grpo_trainer(recipe, prepared, common, completion_log)
    if recipe.training.method in PAIRED:
        return _pairs_trainer(recipe, prepared, common)
    if recipe.training.method == "kto":
        from trl import KTOTrainer

        # ref_model=None: as DPO, the frozen base under the LoRA adapter is the reference.
        return KTOTrainer(ref_model=None, train_dataset=training_data.dpo_dataset(prepared.train),
                          eval_dataset=training_data.dpo_dataset(prepared.eval) if prepared.has_eval else None, **common)
    return _sft_trainer_class()(train_dataset=training_data.sft_dataset(prepared.train),
                                eval_dataset=training_data.sft_dataset(prepared.eval) if prepared.has_eval else None, **common)


def _pairs_trainer(recipe: Recipe, prepared, common: dict):
    """DPO (with a reference), ORPO or SimPO (without): the same conversational pairs."""
    data = dict(train_dataset=training_data.dpo_dataset(prepared.train),
                eval_dataset=training_data.dpo_dataset(prepared.eval) if prepared.has_eval else None)
    if recipe.training.method == "orpo":
        from trl.experimental.orpo import ORPOTrainer

        return ORPOTrainer(**data, **common)
    if recipe.training.method == "simpo":
        from trl.experimental.cpo import CPOTrainer

        return CPOTrainer(**data, **common)
    from trl import DPOTrainer

        # ref_model=None: with a LoRA policy trl uses the frozen base (adapter switched off) as
        # the reference; for a full fine-tune it copies the starting model.
    return DPOTrainer(ref_model=None, **data, **common)


def _grpo_trainer(recipe: Recipe, prepared, common: dict, completion_log):
    from datasets import Dataset
    from trl import GRPOTrainer

    # With a LoRA policy and kl_beta > 0, trl uses the base (adapter switched off) as the reference.
    rewards = completion_log.rewards if completion_log is not None else build_rewards(recipe)
    reward_funcs, _ = trl_rewards(rewards, completion_log)
    return GRPOTrainer(reward_funcs=reward_funcs, train_dataset=Dataset.from_list(prepared.train), **common)


def _sft_trainer_class():
    from transformers import Trainer
    from trl import SFTTrainer

    class StudioSFTTrainer(SFTTrainer):
        """trl's SFTTrainer, except that on a CPU the loss is the model's own cross-entropy: trl's
        chunked log-prob kernel (built to spare GPU memory) made a step about 6x slower on a CPU
        (profiled on the tiny model: 33 of 46 s in its tiles). The labels are the same, and only
        positions whose next token is trained go through the LM head (`trained_positions`)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not self.args.use_cpu:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            chunked = getattr(self, "studio_fused_head", None) or {}
            if chunked.get("fused") and not return_outputs and inputs.get("labels") is not None and head_loss.applies(model):
                # The head and its cross-entropy chunk by chunk (core.train.head_loss), scaled as Trainer scales the model's loss.
                with self.accelerator.autocast():  # the model's forward runs under it; this skips that forward
                    loss = head_loss.causal_lm_loss(model, inputs, num_items_in_batch if self.model_accepts_loss_kwargs else None)
                if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs and num_items_in_batch is not None:
                    loss = loss * self.accelerator.num_processes
                return loss
            inputs["use_cache"] = False  # with a cache, transformers skips the padding-free sequence mask
            inputs.update(trained_positions(inputs.get("labels")))
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    return StudioSFTTrainer


def trained_positions(labels) -> dict:
    """Model kwargs that send only the positions whose next token is trained through the LM head,
    with those targets already shifted: the same loss as the model's own, but the vocabulary-wide
    matmul (a fifth of SmolLM2's compute) skips prompt tokens. Nothing when there is nothing to skip."""
    import torch.nn.functional as F

    if labels is None:
        return {}
    targets = F.pad(labels, (0, 1), value=-100)[:, 1:]
    positions = (targets != -100).any(dim=0).nonzero().squeeze(-1)
    if positions.numel() == 0 or positions.numel() == targets.shape[1]:
        return {}
    return {"logits_to_keep": positions, "shift_labels": targets[:, positions].contiguous()}


def final_folder(recipe: Recipe, run_dir: Path) -> Path:
    return Path(run_dir) / ("model" if recipe.training.tuning == "full" else "adapter")


def train(recipe: Recipe, run_dir: Path, *, resume: str | None = None, update_status=None, log=print):
    """Run the recipe into run_dir (checkpoints/, adapter/ or model/, best/, metrics.jsonl).
    Returns (trainer, stopped): stopped is True when a stop request ended it early."""
    from core.train.callbacks import RunCallback, TrimHeap

    run_dir = Path(run_dir)
    update_status = update_status or (lambda **fields: None)
    preflight(recipe)
    trackers.apply(recipe, run_dir)  # tracker files in the run folder, offline
    policy = training_policy()
    log(f"device {policy.device} ({policy.describe()}); model {recipe.model.name}; {recipe.training.method} "
        f"with {recipe.training.tuning}")
    if policy.why:
        log(f"precision: {policy.why}")
    update_status(precision={"weights": policy.dtype_name, "autocast": policy.autocast, "why": policy.why})
    # The recipe's own template becomes the tokenizer's, so adapter/, best/ and every checkpoint save it
    # and chat, evaluation and export render prompts as the weights were trained.
    tokenizer = adopt(load_tokenizer(recipe.model.name, trust_remote_code=recipe.model.trust_remote_code),
                      recipe.model.chat_template)
    prepared = training_data.prepare(recipe, tokenizer)
    log(f"data: {prepared.examples} examples ({prepared.format}), {len(prepared.train)} train / "
        f"{len(prepared.eval)} eval rows, {len(prepared.bad_rows)} bad rows, {len(prepared.skipped)} skipped")
    if prepared.labels:
        labels = prepared.labels
        log(f"labels: {labels['good']} good and {labels['bad']} bad replies" + (f"; {labels['advice']}" if labels["advice"] else ""))
    update_status(total_steps=training_data.total_steps(recipe, prepared))
    model = load_policy_model(recipe, policy)
    if model.config._attn_implementation == packed_attention.NAME:
        log("attention: one causal SDPA call per sequence of a packed batch (no block-diagonal mask)")
    recipe_yaml = recipe.to_yaml()
    completion_log = _completion_log(recipe)
    callback = RunCallback(run_dir, recipe_yaml=recipe_yaml, update_status=update_status, tokenizer=tokenizer,
                           save_best=prepared.has_eval, completion_log=completion_log)
    callbacks = [callback, TrimHeap()] if policy.device == "cpu" else [callback]  # core.train.cpu_memory
    trainer = build_trainer(recipe, checkpoint_dir(run_dir), tokenizer=tokenizer, model=model, prepared=prepared,
                            callbacks=callbacks, completion_log=completion_log, policy=policy)
    if getattr(trainer, "studio_fused_lora", None):
        log(f"lora layers: {trainer.studio_fused_lora['why']}")
    if getattr(trainer, "studio_fused_head", None):
        log(f"loss: {trainer.studio_fused_head['why']}")
    checkpoint = _checkpoint_to_resume(run_dir, resume)
    if checkpoint:
        log(f"resuming from {checkpoint}")
        step = checkpoint_step(checkpoint)
        if step is not None and trainer.is_world_process_zero():
            # A killed session logged steps past this checkpoint; they are about to be logged again.
            dropped = trim_metrics(run_dir, step)
            if dropped:
                log(f"metrics: dropped {dropped} records past step {step} (logged before the run stopped)")
    trainer.train(resume_from_checkpoint=checkpoint)
    if not callback.stop_requested:
        save_final(trainer, recipe, run_dir, tokenizer, recipe_yaml)
    return trainer, callback.stop_requested


def _completion_log(recipe: Recipe):
    """GRPO: the sample table's collector, shared by the rewards (writers) and the callback (reader)."""
    if recipe.training.method != "grpo":
        return None

    return CompletionLog(build_rewards(recipe))


def save_final(trainer, recipe: Recipe, run_dir: Path, tokenizer, recipe_yaml: str) -> Path:
    folder = final_folder(recipe, run_dir)
    trainer.save_model(str(folder))  # every rank: FSDP and DeepSpeed gather the weights collectively
    if trainer.is_world_process_zero():  # under accelerate launch, one writer
        tokenizer.save_pretrained(folder)
        write_atomic(folder / RECIPE_FILE, recipe_yaml)
    return folder


def _checkpoint_to_resume(run_dir: Path, resume: str | None) -> str | None:
    if not resume:
        return None
    if resume == "last":
        found = latest_checkpoint(run_dir)
        if found is None:
            raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from (checkpoints/ is empty)")
        return str(found)
    path = Path(resume)
    if not path.is_absolute():
        path = checkpoint_dir(run_dir, resume)
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint (no trainer_state.json); pick one under {checkpoint_dir(run_dir)}")
    return str(path)


def _prompt_tokens(tokenizer, prompt, template: str | None) -> int:
    """A GRPO prompt's length in tokens, rendered as generation will see it."""
    if not isinstance(prompt, list):
        return len(tokenizer(str(prompt))["input_ids"])
    ids = render(tokenizer, prompt, template=template, tokenize=True, add_generation_prompt=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def plan(recipe: Recipe) -> dict:
    """The dry run: everything a run would do up to loading weights, as one JSON-able dict."""
    recipe = enforce_demo_limits(recipe)  # the same limits a start applies, before any path is looked at
    notes = preflight(recipe, dry_run=True)  # the same checks as a real start, so both accept the same recipes
    policy = training_policy()
    try:
        tokenizer = load_tokenizer(recipe.model.name, trust_remote_code=recipe.model.trust_remote_code)
        counted_with = recipe.model.name
    except ModelNotFound as error:
        tokenizer = load_tokenizer("embedded")
        counted_with = "embedded"
        notes.append(f"Token counts use the embedded model's tokenizer: '{recipe.model.name}' can't be resolved "
                     f"offline ({str(error)[:160]}). Real counts will differ somewhat.")
    prepared = training_data.prepare(recipe, tokenizer)
    first_bad = bad_row_where(prepared.bad_rows[0]) if prepared.bad_rows else None
    warnings = data_warnings(recipe.dataset_path().name, prepared.examples, len(prepared.bad_rows), first_bad)
    per_epoch = training_data.steps_per_epoch(recipe, prepared)
    output_dir = "<run-dir>/checkpoints"
    config = trainer_configs.trainer_kwargs(recipe, output_dir, steps_per_epoch=per_epoch, has_eval=prepared.has_eval,
                                            policy=policy)
    if prepared.method == "sft":
        stats = training_data.token_stats(prepared.train)
    elif prepared.method == "grpo":
        prompt_lengths = sorted(_prompt_tokens(tokenizer, row["prompt"], recipe.model.chat_template) for row in prepared.train)
        stats = {"prompts": len(prepared.train), "completions_per_prompt": recipe.grpo.num_generations,
                 "max_completion_tokens": recipe.grpo.max_completion_length,
                 "mean_prompt_tokens": round(sum(prompt_lengths) / max(len(prompt_lengths), 1), 1),
                 "max_prompt_tokens": prompt_lengths[-1] if prompt_lengths else 0,
                 "rewards": ", ".join(f"{n} x{c.weight:g}" for n, c in recipe.grpo.active_rewards())}
        notes += [f"Skipped {where}: {why}" for where, why in prepared.skipped[:20]]
    elif prepared.method == "kto":
        stats = training_data.kto_stats(tokenizer, prepared.train, recipe.data.max_length, recipe.model.chat_template)
        notes += [f"Skipped {where}: {why}" for where, why in prepared.skipped[:20]]
        if prepared.labels["advice"]:
            warnings.append(prepared.labels["advice"])
    else:
        stats = training_data.pair_stats(tokenizer, prepared.train, recipe.data.max_length, recipe.model.chat_template)
    if policy.device == "cpu" and recipe.model.name != "embedded":
        notes.append("Precision shown is this machine's (CPU: fp32); on a CUDA GPU the run uses bf16 (fp16 where bf16 "
                     "is unsupported).")
    result = {
        "recipe": recipe.name, "method": recipe.training.method, "tuning": recipe.training.tuning,
        "model": recipe.model.name, "tokenizer": counted_with, "device": f"{policy.device} ({policy.describe()})", "precision": policy.why,
        "dataset": str(recipe.dataset_path()), "format": prepared.format, "examples": prepared.examples,
        "bad_rows": len(prepared.bad_rows), "skipped": len(prepared.skipped),
        "train_rows": len(prepared.train), "eval_rows": len(prepared.eval), "train_tokens": stats,
        **({"labels": prepared.labels} if prepared.labels else {}),
        "steps_per_epoch": per_epoch, "total_steps": training_data.total_steps(recipe, prepared),
        "trainer": {"dpo": "DPOTrainer", "orpo": "ORPOTrainer", "simpo": "CPOTrainer (SimPO loss)", "kto": "KTOTrainer",
                    "grpo": "GRPOTrainer"}.get(recipe.training.method, "SFTTrainer"),
        "trainer_config": config, "lora_config": trainer_configs.lora_kwargs(recipe) if recipe.training.tuning != "full" else None,
        "notes": notes, "warnings": warnings,
        "advice": [item.to_json() | {"line": item.line()} for item in advice.recommend(recipe, prepared.examples)],
    }
    # Building the real config objects validates them the way a run would (bad combinations raise here).
    trainer_configs.trainer_config(recipe, "/tmp/studio-dry-run", steps_per_epoch=per_epoch, has_eval=prepared.has_eval,
                                   policy=policy)
    return result
