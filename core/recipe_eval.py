"""The recipe's `eval` section: which prompt set guards a run, and whether it runs after training.

Kept beside core.recipes (which includes it as `Recipe.eval`) so the regression guard's settings
have one owner. Knows nothing about running an evaluation (core.eval.guard does that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.workspace import ASSETS, PROJECT_ROOT

PROMPT_SETS = ASSETS / "prompts"


@dataclass
class EvalSection:
    prompts: str | None = None
    """Prompt set (JSONL) that evaluates base vs the best checkpoint: a bundled set's file name or a path."""
    after_training: bool = False
    """Evaluate when the run completes and write the report into the run folder (never in demo mode)."""
    max_new_tokens: int = 256
    """Token budget per answer in that evaluation (reasoning models need room after <think>)."""
    heldout_loss: bool = True
    """Also measure loss and perplexity of base and each checkpoint on the run's eval split."""
    benchmarks: list[str] = field(default_factory=list)
    """General-skill benchmarks (lm-eval tasks) for base and each kept checkpoint: did it forget? studio_probe runs offline."""
    benchmark_limit: int = 0
    """At most this many items per benchmark task (0: all of them)."""


def prompts_path(section: EvalSection, recipe_source: Path | None = None) -> Path | None:
    """The prompt set's file: absolute as is; else next to the recipe, in the project, or bundled."""
    if not section.prompts:
        return None
    raw = Path(section.prompts).expanduser()
    if raw.is_absolute():
        return raw
    bases = ([recipe_source.parent] if recipe_source else []) + [Path.cwd(), PROJECT_ROOT, PROMPT_SETS]
    for base in bases:
        if (base / raw).is_file():
            return (base / raw).resolve()
    return (PROMPT_SETS / raw).resolve()
