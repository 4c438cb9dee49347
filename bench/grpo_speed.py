"""GRPO speed, measured side by side in one process on the same recipe (default: the bundled
configs/grpo-format-cpu.yaml on the embedded model, LoRA on all linear layers):

  (a) the studio's GRPO (core.train.training.build_trainer: the recipe's GRPOConfig with the
      device policy's precision, fp32 on a CPU, and no activation checkpointing unless asked)
  (b) plain trl GRPO as its docs show it: GRPOConfig(output_dir=...) with trl's defaults
      (bf16=True, gradient checkpointing on), given only what the recipe cannot do without:
      num_generations, max_completion_length, batch size, learning rate, the same rewards, prompts
      and LoRA config, plus use_cpu=True where there is no CUDA (without it transformers refuses
      trl's bf16 default on a CPU: "Your setup doesn't support bf16/gpu")

For each it prints generation tokens per second (completion tokens over the time spent inside
`generate`) and seconds per optimizer step, then the ratios a/b. The first step of each arm is
a warm-up and not timed. The load average is printed beside the numbers: on a shared machine
only the ratios mean something.

    python bench/grpo_speed.py [--recipe configs/grpo-format-cpu.yaml] [--steps 3] [--set grpo.kl_beta=0] [--json out.json]

Measured 2026-11-26 on 2 shared cores of an AMD EPYC with native avx512_bf16 (load average 15-16,
OMP_NUM_THREADS=1, 3 timed steps, --set grpo.kl_beta=0): studio 21.0 s a step and 6.0 generated
tokens/s, plain trl 18.8 s and 7.1 tokens/s, so a/b = 0.89 (steps) and 0.86 (generation).
Measured 2026-11-27 on the same CPU, quiet (load 1), the recipe as it is (the studio's kl_beta 0.02
against trl's default 0), after the studio's precision moved to bf16 autocast by measurement: a/b =
0.98 (steps) and 1.0 (generation); then with core.decode_linear on the policy model (its
generations decode 4 rows at the memory's speed): 2.86 vs 3.52 s a step and 47.9 vs 31.4 generated
tokens/s, a/b = 1.23 (steps) and 1.52 (generation).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    def __init__(self):
        self.durations, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self._start)


class GenerationMeter:
    """Wraps a model's `generate` (trl calls it on the unwrapped policy) to time it and count the
    completion tokens up to each sequence's first end-of-sequence token."""

    def __init__(self, model, eos_ids: set[int], pad_id: int):
        self.calls: list[tuple[float, int]] = []
        self._inner, self._eos, self._pad = model.generate, eos_ids, pad_id
        model.generate = self

    def __call__(self, *args, **kwargs):
        prompt = kwargs.get("input_ids", args[0] if args else None)
        start = time.perf_counter()
        out = self._inner(*args, **kwargs)
        seconds = time.perf_counter() - start
        tokens = 0
        for row in out[:, prompt.shape[1]:].tolist():
            for token in row:
                if token in self._eos:
                    tokens += 1
                    break
                tokens += 1
        self.calls.append((seconds, tokens))
        return out


def summarize(name: str, timer: StepTimer, meter: GenerationMeter) -> dict:
    steps = timer.durations[1:]  # the first step is a warm-up
    calls = meter.calls[1:] if len(meter.calls) > 1 else meter.calls
    gen_s = sum(s for s, _ in calls)
    tokens = sum(t for _, t in calls)
    return {"name": name, "timed_steps": len(steps), "step_s": round(sum(steps) / max(1, len(steps)), 3),
            "generation_tokens": tokens, "generation_s": round(gen_s, 3),
            "generation_tokens_per_s": round(tokens / gen_s, 2) if gen_s else None}


def run_studio(recipe, steps: int) -> dict:
    from core.models import load_tokenizer
    from core.train import training, training_data

    recipe.training.max_steps = steps + 1
    recipe.training.save_steps = 10_000
    tokenizer = load_tokenizer(recipe.model.name)
    prepared = training_data.prepare(recipe, tokenizer)
    model = training.load_policy_model(recipe)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        trainer = training.build_trainer(recipe, Path(out), tokenizer=tokenizer, model=model, prepared=prepared,
                                         callbacks=[timer])
        meter = GenerationMeter(trainer.model, _eos(tokenizer), tokenizer.pad_token_id)
        trainer.train()
    return summarize("studio", timer, meter) | {"bf16": trainer.args.bf16,
                                                "activation_checkpointing": trainer.args.activation_checkpointing}


def run_plain_trl(recipe, steps: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from core.models import load_tokenizer, resolve
    from core.train import trainer_configs, training_data
    from core.train.grpo_data import trl_rewards
    from core.train.rewards import build_rewards

    tokenizer = load_tokenizer(recipe.model.name)
    prepared = training_data.prepare(recipe, tokenizer)
    funcs, weights = trl_rewards(build_rewards(recipe))
    g = recipe.grpo
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(output_dir=out, num_generations=g.num_generations, max_completion_length=g.max_completion_length,
                          per_device_train_batch_size=recipe.training.batch_size, learning_rate=recipe.training.learning_rate,
                          max_steps=steps + 1, reward_weights=weights, report_to="none", save_strategy="no",
                          # trl's default bf16=True makes transformers refuse a machine without CUDA unless
                          # use_cpu is set: the one setting added so its defaults run here at all.
                          use_cpu=not torch.cuda.is_available())
        model = AutoModelForCausalLM.from_pretrained(resolve(recipe.model.name).path)
        trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=Dataset.from_list(prepared.train),
                              processing_class=tokenizer, peft_config=trainer_configs.lora_config(recipe), callbacks=[timer])
        meter = GenerationMeter(trainer.model, _eos(tokenizer), tokenizer.pad_token_id)
        trainer.train()
    return summarize("plain trl defaults", timer, meter) | {"bf16": args.bf16,
                                                            "activation_checkpointing": args.activation_checkpointing}


def _eos(tokenizer) -> set[int]:
    ids = tokenizer.eos_token_id
    return set(ids) if isinstance(ids, list) else {ids}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="configs/grpo-format-cpu.yaml")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per arm (plus one warm-up)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for both arms, e.g. grpo.kl_beta=0 (trl's default: no reference model)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as one JSON object")
    args = parser.parse_args()
    from core import recipes

    load_before = os.getloadavg()
    studio = run_studio(recipes.load(args.recipe, args.set), args.steps)
    plain = run_plain_trl(recipes.load(args.recipe, args.set), args.steps)
    result = {"recipe": args.recipe, "overrides": args.set, "kl_beta_studio": recipes.load(args.recipe, args.set).grpo.kl_beta,
              "kl_beta_plain_trl": 0.0, "steps": args.steps, "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()], "studio": studio, "plain_trl": plain,
              "step_speedup": round(plain["step_s"] / studio["step_s"], 2) if studio["step_s"] else None,
              "generation_speedup": (round(studio["generation_tokens_per_s"] / plain["generation_tokens_per_s"], 2)
                                     if studio["generation_tokens_per_s"] and plain["generation_tokens_per_s"] else None)}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
