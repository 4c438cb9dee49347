"""Reward preview: before spending compute on GRPO, sample K completions for a few prompts from
the current model and score each with every reward of the recipe, plus the weighted total, so a
person sees whether the rewards measure what they meant.

The prompts, the rewards and the sampling (temperature, completion length) are the recipe's own,
so the preview shows what the first training step will see. This module knows nothing about
the UI or the CLI; both render `preview()`'s dict.
"""

from __future__ import annotations

import json
import time

from core.chat_template import render
from core.models import load_model, load_tokenizer
from core.recipes import Recipe, RecipeError
from core.train import training_data
from core.train.grpo_data import prompt_text
from core.train.preflight import preflight
from core.train.rewards import build_rewards, weighted_total


def preview(recipe: Recipe, *, prompts: int | None = None, samples: int | None = None, adapter: str | None = None,
            seed: int = 0) -> dict:
    """{rows: [{prompt_index, prompt, completion, rewards, total}], summary, skipped, ...}."""
    import torch

    if recipe.training.method != "grpo" or recipe.grpo is None:
        raise RecipeError("training.method: the reward preview is for grpo recipes (set training.method: grpo and a grpo section)")
    preflight(recipe)
    n_prompts = prompts or recipe.grpo.preview_prompts
    k = samples or recipe.grpo.preview_samples
    rewards = build_rewards(recipe)
    tokenizer = load_tokenizer(recipe.model.name, trust_remote_code=recipe.model.trust_remote_code)
    prepared = training_data.prepare(recipe, tokenizer)
    model = load_model(recipe.model.name, trust_remote_code=recipe.model.trust_remote_code)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    torch.manual_seed(seed)
    weights = {r.name: r.weight for r in rewards}
    rows, started, generated = [], time.monotonic(), 0
    for index, item in enumerate(prepared.train[:n_prompts]):
        reference = json.loads(item["reference"])
        inputs = render(tokenizer, item["prompt"], template=recipe.model.chat_template, add_generation_prompt=True,
                        tokenize=True, return_tensors="pt", return_dict=True).to(model.device)
        with torch.no_grad():
            out = model.generate(**inputs, do_sample=True, temperature=recipe.grpo.temperature, num_return_sequences=k,
                                 max_new_tokens=recipe.grpo.max_completion_length, pad_token_id=tokenizer.pad_token_id)
        start = inputs["input_ids"].shape[1]
        for sequence in out:
            ids = [t for t in sequence[start:].tolist() if t != tokenizer.pad_token_id]
            generated += len(ids)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            question = prompt_text(item["prompt"])
            scores = {r.name: r.score(question, text, reference, len(ids)) for r in rewards}
            rows.append({"prompt_index": index, "prompt": question, "completion": text, "rewards": scores,
                         "total": weighted_total(scores, weights)})
    return {"recipe": recipe.name, "model": recipe.model.name, "adapter": adapter, "prompts": min(n_prompts, len(prepared.train)),
            "samples_per_prompt": k, "weights": weights, "rows": rows, "summary": summarize(rows, list(weights)),
            "skipped": [{"row": where, "reason": why} for where, why in prepared.skipped],
            "seconds": round(time.monotonic() - started, 2), "generated_tokens": generated}


def summarize(rows: list[dict], names: list[str]) -> dict:
    """Mean and spread of each reward and of the total over the sampled completions; a reward
    with no spread inside a prompt's group gives GRPO nothing to learn from, so that is counted too."""
    def stats(values):
        values = [v for v in values if v is not None]
        if not values:
            return {"mean": None, "std": None, "scored": 0}
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        return {"mean": round(mean, 4), "std": round(std, 4), "scored": len(values)}

    summary = {name: stats(row["rewards"][name] for row in rows) for name in names}
    summary["total"] = stats(row["total"] for row in rows)
    groups: dict[int, list] = {}
    for row in rows:
        groups.setdefault(row["prompt_index"], []).append(row["total"])
    summary["total"]["flat_groups"] = sum(1 for totals in groups.values() if len(set(totals)) <= 1)
    summary["total"]["groups"] = len(groups)
    return summary
