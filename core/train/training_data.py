"""Training data: from a recipe's dataset to what trl's trainers take, and the numbers a
person wants before a run (examples, samples, tokens, steps).

SFT rows are pre-tokenized by core.dataset.samples (input_ids + labels with -100 outside the
assistant replies), so the loss covers exactly the tokens the Dataset tab's label-mask view
shows. DPO rows are conversational prompt / chosen / rejected for trl to tokenize, KTO rows
prompt / completion / label (pairs split into a good and a bad reply). The
train/eval split is by example, with the recipe's seed. This module knows nothing about
models, trainers or run folders.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from core.chat_template import render
from core.dataset import reader, review
from core.dataset.balance import balance
from core.dataset.samples import build_samples
from core.recipes import PAIRED, Recipe, RecipeError, check_dataset_exists
from core.train.grpo_data import prompt_rows
from core.train.rewards import required_fields


@dataclass
class PreparedData:
    method: str
    format: str
    examples: int  # usable examples after review
    bad_rows: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (example id, reason) from tokenization
    train: list = field(default_factory=list)  # Samples (SFT) or preference rows (DPO)
    eval: list = field(default_factory=list)
    labels: dict | None = None  # KTO: good and bad replies in training and their balance (core.dataset.balance)

    @property
    def has_eval(self) -> bool:
        return bool(self.eval)


def _load(recipe: Recipe):
    path = check_dataset_exists(recipe)
    return path, reader.load(path, recipe.data.format, format_template=recipe.data.format_template,
                             system_prompt=recipe.data.system_prompt)


def _none_usable(path, loaded):
    why = f"; {len(loaded.bad_rows)} bad rows, first: {loaded.bad_rows[0]}" if loaded.bad_rows else ""
    return RecipeError(f"data.path: no usable examples in {path}{why}")


def load_examples(recipe: Recipe):
    """The recipe's examples with review decisions applied: (examples, LoadResult). KTO reads
    them with their labels instead (`labelled_examples`)."""
    path, loaded = _load(recipe)
    examples = review.apply_review(path, loaded.examples, only_approved=recipe.data.only_approved)
    if not examples:
        raise _none_usable(path, loaded)
    return examples, loaded


def labelled_examples(recipe: Recipe):
    """KTO's replies with their good/bad labels, review applied: (examples, LoadResult, rows without a label)."""
    path, loaded = _load(recipe)
    examples, unlabelled = review.labelled(path, loaded.examples, only_approved=recipe.data.only_approved)
    if not examples and not unlabelled:
        raise _none_usable(path, loaded)
    return examples, loaded, unlabelled


def split_examples(examples: list, eval_split: float, seed: int) -> tuple[list, list]:
    """A seeded shuffle, then the first share held out for evaluation (at least one example
    when a share is asked for, and at least one left for training)."""
    if eval_split <= 0 or len(examples) < 2:
        return list(examples), []
    order = list(examples)
    random.Random(seed).shuffle(order)
    n_eval = min(len(order) - 1, max(1, round(len(order) * eval_split)))
    return order[n_eval:], order[:n_eval]


def preference_row(example) -> dict:
    """trl's conversational preference format: the shared prompt, then one assistant turn each."""
    return {
        "prompt": [dict(role=m["role"], content=m["content"]) for m in example.messages],
        "chosen": [{"role": "assistant", "content": example.chosen}],
        "rejected": [{"role": "assistant", "content": example.rejected}],
    }


def kto_row(example) -> dict:
    """trl's unpaired preference format: the conversation before the reply, the reply, its label."""
    turns = [dict(role=m["role"], content=m["content"]) for m in example.messages]
    return {"prompt": turns[:-1], "completion": turns[-1:], "label": bool(example.label)}


def prepare(recipe: Recipe, tokenizer) -> PreparedData:
    """Load, review, split and (for SFT) tokenize the recipe's data."""
    method = recipe.training.method
    if method == "kto":
        return _prepare_kto(recipe)
    examples, loaded = load_examples(recipe)
    if method == "grpo":
        return _prepare_grpo(recipe, examples, loaded)
    if method in PAIRED:
        pairs = [e for e in examples if e.is_preference]
        if not pairs:
            raise RecipeError(f"training.method is {method} but {recipe.data.path} holds no preference pairs "
                              f"(format {loaded.format}); use a prompt/chosen/rejected dataset or method sft")
        train, held = split_examples(pairs, recipe.data.eval_split, recipe.data.seed)
        return PreparedData(method, loaded.format, len(pairs), loaded.bad_rows, [],
                            [preference_row(e) for e in train], [preference_row(e) for e in held])
    chats = [e for e in examples if not e.is_preference]
    if not chats:
        raise RecipeError(f"training.method is sft but {recipe.data.path} holds only preference pairs; use method dpo, orpo or simpo")
    train, held = split_examples(chats, recipe.data.eval_split, recipe.data.seed)
    options = dict(max_length=recipe.data.max_length, response_only=recipe.data.response_only,
                   chat_template=recipe.model.chat_template)
    train_samples, skipped = build_samples(tokenizer, train, stack=recipe.data.stack, **options)
    eval_samples, eval_skipped = build_samples(tokenizer, held, stack=recipe.data.stack, **options)
    if not train_samples:
        first = skipped[0] if skipped else ("-", "no examples")
        raise RecipeError(f"data: no trainable samples ({len(skipped)} skipped; first: {first[0]}: {first[1]})")
    return PreparedData(method, loaded.format, len(chats), loaded.bad_rows, skipped + eval_skipped,
                        train_samples, eval_samples)


def _prepare_kto(recipe: Recipe) -> PreparedData:
    """Labelled replies for KTO (rows with nothing before the reply, or no label, are skipped and
    named), the training rows shuffled once with the seed: trl reads them in order."""
    examples, loaded, unlabelled = labelled_examples(recipe)
    rows = []
    skipped = [(f"{unlabelled} rows", "no good/bad label (not labelled, not a pair, neither approved nor rejected)")
               ] if unlabelled else []
    for example in examples:
        if len(example.messages) < 2:
            skipped.append((example.id, "no prompt before the reply: KTO judges a reply to something"))
        else:
            rows.append(kto_row(example))
    if not rows:
        raise RecipeError(f"training.method is kto but {recipe.data.path} holds no replies labelled good or bad "
                          f"(format {loaded.format}): use rows with a true/false label, preference pairs, or mark replies "
                          "good and bad in the Dataset tab's thumbs review")
    train, held = split_examples(rows, recipe.data.eval_split, recipe.data.seed)
    random.Random(recipe.data.seed).shuffle(train)
    good = sum(row["label"] for row in train)
    t = recipe.training
    labels = balance(good, len(train) - good, t.desirable_weight, t.undesirable_weight)
    return PreparedData("kto", loaded.format, len(rows), loaded.bad_rows, skipped, train, held, labels=labels)


def _prepare_grpo(recipe: Recipe, examples: list, loaded) -> PreparedData:
    """Prompt rows for GRPO; rows without the fields a reward reads are skipped and named."""
    chats = [e for e in examples if not e.is_preference]
    rows, skipped = prompt_rows(chats, required_fields(recipe))
    if not rows:
        first = f"; first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise RecipeError(f"data: no usable GRPO prompts in {recipe.data.path} ({len(skipped)} skipped{first})")
    train, held = split_examples(rows, recipe.data.eval_split, recipe.data.seed)
    return PreparedData("grpo", loaded.format, len(chats), loaded.bad_rows, skipped, train, held)


def sft_dataset(samples: list):
    """A pre-tokenized datasets.Dataset; trl uses its `labels` column as is."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [s.input_ids for s in samples], "labels": [s.labels for s in samples]})


def kto_stats(tokenizer, rows: list, max_length: int, chat_template: str | None = None) -> dict:
    """Token counts of KTO replies (prompt + reply as trl renders them), with the good and bad counts."""
    if not rows:
        return {"replies": 0}
    lengths = []
    for row in rows:
        ids = render(tokenizer, row["prompt"] + row["completion"], template=chat_template, tokenize=True)
        lengths.append(len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids))
    lengths.sort()
    good = sum(row["label"] for row in rows)
    return {"replies": len(rows), "good": good, "bad": len(rows) - good, "tokens": sum(lengths),
            "mean_length": round(sum(lengths) / len(lengths), 1), "max_length": lengths[-1],
            "truncated": sum(1 for n in lengths if n > max_length)}


def dpo_dataset(rows: list):
    from datasets import Dataset

    return Dataset.from_list(rows)


def steps_per_epoch(recipe: Recipe, prepared: PreparedData) -> int:
    """Optimizer steps in one epoch on one process (packed SFT: estimated from token count)."""
    t = recipe.training
    units = len(prepared.train)
    if recipe.training.method == "grpo" and recipe.grpo:  # a step's batch counts completions, not prompts
        units *= recipe.grpo.num_generations
    if recipe.training.method == "sft" and recipe.data.packing:
        units = max(1, math.ceil(sum(len(s.input_ids) for s in prepared.train) / recipe.data.max_length))
    batches = math.ceil(units / (t.batch_size * max(1, t.num_processes)))
    return max(1, math.ceil(batches / t.grad_accum))


def total_steps(recipe: Recipe, prepared: PreparedData) -> int:
    if recipe.training.max_steps > 0:
        return recipe.training.max_steps
    return max(1, math.ceil(recipe.training.epochs * steps_per_epoch(recipe, prepared)))


def token_stats(samples: list) -> dict:
    """Token counts of SFT samples: what is trained, what is truncated."""
    if not samples:
        return {"samples": 0}
    lengths = sorted(len(s.input_ids) for s in samples)
    trained = sum(s.trained_tokens for s in samples)
    return {
        "samples": len(samples), "tokens": sum(lengths), "trained_tokens": trained,
        "trained_share": round(trained / max(1, sum(lengths)), 3), "mean_length": round(sum(lengths) / len(lengths), 1),
        "median_length": lengths[len(lengths) // 2], "max_length": lengths[-1],
        "truncated": sum(1 for s in samples if s.truncated),
    }


def pair_stats(tokenizer, rows: list, max_length: int, chat_template: str | None = None) -> dict:
    """Token counts of DPO pairs (prompt + chosen, prompt + rejected) as trl will render them."""
    if not rows:
        return {"pairs": 0}
    lengths = []
    for row in rows:
        for reply in ("chosen", "rejected"):
            ids = render(tokenizer, row["prompt"] + row[reply], template=chat_template, tokenize=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
            lengths.append(len(ids))
    lengths.sort()
    return {"pairs": len(rows), "tokens": sum(lengths), "mean_length": round(sum(lengths) / len(lengths), 1),
            "max_length": lengths[-1], "truncated": sum(1 for n in lengths if n > max_length)}
