"""Recipes: the one typed description of a training run (model, data, lora, training, export).

A recipe comes from YAML (`load`), from the Train tab's form, or from CLI `--set a.b=c`
overrides; all three build the same dataclasses and pass the same `validate`. Each field's
one-line docstring is its help text in the CLI and the UI (`field_help`). Errors name the
dotted field and what was expected. This module knows nothing about trl or peft; the
translation to their configs lives in core.train.training.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from core import schema
from core.errors import StudioError
from core.recipe_eval import EvalSection
from core.recipe_grpo import GrpoSection, grpo_checks
from core.workspace import CONFIGS, PROJECT_ROOT, write_atomic

TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")  # what training.report_to may name (trl's trackers)


class RecipeError(StudioError, ValueError):
    """A recipe problem, always naming the dotted field (and the file when there is one)."""


@dataclass
class ModelSection:
    name: str = "embedded"
    """Model to tune: 'embedded' (bundled SmolLM2-135M), a local folder, or a Hub id."""
    trust_remote_code: bool = False
    """Run the model repository's own Python code; only for models you trust."""
    chat_template: str | None = None
    """Jinja chat template to use instead of the tokenizer's own (rarely needed)."""


@dataclass
class DataSection:
    path: str = ""
    """Dataset file or folder (JSONL, JSON, CSV, Parquet); relative paths start at the recipe's folder."""
    format: str = "auto"
    """Dataset format: auto (detected from the rows), or a name from the Dataset tab's Format list (`studio check --help`)."""
    max_length: int = 2048
    """Longest tokenized sample; longer ones are truncated (the Dataset tab shows how many)."""
    response_only: bool = True
    """Train only on assistant tokens; system and user tokens are masked out of the loss."""
    stack: int = 1
    """Consecutive conversations stacked into one sample (within max_length), as the friction run did."""
    packing: bool = False
    """Pack samples into max_length blocks to avoid padding (SFT only)."""
    eval_split: float = 0.0
    """Share of examples held out for evaluation (0 turns evaluation off)."""
    seed: int = 42
    """Seed for the train/eval split and the shuffle."""
    format_template: str | None = None
    """Assistant text template for friction records: the record's fields in curly brackets (the Dataset tab shows one)."""
    system_prompt: str | None = None
    """System message added to examples that have none."""
    only_approved: bool = False
    """Use only rows a reviewer approved in the Dataset tab (rejected rows are always left out)."""
    mode_tags: dict[str, list[str]] | None = None
    """Cognitive mode -> its own tags, for the contamination check (default: dual, emulation, agent)."""


@dataclass
class LoraSection:
    r: int = 16
    """LoRA rank: size of the low-rank update."""
    alpha: int = 32
    """LoRA alpha: the update is scaled by alpha / r."""
    dropout: float = 0.05
    """Dropout on the LoRA path."""
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Layers that get adapters: module names (q_proj, v_proj, ...) or 'all-linear'."""


PAIRED = ("dpo", "orpo", "simpo")  # methods that train on preference pairs (prompt, chosen, rejected)
PREFERENCE = (*PAIRED, "kto")  # and KTO: single replies labelled good or bad (pairs are split into two)


@dataclass
class TrainingSection:
    method: Literal["sft", "dpo", "orpo", "simpo", "kto", "grpo"] = "sft"
    """Objective: sft (chats); dpo, orpo, simpo (pairs; orpo, simpo need no reference model); kto (replies marked good/bad); grpo."""
    tuning: Literal["lora", "qlora", "full"] = "lora"
    """What is trained: a LoRA adapter, a LoRA adapter on a 4-bit base (CUDA), or all weights."""
    epochs: float = 1.0
    """Passes over the training set."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run all epochs)."""
    batch_size: int = 1
    """Samples per device per step."""
    grad_accum: int = 1
    """Steps whose gradients are summed before an update (effective batch = batch_size x grad_accum)."""
    learning_rate: float = 2e-4
    """Peak learning rate."""
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    """Learning-rate schedule after warm-up."""
    warmup_ratio: float = 0.0
    """Share of steps spent warming up (use this or warmup_steps)."""
    warmup_steps: int = 0
    """Warm-up steps (use this or warmup_ratio)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 turns clipping off)."""
    logging_steps: int = 1
    """Log loss and friends every N steps."""
    eval_steps: int | None = None
    """Evaluate every N steps (default: once per epoch when eval_split > 0)."""
    save_steps: int | None = None
    """Save a checkpoint every N steps (default: every epoch)."""
    save_every_epochs: int | None = None
    """Save a checkpoint every N epochs instead of every N steps."""
    save_total_limit: int | None = 3
    """Keep at most this many checkpoints (the best one is always kept)."""
    early_stopping_patience: int | None = None
    """Stop when eval loss has not improved for this many evaluations."""
    load_best_at_end: bool = False
    """Finish with the checkpoint of lowest eval loss (needs eval_split > 0)."""
    seed: int = 42
    """Seed for initialisation and data order."""
    beta: float = 0.1
    """DPO and KTO beta: how far the policy may move from the reference model (ORPO: the odds-ratio term's weight; SimPO: 2 to 2.5)."""
    simpo_gamma: float = 0.5
    """SimPO's target reward margin (the paper: 0.5 to 1.5); only with method: simpo."""
    desirable_weight: float = 1.0
    """KTO: the loss weight of good replies (raise it when there are fewer good than bad; the data check says by how much)."""
    undesirable_weight: float = 1.0
    """KTO: the loss weight of bad replies."""
    dpo_loss: Literal["sigmoid", "ipo"] = "sigmoid"
    """DPO's loss: sigmoid (DPO's own) or ipo (IPO: holds the margin near 1/(2 beta); resists overfitting small sets)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (slower)."""
    distributed: Literal["none", "ddp", "fsdp", "deepspeed"] = "none"
    """Multi-GPU strategy, run under `accelerate launch`."""
    num_processes: int = 1
    """Processes (GPUs, or CPU processes over gloo) under `accelerate launch`; batch_size is per process."""
    report_to: list[str] = field(default_factory=list)
    """Trackers that also get the metrics: tensorboard, wandb, mlflow, trackio (logs in the run folder, offline where possible)."""


@dataclass
class ExportSection:
    hub_repo: str | None = None
    """Hub repository to push to, e.g. your-name/my-adapter."""
    private: bool = True
    """Create the Hub repository as private."""
    gguf_type: Literal["f16", "bf16", "q8_0", "q4_k_m", "q5_k_m", "q6_k"] = "q8_0"
    """GGUF tensor type for llama.cpp and Ollama."""
    ollama_name: str | None = None
    """Model name to create in Ollama."""
    system_prompt: str | None = None
    """Default system prompt written into the Ollama Modelfile."""


@dataclass
class Recipe:
    name: str = "untitled"
    """Short name; run folders start with it."""
    description: str = ""
    """What this run is for, in a sentence or two."""
    model: ModelSection = field(default_factory=ModelSection)
    """The model to tune."""
    data: DataSection = field(default_factory=DataSection)
    """The dataset and how it becomes training samples."""
    lora: LoraSection = field(default_factory=LoraSection)
    """LoRA adapter shape (ignored for full fine-tuning)."""
    training: TrainingSection = field(default_factory=TrainingSection)
    """Optimisation, evaluation and checkpoints."""
    export: ExportSection = field(default_factory=ExportSection)
    """Where the result goes afterwards."""
    eval: EvalSection = field(default_factory=EvalSection)
    """The prompt set that guards against regressions, evaluated after training."""
    grpo: GrpoSection | None = None
    """GRPO sampling and rewards (only with training.method: grpo)."""

    source: Path | None = field(default=None, repr=False, compare=False, metadata={"internal": True})
    # (data.path, where it points), filled when the recipe is built, so every user of the recipe
    # (CLI, UI, run creation, dry run) sees one answer, whatever their working folder later is.
    resolved_data: tuple[str, Path] | None = field(default=None, repr=False, compare=False, metadata={"internal": True})

    def to_dict(self) -> dict:
        return schema.plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    def dataset_path(self) -> Path:
        """The dataset path resolved against the recipe's folder, then the working folder, then
        the project root; resolved once, when the recipe is built (again only if data.path changes)."""
        if self.resolved_data is None or self.resolved_data[0] != self.data.path:
            self.resolved_data = (self.data.path, _resolve_dataset(self.data.path, self.source))
        return self.resolved_data[1]


def _resolve_dataset(path: str, source: Path | None) -> Path:
    raw = Path(path).expanduser()
    if raw.is_absolute():
        return raw
    bases = [source.parent] if source else []
    bases += [Path.cwd(), PROJECT_ROOT]
    for base in bases:
        if (base / raw).exists():
            return (base / raw).resolve()
    return (bases[0] / raw).resolve()


def field_help(dotted: str) -> str:
    """The one-line help of a field, e.g. field_help('training.learning_rate')."""
    return schema.field_help(Recipe, dotted)


def all_fields() -> list[tuple[str, Any, str]]:
    """Every leaf field of a recipe as (dotted name, type, help)."""
    return schema.all_fields(Recipe)


# ---------------------------------------------------------------- building


def from_dict(data: dict | None, *, source: Path | None = None) -> Recipe:
    """Build and validate a Recipe; unknown keys and bad types name their dotted field."""
    where = f"{source}: " if source else ""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{where}a recipe is a mapping of sections (model, data, lora, training, export), got {type(data).__name__}")
    recipe = _build(Recipe, data, "", where)
    recipe.source = source
    validate(recipe, where)
    recipe.dataset_path()  # resolved here, once: later users and processes read the answer
    return recipe


def _build(cls: type, data: dict, prefix: str, where: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
            raise RecipeError(f"{where}unknown key '{prefix}{key}'{hint}")
    values = {}
    for name in known & set(data):
        hint, value, dotted = hints[name], data[name], f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise RecipeError(f"{where}{dotted}: expected a mapping of {hint.__name__} fields, got {value!r}")
            values[name] = _build(hint, value, dotted + ".", where)
        else:
            values[name] = _coerce(value, hint, dotted, where)
    return cls(**values)


def _coerce(value: Any, hint: Any, dotted: str, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], dotted, where)
    if dataclasses.is_dataclass(hint):  # an optional section that is present (grpo, a reward)
        if not isinstance(value, dict):
            raise RecipeError(f"{where}{dotted}: expected a mapping of {hint.__name__} fields, got {value!r}")
        return _build(hint, value, dotted + ".", where)
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{where}{dotted}: expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise RecipeError(f"{where}{dotted}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise RecipeError(f"{where}{dotted}: expected a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 2e-4 as a string (YAML 1.1 wants 2.0e-4)
            try:
                return float(value)
            except ValueError:
                pass
        raise RecipeError(f"{where}{dotted}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise RecipeError(f"{where}{dotted}: expected text, got {value!r}")
    if origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise RecipeError(f"{where}{dotted}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{dotted}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}{dotted}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{dotted}.{k}", where) for k, v in value.items()}
    raise RecipeError(f"{where}{dotted}: unsupported type {hint}")  # pragma: no cover


def validate(recipe: Recipe, where: str = "") -> None:
    """Value checks beyond types; each names the field and the fix."""
    t, d, lora = recipe.training, recipe.data, recipe.lora
    checks = [
        (t.learning_rate > 0, "training.learning_rate", f"must be positive, got {t.learning_rate}"),
        (t.epochs > 0 or t.max_steps > 0, "training.epochs", "must be positive (or set training.max_steps)"),
        (t.max_steps == -1 or t.max_steps > 0, "training.max_steps", "must be -1 (all epochs) or positive"),
        (t.batch_size >= 1, "training.batch_size", "must be at least 1"),
        (t.grad_accum >= 1, "training.grad_accum", "must be at least 1"),
        (0 <= t.warmup_ratio < 1, "training.warmup_ratio", "must be in [0, 1)"),
        (t.warmup_steps >= 0, "training.warmup_steps", "must be 0 or more"),
        (not (t.warmup_ratio and t.warmup_steps), "training.warmup_steps", "can't be set together with training.warmup_ratio; keep one"),
        (t.weight_decay >= 0, "training.weight_decay", "must be 0 or more"),
        (t.max_grad_norm >= 0, "training.max_grad_norm", "must be 0 or more"),
        (t.logging_steps >= 1, "training.logging_steps", "must be at least 1"),
        (t.eval_steps is None or t.eval_steps >= 1, "training.eval_steps", "must be at least 1"),
        (t.save_steps is None or t.save_steps >= 1, "training.save_steps", "must be at least 1"),
        (t.save_every_epochs is None or t.save_every_epochs >= 1, "training.save_every_epochs", "must be at least 1"),
        (not (t.save_steps and t.save_every_epochs), "training.save_every_epochs",
         "can't be set together with training.save_steps; keep one"),
        (t.beta > 0, "training.beta", "must be positive"),
        (t.dpo_loss == "sigmoid" or t.method == "dpo", "training.dpo_loss", "is for method: dpo"),
        (t.num_processes >= 1, "training.num_processes", "must be at least 1"),
        (set(t.report_to) <= set(TRACKERS), "training.report_to", f"must name trackers among {', '.join(TRACKERS)}, got {t.report_to}"),
        (not (t.load_best_at_end and d.eval_split == 0), "training.load_best_at_end", "needs an eval set: set data.eval_split above 0"),
        (not (t.early_stopping_patience and d.eval_split == 0), "training.early_stopping_patience",
         "needs an eval set: set data.eval_split above 0"),
        (0 <= d.eval_split < 1, "data.eval_split", f"must be in [0, 1), got {d.eval_split}"),
        (d.max_length >= 16, "data.max_length", "must be at least 16 tokens"),
        (d.stack >= 1, "data.stack", "must be at least 1"),
        (not (d.packing and t.method in PREFERENCE), "data.packing", f"is for SFT only; turn it off for {t.method.upper()}"),
        (t.method != "kto" or t.batch_size >= 2, "training.batch_size",
         "must be at least 2 for kto: KTO estimates its KL term from the other replies in a batch"),
        (t.desirable_weight > 0 and t.undesirable_weight > 0, "training.desirable_weight",
         "and training.undesirable_weight must be positive"),
        (t.simpo_gamma >= 0, "training.simpo_gamma", "must be 0 or more"),
        (bool(d.path), "data.path", "is empty: name a dataset file or folder"),
        *grpo_checks(recipe.grpo, t.method, t.batch_size, t.grad_accum, t.num_processes),
        (not (d.packing and t.method == "grpo"), "data.packing", "is for SFT only; turn it off for GRPO"),
        (not (t.method == "grpo" and d.eval_split), "data.eval_split", "must be 0 for grpo: the reward charts are its measure"),
        (lora.r >= 1, "lora.r", "must be at least 1"),
        (lora.alpha > 0, "lora.alpha", "must be positive"),
        (0 <= lora.dropout < 1, "lora.dropout", "must be in [0, 1)"),
        (bool(lora.target_modules), "lora.target_modules", "is empty: name modules or use all-linear"),
        (recipe.eval.max_new_tokens >= 1, "eval.max_new_tokens", "must be at least 1"),
        (not (recipe.eval.after_training and not (recipe.eval.prompts or recipe.eval.benchmarks)), "eval.after_training",
         "needs eval.prompts (a prompt set) or eval.benchmarks"),
        (recipe.eval.benchmark_limit >= 0, "eval.benchmark_limit", "must be 0 (every item) or more"),
    ]
    for ok, dotted, message in checks:
        if not ok:
            raise RecipeError(f"{where}{dotted} {message}")


def check_dataset_exists(recipe: Recipe) -> Path:
    path = recipe.dataset_path()
    if not path.exists():
        where = f"{recipe.source}: " if recipe.source else ""
        raise RecipeError(f"{where}data.path: dataset '{recipe.data.path}' not found (looked for {path}); "
                          "fix the path or upload the file in the Dataset tab")
    return path


# ---------------------------------------------------------------- files and overrides


def load(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe (safe_load), apply `key=value` overrides, validate."""
    path = Path(path)
    if not path.is_file() and (CONFIGS / path.name).is_file() and not path.parent.name:
        path = CONFIGS / path.name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: a folder, not a recipe file; name a .yaml file (see configs/)") from None
    except UnicodeDecodeError as error:
        raise RecipeError(f"{path}: not a text file (byte {error.start} is not UTF-8); a recipe is a YAML text file") from None
    except RecursionError:
        raise RecipeError(f"{path}: nested too deeply to be a recipe") from None
    except OSError as error:
        raise RecipeError(f"{path}: can't be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise RecipeError(schema.yaml_error_text(path, error)) from None
    if data is not None and not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections (model, data, lora, training, export), "
                          f"but this file holds {'plain text' if isinstance(data, str) else 'a ' + type(data).__name__}")
    data = apply_overrides(data or {}, overrides or [])
    return from_dict(data, source=path.resolve())


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`training.learning_rate=1e-4` style overrides; values parse as YAML scalars."""
    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"--set {item}: expected key=value, e.g. training.learning_rate=1e-4")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise RecipeError(f"--set {item}: the value is not a YAML scalar, list or mapping; quote it") from None
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[parts[-1]] = value
    return data


def save(recipe: Recipe, path: Path) -> None:
    write_atomic(path, recipe.to_yaml())


def bundled() -> list[Path]:
    """The recipes shipped in configs/."""
    return sorted(CONFIGS.glob("*.yaml"))
