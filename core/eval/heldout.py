"""Held-out loss and perplexity of the base model and of each result of a run, on the run's own
eval split (the same seed, the same samples, the same label mask the trainer used).

Cheap and deterministic: one forward pass per sample, no sampling. The loss is the mean over
trained tokens (labels != -100), weighted by token count across samples; perplexity is its
exponential. An adapter is loaded onto the base once and switched off for the base's numbers
(peft's `disable_adapter`); a full-model checkpoint is loaded on its own. This module knows
nothing about prompt sets, answers or gradio; DPO runs (preference pairs) have no such split.
"""

from __future__ import annotations

import math
from pathlib import Path

from core import models, recipes
from core.errors import BadInput
from core.train import run_dir as run_files
from core.train.training_data import prepare


def eval_samples(run: Path, tokenizer, limit: int | None = None) -> list:
    recipe = recipes.load(run / run_files.RECIPE_FILE)
    if recipe.training.method != "sft":
        raise BadInput(f"{run}: held-out loss needs an SFT run; this one is {recipe.training.method}")
    if recipe.data.eval_split <= 0:
        raise BadInput(f"{run}: the recipe holds nothing out (data.eval_split is 0)")
    samples = prepare(recipe, tokenizer).eval
    return samples[:limit] if limit else samples


def mean_loss(model, samples: list) -> tuple[float, int]:
    """Token-weighted mean cross-entropy over trained tokens, and how many tokens that was."""
    import torch

    total, tokens = 0.0, 0
    device = next(model.parameters()).device
    with torch.inference_mode():
        for sample in samples:
            ids = torch.tensor([sample.input_ids], device=device)
            labels = torch.tensor([sample.labels], device=device)
            counted = int((labels[:, 1:] != -100).sum())
            if counted == 0:
                continue
            loss = model(input_ids=ids, labels=labels).loss
            total += float(loss) * counted
            tokens += counted
    if tokens == 0:
        raise BadInput("no trained tokens in the eval split (every label is masked)")
    return total / tokens, tokens


def _line(label: str, loss: float, tokens: int, base_loss: float | None) -> dict:
    return {"weights": label, "loss": round(loss, 4), "perplexity": round(math.exp(min(loss, 50)), 3), "tokens": tokens,
            "change_vs_base": None if base_loss is None else round(loss - base_loss, 4)}


def heldout_losses(run: str | Path, base_model: str, *, limit: int | None = None) -> dict:
    """{'samples', 'rows': [{weights, loss, perplexity, tokens, change_vs_base}]}: base first,
    then best, final and each checkpoint the run kept."""
    run = Path(run)
    tokenizer = models.load_tokenizer(base_model)
    samples = eval_samples(run, tokenizer, limit)
    if not samples:
        raise BadInput(f"{run}: the eval split is empty")
    base = models.load_model(base_model).eval()
    base_loss, tokens = mean_loss(base, samples)
    rows = [_line("base", base_loss, tokens, None)]
    peft_model, measured = None, {}
    for label, path in run_files.model_artifacts(run):
        digest = weights_digest(path)
        if digest in measured:  # best/ and the final adapter are often a checkpoint's very weights
            rows.append({**measured[digest], "weights": label, "same_as": measured[digest]["weights"]})
            continue
        if (path / "adapter_config.json").is_file():
            peft_model = with_adapter(peft_model, base, path, label)
            peft_model.set_adapter(label)
            loss, tokens = mean_loss(peft_model, samples)
        else:
            loss, tokens = mean_loss(models.load_model(str(path)).eval(), samples)
        rows.append(_line(label, loss, tokens, base_loss))
        if digest:
            measured[digest] = rows[-1]
    return {"samples": len(samples), "rows": rows}


def weights_digest(folder: Path) -> str | None:
    """A hash of the folder's weight files, so identical weights are measured once."""
    import hashlib

    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        return None
    digest = hashlib.sha1()
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def with_adapter(peft_model, base, path: Path, label: str):
    from peft import PeftModel

    if peft_model is None:
        return PeftModel.from_pretrained(base, str(path), adapter_name=label, is_trainable=False).eval()
    peft_model.load_adapter(str(path), adapter_name=label, is_trainable=False)
    return peft_model
