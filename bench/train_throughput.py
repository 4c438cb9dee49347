"""Training throughput, measured side by side in one process on the embedded model with LoRA
r=16 on all linear layers over the bundled friction sample:

  (a) the studio's trainer (core.train.training: pre-tokenized labels, padding-free batches, fp32 on CPU,
      only trained positions through the LM head)
  (b) plain trl SFTTrainer as trl's docs show it: SFTConfig(output_dir=...) with its defaults
      (bf16=True, batch 8, padded batches), the same conversations as `messages` rows
  (c) a bare forward + backward + AdamW loop over the studio's own batches (the practical limit)

It prints trained tokens per second for each, the ratios a/b and a/c, and the share of token
slots that are real tokens (not padding). The first step of each is a warm-up and not timed.
Targets on a 2-core CPU: a/b >= 20, a/c >= 0.8, real-token share >= 0.95.

    python bench/train_throughput.py [--steps 6] [--baseline-steps 2] [--json out.json]
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

from transformers import TrainerCallback  # noqa: E402


class CountingCollator:
    """Wraps a collator to count token slots, real tokens and trained tokens per batch."""

    def __init__(self, inner, pad_id: int):
        self.inner, self.pad_id, self.batches = inner, pad_id, []

    def __call__(self, features):
        batch = self.inner(features)
        ids, labels = batch["input_ids"], batch["labels"]
        real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else int(ids.numel())
        self.batches.append({"slots": int(ids.numel()), "real": real, "trained": int((labels[:, 1:] != -100).sum())})
        return batch


class StepTimer(TrainerCallback):
    def __init__(self):
        self.durations, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self._start)


def summarize(name: str, durations: list[float], batches: list[dict], grad_accum: int = 1) -> dict:
    """Tokens per second over the timed steps (all but the first)."""
    timed = durations[1:]
    per_step = [batches[i * grad_accum:(i + 1) * grad_accum] for i in range(len(durations))][1:]
    trained = sum(b["trained"] for step in per_step for b in step)
    slots = sum(b["slots"] for step in per_step for b in step)
    real = sum(b["real"] for step in per_step for b in step)
    seconds = sum(timed)
    return {"name": name, "steps_timed": len(timed), "seconds": round(seconds, 2),
            "trained_tokens_per_s": round(trained / seconds, 1) if seconds else None,
            "real_token_share": round(real / slots, 3) if slots else None, "s_per_step": round(seconds / max(1, len(timed)), 2)}


def studio_run(recipe, steps: int, out: str) -> tuple[dict, list]:
    from core.train import training
    from core.train import training_data

    recipe.training.max_steps, recipe.data.eval_split, recipe.training.save_steps = steps, 0.0, 10**6
    tokenizer = training.load_tokenizer(recipe.model.name)
    prepared = training_data.prepare(recipe, tokenizer)
    model = training.load_policy_model(recipe)
    timer = StepTimer()
    trainer = training.build_trainer(recipe, Path(out), tokenizer=tokenizer, model=model, prepared=prepared, callbacks=[timer])
    counter = CountingCollator(trainer.data_collator, tokenizer.pad_token_id)
    trainer.data_collator = counter
    trainer.train()
    return summarize("(a) studio train", timer.durations, counter.batches), prepared.train


def trl_defaults_run(recipe, steps: int, out: str) -> dict:
    """What a user copies from trl's SFT quick start, with LoRA as in the peft section."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from core import models

    from core.train import training_data

    examples, _ = training_data.load_examples(recipe)
    dataset = Dataset.from_list([{"messages": e.messages} for e in examples])
    path = models.resolve(recipe.model.name).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    timer = StepTimer()
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(path), train_dataset=dataset, processing_class=tokenizer,
                         # use_cpu=True is what transformers' own error asks for on a CPU; bf16 stays at trl's default.
                         args=SFTConfig(output_dir=out, max_steps=steps, report_to="none", save_strategy="no", use_cpu=True),
                         peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
                         callbacks=[timer])
    counter = CountingCollator(trainer.data_collator, tokenizer.pad_token_id)
    trainer.data_collator = counter
    trainer.train()
    summary = summarize(f"(b) trl defaults (bf16={trainer.args.bf16}, batch {trainer.args.per_device_train_batch_size})",
                        timer.durations, counter.batches, trainer.args.gradient_accumulation_steps)
    return summary


def bare_loop(recipe, samples, steps: int) -> dict:
    """Forward + backward + AdamW over the same padding-free batches, no trainer at all: the same
    computation as (a) (trained positions only through the LM head), so a/c is the trainer's cost."""
    import torch
    from peft import get_peft_model
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from core.train import trainer_configs

    from core.train import training

    from core.train import training_data

    tokenizer = training.load_tokenizer(recipe.model.name)
    model = get_peft_model(training.load_policy_model(recipe), trainer_configs.lora_config(recipe))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.training.learning_rate)
    collate = CountingCollator(DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True),
                               tokenizer.pad_token_id)
    rows = training_data.sft_dataset(samples)
    size, durations = recipe.training.batch_size, []
    for step in range(steps):
        batch = collate([rows[(step * size + i) % len(rows)] for i in range(size)])
        start = time.perf_counter()
        loss = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"], use_cache=False,
                     **training.trained_positions(batch["labels"])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        durations.append(time.perf_counter() - start)
    return summarize("(c) bare forward+backward loop", durations, collate.batches)


def cpu_bf16_support() -> str:
    """Whether this CPU computes bf16 natively: where it does, trl's bf16 default costs far less."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    return ", ".join(native) if native else "none (bf16 is emulated: expect the 30x slow-down)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="configs/smoke-cpu.yaml")
    parser.add_argument("--steps", type=int, default=6, help="steps for (a) and (c), the first is a warm-up")
    parser.add_argument("--baseline-steps", type=int, default=2, help="steps for (b); each is slow on a CPU")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from core import recipes

    def fresh():
        recipe = recipes.load(args.recipe, ["lora.r=16", "lora.alpha=32", "lora.target_modules=[all-linear]"])
        return recipe

    with tempfile.TemporaryDirectory() as out:
        a, samples = studio_run(fresh(), args.steps, out + "/a")
        c = bare_loop(fresh(), samples, args.steps)
        b = trl_defaults_run(fresh(), args.baseline_steps, out + "/b")
    results = {"a": a, "b": b, "c": c,
               "a_over_b": round(a["trained_tokens_per_s"] / b["trained_tokens_per_s"], 2),
               "a_over_c": round(a["trained_tokens_per_s"] / c["trained_tokens_per_s"], 3),
               "real_token_share_a": a["real_token_share"]}
    for row in (a, b, c):
        print(f"{row['name']:55} {row['trained_tokens_per_s']:>9} trained tok/s  {row['s_per_step']:>7} s/step  "
              f"real-token share {row['real_token_share']}")
    results["cpu_bf16"] = cpu_bf16_support()
    print(f"native bf16 on this CPU: {results['cpu_bf16']}")
    print(f"a/b = {results['a_over_b']}  (target >= 20)")
    print(f"a/c = {results['a_over_c']}  (target >= 0.8)")
    print(f"real-token share (a) = {results['real_token_share_a']}  (target >= 0.95)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
