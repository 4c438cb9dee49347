"""Trainer configs: one translation function per library config (recipe -> LoraConfig,
recipe -> SFTConfig, recipe -> DPOConfig, recipe -> GRPOConfig), plus the keyword arguments behind each so a dry run
can print exactly what a run would pass.

Precision comes from core.precision.training_policy(): on a GPU the card's bf16/fp16; on a CPU
fp32 weights, under bf16 autocast only where that measured faster on this CPU (trl's `bf16=True`
default, taken blindly, makes a step about 30 times slower on a CPU without native bf16). This module knows nothing about
datasets, run folders or processes; it needs only the recipe, the output folder and the
number of optimizer steps in one epoch (for "save every N epochs").
"""

from __future__ import annotations

from core.models import DevicePolicy
from core.precision import training_policy
from core.recipes import Recipe
from core.train import trackers


def lora_kwargs(recipe: Recipe) -> dict:
    lora = recipe.lora
    targets = lora.target_modules
    # peft spells "every linear layer but the output head" as the string 'all-linear', not a list.
    target = "all-linear" if targets == ["all-linear"] else list(targets)
    return {"r": lora.r, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout, "target_modules": target,
            "bias": "none", "task_type": "CAUSAL_LM"}


def lora_config(recipe: Recipe):
    """The peft LoraConfig for a LoRA/QLoRA recipe; None for a full fine-tune."""
    if recipe.training.tuning == "full":
        return None
    from peft import LoraConfig

    return LoraConfig(**lora_kwargs(recipe))


def _schedule_kwargs(recipe: Recipe, steps_per_epoch: int, has_eval: bool) -> dict:
    """Evaluation, checkpoint and best-model settings, kept consistent with each other
    (transformers refuses load-best-at-end when save and eval steps don't line up)."""
    t = recipe.training
    kwargs: dict = {}
    if has_eval:
        if t.eval_steps:
            kwargs.update(eval_strategy="steps", eval_steps=t.eval_steps)
        else:
            kwargs.update(eval_strategy="epoch")
        kwargs.update(metric_for_best_model="eval_loss", greater_is_better=False)
    else:
        kwargs["eval_strategy"] = "no"
    if t.save_every_epochs:
        kwargs.update(save_strategy="steps", save_steps=max(1, t.save_every_epochs * steps_per_epoch))
    elif t.save_steps:
        kwargs.update(save_strategy="steps", save_steps=t.save_steps)
    else:
        kwargs["save_strategy"] = "epoch"
    if has_eval and t.load_best_at_end:
        kwargs["load_best_model_at_end"] = True
        if kwargs["eval_strategy"] == "steps":
            # Best-at-end needs a checkpoint at every evaluation.
            kwargs.update(save_strategy="steps", save_steps=t.eval_steps)
        else:
            kwargs["save_strategy"] = "epoch"
    return kwargs


def common_kwargs(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool,
                  policy: DevicePolicy | None = None) -> dict:
    """TrainingArguments fields shared by SFT and DPO."""
    policy = policy or training_policy()
    t = recipe.training
    kwargs = {
        "output_dir": output_dir,
        "num_train_epochs": t.epochs,
        "max_steps": t.max_steps,
        "per_device_train_batch_size": t.batch_size,
        "per_device_eval_batch_size": t.batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "learning_rate": t.learning_rate,
        "lr_scheduler_type": t.lr_scheduler,
        # transformers 5 folds the ratio into warmup_steps (a float below 1 is a ratio).
        "warmup_steps": t.warmup_steps if t.warmup_steps else t.warmup_ratio,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "logging_steps": t.logging_steps,
        "logging_first_step": True,
        "save_total_limit": t.save_total_limit,
        "seed": t.seed,
        "data_seed": recipe.data.seed,
        "activation_checkpointing": t.gradient_checkpointing,  # transformers 5's name for gradient checkpointing
        # Precision from the measured policy, never trl's bf16=True default (30x slower on CPUs without native bf16).
        "bf16": policy.use_bf16 or policy.autocast == "bfloat16",
        "fp16": policy.use_fp16,
        "use_cpu": policy.device == "cpu",
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "all",
        "dataloader_pin_memory": policy.device == "cuda",
        "save_only_model": False,
    }
    kwargs.update(_schedule_kwargs(recipe, steps_per_epoch, has_eval))
    kwargs.update(trackers.trainer_kwargs(recipe, output_dir))  # report_to (default none) and run_name
    if t.gradient_checkpointing:
        kwargs["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    # FSDP and DeepSpeed come from `accelerate launch` flags (core.train.runs.accelerate_command).
    if t.distributed == "ddp":
        kwargs["ddp_find_unused_parameters"] = False
    return kwargs


def sft_kwargs(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool,
               policy: DevicePolicy | None = None) -> dict:
    kwargs = common_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy)
    if recipe.data.packing:
        # Best-fit-decreasing packing is padding-free: every token slot is a real token.
        kwargs.update(packing=True, packing_strategy="bfd", max_length=recipe.data.max_length)
    else:
        # Our samples are already truncated to data.max_length by core.dataset.samples; padding-free
        # concatenates a batch into one row (position ids keep sequences apart), so no slot is padding.
        kwargs.update(packing=False, padding_free=True, max_length=None)
    # The dataset carries our own labels (-100 outside assistant spans); trl uses them as is.
    kwargs.update(assistant_only_loss=False, completion_only_loss=False, dataset_num_proc=None)
    return kwargs


def sft_config(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool, policy: DevicePolicy | None = None):
    from trl import SFTConfig

    return SFTConfig(**sft_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy))


def dpo_kwargs(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool,
               policy: DevicePolicy | None = None) -> dict:
    kwargs = common_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy)
    kwargs.update(beta=recipe.training.beta, loss_type=[recipe.training.dpo_loss], max_length=recipe.data.max_length)
    return kwargs


def dpo_config(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool, policy: DevicePolicy | None = None):
    from trl import DPOConfig

    return DPOConfig(**dpo_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy))


def grpo_kwargs(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool,
                policy: DevicePolicy | None = None) -> dict:
    """GRPOConfig fields: sampling, the loss, reward weights (in the order of the rewards), vLLM."""
    kwargs = common_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy)
    g = recipe.grpo
    kwargs.update(
        num_generations=g.num_generations, max_completion_length=g.max_completion_length, temperature=g.temperature,
        beta=g.kl_beta, epsilon=g.epsilon, loss_type=g.loss_type, scale_rewards=g.scale_rewards,
        reward_weights=[cfg.weight for _, cfg in g.active_rewards()],
        # Reference fields travel in their own column, which the rewards read.
        remove_unused_columns=False,
        # The studio writes the sample table itself (core.train.callbacks); trl's copy needs rich/pandas.
        log_completions=False,
        use_vllm=g.use_vllm,
        # trl counts prompt and completion tokens itself; the Trainer's own count finds no input_ids in
        # GRPO's batches and warns at every step in the training log.
        include_num_input_tokens_seen="no",
    )
    if g.use_vllm:
        kwargs["vllm_mode"] = g.vllm_mode
    return kwargs


def grpo_config(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool, policy: DevicePolicy | None = None):
    from trl import GRPOConfig

    return GRPOConfig(**grpo_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy))


def orpo_kwargs(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool,
                policy: DevicePolicy | None = None) -> dict:
    """ORPO: the SFT loss plus beta x an odds-ratio term; no reference model."""
    kwargs = common_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy)
    kwargs.update(beta=recipe.training.beta, max_length=recipe.data.max_length)
    return kwargs


def orpo_config(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool, policy: DevicePolicy | None = None):
    from trl.experimental.orpo import ORPOConfig  # trl 1.x keeps ORPO under experimental

    return ORPOConfig(**orpo_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy))


def simpo_kwargs(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool,
                 policy: DevicePolicy | None = None) -> dict:
    """SimPO through trl's CPO trainer: length-normalised rewards with a target margin, no
    reference model, no SFT term (cpo_alpha 0, as trl's docs set it for SimPO)."""
    kwargs = common_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy)
    kwargs.update(beta=recipe.training.beta, loss_type="simpo", cpo_alpha=0.0, simpo_gamma=recipe.training.simpo_gamma,
                  max_length=recipe.data.max_length)
    return kwargs


def simpo_config(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool, policy: DevicePolicy | None = None):
    from trl.experimental.cpo import CPOConfig

    return CPOConfig(**simpo_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy))


def kto_kwargs(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool,
               policy: DevicePolicy | None = None) -> dict:
    """KTO: good and bad replies weighed apart, against the reference (the frozen base under a
    LoRA adapter). trl reads the batch in order (its KL term pairs each prompt with its batch
    neighbour's reply), so the studio shuffles the rows once with the recipe's seed instead."""
    t = recipe.training
    kwargs = common_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy)
    kwargs.update(beta=t.beta, desirable_weight=t.desirable_weight, undesirable_weight=t.undesirable_weight,
                  max_length=recipe.data.max_length)
    return kwargs


def kto_config(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool, policy: DevicePolicy | None = None):
    from trl import KTOConfig

    return KTOConfig(**kto_kwargs(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy))


_KWARGS = {"sft": sft_kwargs, "dpo": dpo_kwargs, "orpo": orpo_kwargs, "simpo": simpo_kwargs, "kto": kto_kwargs,
           "grpo": grpo_kwargs}
_CONFIGS = {"sft": sft_config, "dpo": dpo_config, "orpo": orpo_config, "simpo": simpo_config, "kto": kto_config,
            "grpo": grpo_config}


def trainer_kwargs(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool,
                   policy: DevicePolicy | None = None) -> dict:
    """The config kwargs for the recipe's method (what a dry run prints)."""
    build = _KWARGS[recipe.training.method]
    return build(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy)


def trainer_config(recipe: Recipe, output_dir: str, *, steps_per_epoch: int, has_eval: bool, policy: DevicePolicy | None = None):
    build = _CONFIGS[recipe.training.method]
    return build(recipe, output_dir, steps_per_epoch=steps_per_epoch, has_eval=has_eval, policy=policy)
