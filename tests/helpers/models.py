"""Adapters and run folders with real (random, not zero) LoRA weights, so they change answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def make_adapter(model_dir: Path, out: Path, *, seed: int = 0, alpha: int = 16, trained_on: str | None = None) -> Path:
    """A LoRA adapter with random (not zero) weights, so it really changes the answers; a larger
    alpha changes them sooner."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=8, lora_alpha=alpha, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(out)
    if trained_on is not None:
        config = json.loads((out / "adapter_config.json").read_text())
        (out / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": trained_on}))
    return out


def make_lora_run(base_dir: Path, run_dir: Path, *, recipe_model: str | None = "embedded") -> Path:
    """A LoRA adapter that really changes outputs (random B, not zeros) on q_proj/v_proj, saved
    with its tokenizer inside a run folder shaped like the training worker's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    torch.manual_seed(0)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    adapter = run_dir / "adapter"
    peft_model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    recipe = f"name: test-run\nmodel:\n  name: {recipe_model}\ndata:\n  path: data.jsonl\n" if recipe_model else "name: test-run\n"
    for place in (run_dir, adapter):
        (place / "recipe.yaml").write_text(recipe)
    (run_dir / "status.json").write_text(json.dumps({"state": "completed", "step": 4, "total_steps": 4}))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 4, "split": "train", "loss": 1.5}) + "\n")
    return run_dir


def as_run(adapter: Path, home: Path, name: str = "tab-run") -> Path:
    """The adapter as a run's final result and checkpoint, inside this test's workspace."""
    run = home / "runs" / name
    shutil.copytree(adapter, run / "adapter")
    shutil.copytree(adapter, run / "checkpoints" / "checkpoint-4")
    (run / "status.json").write_text(json.dumps({"state": "completed"}))
    return run / "adapter"
