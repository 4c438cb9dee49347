"""Recommended ranges for a run's main settings, for its model's size and its data's size, in
plain words: learning rate, LoRA rank, epochs and the effective batch. Each line says what the
setting does, the range that usually works, and whether the recipe is inside it.

The ranges are the rules of thumb the fine-tuning guides agree on (PEFT and trl documentation,
the QLoRA paper's settings, Unsloth's and Axolotl's defaults), stated as ranges, not as one
right number: a run outside one is not wrong, it is worth a second look. This module reads the
recipe and a few numbers; it loads no model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from core.models import is_embedded
from core.recipes import PREFERENCE, Recipe

EMBEDDED_PARAMS = 135_000_000
_SIZE_IN_NAME = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)  # "7B", "135M", "1.5b"


@dataclass(frozen=True)
class Advice:
    setting: str  # the recipe field, dotted
    label: str
    value: float
    low: float
    high: float
    why: str  # what the setting does and why this range, in one sentence

    @property
    def inside(self) -> bool:
        return self.low <= self.value <= self.high

    def line(self) -> str:
        mark = "✓" if self.inside else ("⚠️ low" if self.value < self.low else "⚠️ high")
        return f"{self.label}: yours {_fmt(self.value)}, usually {_fmt(self.low)}–{_fmt(self.high)} {mark}. {self.why}"

    def to_json(self) -> dict:
        return {"setting": self.setting, "value": self.value, "low": self.low, "high": self.high, "inside": self.inside,
                "why": self.why}


def _fmt(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-") if 0 < value < 0.01 else f"{value:g}"


def model_parameters(name: str) -> int | None:
    """About how many parameters a model has: the embedded model's known size, a local folder's
    config.json (layers and widths), else a size written in its name ("Qwen2.5-7B" -> 7e9)."""
    if is_embedded(name):
        return EMBEDDED_PARAMS
    config = Path(name).expanduser() / "config.json"
    if config.is_file():
        try:
            return _from_config(json.loads(config.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    found = _SIZE_IN_NAME.findall(Path(str(name)).name)
    if found:
        number, unit = found[-1]
        return int(float(number) * (1e9 if unit.lower() == "b" else 1e6))
    return None


def _from_config(config: dict) -> int:
    config = config.get("text_config", config)
    hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    inner = int(config.get("intermediate_size") or 4 * hidden)
    vocab = int(config.get("vocab_size") or 32000)
    return layers * (4 * hidden * hidden + 3 * hidden * inner) + vocab * hidden


def recommend(recipe: Recipe, examples: int, params: int | None = None) -> list[Advice]:
    """The advice for this recipe on `examples` usable examples (model size from the recipe's
    model unless given)."""
    t = recipe.training
    params = params if params is not None else model_parameters(recipe.model.name)
    size = params or 1_000_000_000  # unknown: advise as for a mid-sized model
    full = t.tuning == "full"
    if t.method in (*PREFERENCE, "grpo"):
        rates = (5e-7, 5e-6) if full else (5e-6, 5e-5)
        why = "Preference and reward training move a model that already answers well: small steps keep what it knew."
    elif full:
        rates = (1e-5, 1e-4) if size < 1e9 else (5e-6, 5e-5)
        why = "Full fine-tuning changes every weight: larger rates erase what the model knew."
    else:
        rates = (1e-4, 1e-3) if size < 1e9 else (5e-5, 3e-4) if size < 1.5e10 else (2e-5, 2e-4)
        why = "LoRA learns a small add-on, so it takes larger rates than full tuning; bigger models want smaller ones."
    advice = [Advice("training.learning_rate", "Learning rate", t.learning_rate, *rates, why)]
    if not full:
        ranks = (8, 16) if examples < 1000 else (16, 32) if examples < 10_000 else (16, 64)
        advice.append(Advice("lora.r", "LoRA rank", recipe.lora.r, *ranks,
                             "How much the add-on can learn: small data needs little, and a large rank on little data "
                             "memorizes it."))
    if t.max_steps <= 0:  # a step limit overrides epochs: nothing to advise on them
        epochs = (3, 10) if examples < 100 else (2, 5) if examples < 1000 else (1, 3) if examples < 10_000 else (1, 2)
        advice.append(Advice("training.epochs", "Epochs", t.epochs, *epochs,
                             "Passes over the data: few examples need more passes, but watch the held-out loss; when "
                             "it rises the model is memorizing."))
    effective = t.batch_size * max(t.grad_accum, 1) * max(t.num_processes, 1)
    batch = (4, 16) if examples < 500 else (8, 32) if examples < 10_000 else (16, 128)
    batch = (min(batch[0], max(examples // 4, 1)), min(batch[1], max(examples // 2, 1)))
    advice.append(Advice("training.batch_size", "Examples per optimizer step (batch × accumulation)", effective, *batch,
                         "More examples per step make steps steadier; too many on little data leaves few steps to learn in."))
    return advice
