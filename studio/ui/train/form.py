"""Train tab form: which recipe fields get a widget, and the conversions between widget
values, recipe dicts and YAML text (the form and the YAML view build the same Recipe).

Common fields are shown first; the rest sit under "Advanced". Help text is each field's
docstring (core.recipes.field_help). This module knows nothing about runs.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

import gradio as gr
import yaml

from core import recipes, schema
from core.workspace import CONFIGS, PROJECT_ROOT
from studio.ui.language import t

COMMON = [
    "model.name", "data.path", "training.method", "training.tuning", "training.epochs", "training.max_steps",
    "training.learning_rate", "training.batch_size", "training.grad_accum", "data.max_length", "data.eval_split",
    "lora.r", "lora.alpha",
]
ADVANCED = [
    "name", "description", "data.format", "data.response_only", "data.stack", "data.packing", "data.format_template",
    "data.system_prompt", "data.only_approved", "data.seed", "training.lr_scheduler", "training.warmup_ratio",
    "training.warmup_steps", "training.weight_decay", "training.max_grad_norm", "training.logging_steps",
    "training.eval_steps", "training.save_steps", "training.save_every_epochs", "training.save_total_limit",
    "training.early_stopping_patience", "training.load_best_at_end", "training.seed", "training.beta",
    "training.dpo_loss", "training.simpo_gamma", "training.desirable_weight", "training.undesirable_weight",
    "training.gradient_checkpointing", "training.distributed", "training.num_processes", "training.report_to", "lora.dropout",
    "lora.target_modules", "model.trust_remote_code",
]
FIELDS = COMMON + ADVANCED
LABELS = {
    "model.name": "Model", "data.path": "Dataset file", "training.method": "Method", "training.tuning": "What to train",
    "training.epochs": "Epochs", "training.max_steps": "Max steps (-1 = all epochs)", "training.learning_rate": "Learning rate",
    "training.batch_size": "Batch size", "training.grad_accum": "Gradient accumulation", "data.max_length": "Max tokens per sample",
    "data.eval_split": "Eval share", "lora.r": "LoRA rank", "lora.alpha": "LoRA alpha", "name": "Recipe name",
    "lora.target_modules": "LoRA target modules (comma-separated)", "training.dpo_loss": "DPO loss",
    "training.simpo_gamma": "SimPO gamma", "training.desirable_weight": "KTO weight of good replies",
    "training.undesirable_weight": "KTO weight of bad replies",
    "training.report_to": "Trackers (comma-separated: tensorboard, wandb, mlflow, trackio)",
}
_HINTS = {dotted: hint for dotted, hint, _ in recipes.all_fields()}


def label_of(dotted: str) -> str:
    return LABELS.get(dotted) or dotted.split(".")[-1].replace("_", " ").capitalize()


def _base(hint: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    args = typing.get_args(hint)
    if type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def make_widget(dotted: str, value: Any = None) -> gr.components.Component:
    hint, _ = _base(_HINTS[dotted])
    common = {"label": t(label_of(dotted)), "info": t(recipes.field_help(dotted)), "value": value,
              "elem_id": "train-" + dotted.replace(".", "-").replace("_", "-")}  # stable hooks for browser tests
    if typing.get_origin(hint) is Literal:
        return gr.Dropdown(choices=list(typing.get_args(hint)), **common)
    if hint is bool:
        return gr.Checkbox(**common)
    if hint is int:
        return gr.Number(precision=0, **common)
    if hint is float:
        return gr.Number(**common)
    return gr.Textbox(lines=1, **common)


def to_widget(dotted: str, value: Any) -> Any:
    hint, _ = _base(_HINTS[dotted])
    if typing.get_origin(hint) is list:
        return ", ".join(value or [])
    if hint is str and value is None:
        return ""
    return value


def from_widget(dotted: str, value: Any) -> Any:
    """Widget value -> recipe value; blanks become None where the field allows it."""
    hint, optional = _base(_HINTS[dotted])
    if typing.get_origin(hint) is list:
        return [part.strip() for part in str(value or "").split(",") if part.strip()]
    if value in ("", None) and optional:
        return None
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def get_dotted(data: dict, dotted: str) -> Any:
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {}) if isinstance(node.get(part), dict) else node.setdefault(part, {})
        if not isinstance(node, dict):
            return
    node[parts[-1]] = value


def parse_yaml(text: str) -> dict:
    try:
        data = yaml.safe_load(text or "") or {}
    except yaml.YAMLError as error:
        raise recipes.RecipeError(schema.yaml_error_text("the recipe YAML", error)) from None
    if not isinstance(data, dict):
        raise recipes.RecipeError("the YAML must be a mapping of sections (model, data, lora, training, export)")
    return data


def recipe_from_yaml(text: str) -> recipes.Recipe:
    return recipes.from_dict(parse_yaml(text))


def default_recipe() -> recipes.Recipe:
    """What the form shows before anything is loaded: the CPU smoke recipe, else the defaults."""
    try:
        return portable(recipes.load(CONFIGS / "smoke-cpu.yaml"))
    except recipes.RecipeError:
        return recipes.Recipe()


def form_dict(recipe: recipes.Recipe) -> dict[str, Any]:
    """{dotted field: widget value} for every form field, in form order."""
    data = recipe.to_dict()
    return {d: to_widget(d, get_dotted(data, d)) for d in FIELDS}


_NO_YAML = object()


class FormFill(tuple):
    """What a recipe handler sends to the form, by name: field values by dotted name (a field left
    out keeps its value), the YAML view (left out by handlers that don't write it), the status line
    and the launch note. It is the tuple gradio expects for `FormFill.outputs(...)`, so the order
    of 40-odd outputs is written once, here, and no handler counts positions."""

    def __new__(cls, values: dict[str, Any] | None = None, *, status: Any = None, note: Any = None, yaml: Any = _NO_YAML):
        values = values or {}
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise KeyError(f"not form fields: {sorted(unknown)}")
        keep = gr.update()
        items = [values.get(d, keep) for d in FIELDS] + ([] if yaml is _NO_YAML else [yaml])
        items += [keep if status is None else status, keep if note is None else note]
        return super().__new__(cls, items)

    @staticmethod
    def outputs(form: list, *, status, note, yaml=None) -> list:
        """The components a FormFill fills, in its order (`yaml` only for handlers that write it)."""
        return [*form, *([yaml] if yaml is not None else []), status, note]


def apply_form(text: str, values: list) -> dict:
    """The YAML's dict with every form field written in (YAML-only fields such as
    data.mode_tags and export.* are kept)."""
    data = parse_yaml(text)
    for dotted, value in zip(FIELDS, values):
        set_dotted(data, dotted, from_widget(dotted, value))
    return data


def display_path(path: Path) -> str:
    """Project-relative when inside the project (assets/...), else absolute."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def portable(recipe: recipes.Recipe) -> recipes.Recipe:
    """A loaded recipe whose dataset path still resolves once it has left its file's folder."""
    if recipe.data.path:
        recipe.data.path = display_path(recipe.dataset_path())
    recipe.source = None
    return recipe
