"""The GRPO part of a recipe: sampling settings and the rewards with their weights.

A recipe with `training.method: grpo` carries a `grpo:` section; each reward under
`grpo.rewards` is switched on by being present, and its `weight` scales it in the total.
These are plain typed dataclasses with a docstring per field, built and checked by
core.recipes like every other section. This module knows nothing about trl or about how a
reward scores a completion (core.train.rewards does that).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal


@dataclass
class FormatReward:
    pattern: str = r"^<think>.+?</think>\s*\S"
    """Regular expression the completion must match (searched, dot matches newlines; anchor it with ^ and $)."""
    weight: float = 1.0
    """Weight of this reward in the total."""


@dataclass
class AnswerReward:
    field: str = "answer"
    """Dataset field that holds the reference answer."""
    mode: Literal["exact", "numeric", "keyword"] = "exact"
    """exact: the answer equals the reference; numeric: the last number is within tolerance;
    keyword: share of the reference's keywords found."""
    tolerance: float = 1e-6
    """Largest difference still counted as equal in numeric mode (relative to the reference when it is above 1)."""
    case_sensitive: bool = False
    """Compare letter case too (exact and keyword modes)."""
    weight: float = 1.0
    """Weight of this reward in the total."""


@dataclass
class LengthReward:
    min: int = 0
    """Shortest length that scores 1."""
    max: int = 200
    """Longest length that scores 1; beyond it the score falls linearly to 0 at twice this length."""
    unit: Literal["chars", "words", "tokens"] = "chars"
    """What is counted: characters, words, or generated tokens."""
    weight: float = 1.0
    """Weight of this reward in the total."""


@dataclass
class RefusalReward:
    field: str = "should_refuse"
    """Dataset field (true/false) that says whether the prompt should be refused."""
    patterns: str | None = None
    """Pattern list whose `refusal:` regexes detect a refusal (default: the bundled assets/patterns.yaml)."""
    weight: float = 1.0
    """Weight of this reward in the total."""


@dataclass
class JsonReward:
    schema: str | None = None
    """JSON Schema file the answer must also satisfy (types, required keys, enums); none: any valid JSON."""
    weight: float = 1.0
    """Weight of this reward in the total."""


@dataclass
class JudgeReward:
    model: str = "embedded"
    """Judge: a local model (embedded, a folder or a Hub id) or 'ollama:NAME' for a model served by Ollama."""
    rubric: str = "Is the answer correct, helpful and honest?"
    """What the judge grades; it answers with a score from 1 to 10, mapped to 0..1."""
    host: str | None = None
    """Ollama server address (default: OLLAMA_HOST, else http://127.0.0.1:11434)."""
    weight: float = 1.0
    """Weight of this reward in the total."""


@dataclass
class CustomReward:
    path: str = "rewards/my_reward.py"
    """Python file inside the workspace with the reward function (it runs code: refused in demo mode and on an open server)."""
    function: str = "reward"
    """Name of the function: reward(prompt: str, completion: str, row: dict) -> float | None."""
    weight: float = 1.0
    """Weight of this reward in the total."""


@dataclass
class RewardsSection:
    format: FormatReward | None = None
    """Completion matches a regular expression (1 or 0)."""
    answer: AnswerReward | None = None
    """Completion's answer matches a reference field (exact, numeric or keyword)."""
    length: LengthReward | None = None
    """Completion length falls inside a window."""
    refusal: RefusalReward | None = None
    """Refuses exactly when the row's should_refuse field says so."""
    json: JsonReward | None = None
    """Answer is valid JSON, optionally matching a schema."""
    judge: JudgeReward | None = None
    """A judge model grades the answer (slow: one judge call per completion)."""
    custom: CustomReward | None = None
    """Your own Python function from a file in the workspace."""


@dataclass
class GrpoSection:
    num_generations: int = 4
    """Completions sampled per prompt; their rewards are compared within the group."""
    max_completion_length: int = 128
    """Longest completion in tokens."""
    temperature: float = 1.0
    """Sampling temperature for the completions (higher: more varied groups)."""
    kl_beta: float = 0.0
    """KL penalty to the reference model (0: no reference model, trl's default and the fastest)."""
    epsilon: float = 0.2
    """Clipping range of the policy ratio."""
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = "dapo"
    """trl's loss aggregation (dapo is trl's default)."""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """Divide advantages by the reward spread of the group, of the batch, or not at all."""
    use_vllm: bool = False
    """Generate with vLLM through trl's own options (CUDA and the vllm package needed)."""
    vllm_mode: Literal["colocate", "server"] = "colocate"
    """vLLM in the training process (colocate) or a separate `trl vllm-serve` server."""
    preview_prompts: int = 3
    """Prompts the reward preview samples."""
    preview_samples: int = 4
    """Completions per prompt in the reward preview."""
    rewards: RewardsSection = field(default_factory=RewardsSection)
    """The rewards; each one present is used with its weight."""

    def active_rewards(self) -> list[tuple[str, object]]:
        """(name, settings) of each reward that is switched on, in a fixed order."""
        return [(name, value) for name, value in vars(self.rewards).items() if value is not None]


def reward_names() -> list[str]:
    """Every reward kind a recipe may switch on, in the section's order."""
    return [f.name for f in fields(RewardsSection)]


def grpo_checks(grpo: GrpoSection | None, method: str, batch_size: int, grad_accum: int, processes: int) -> list[tuple[bool, str, str]]:
    """(ok, dotted field, message) checks for core.recipes.validate."""
    if grpo is None:
        return [(method != "grpo", "grpo", ("is missing: a grpo recipe needs a grpo section with at least one reward "
                 "under grpo.rewards, e.g. grpo: {rewards: {format: {pattern: '^Answer: '}}}"))]
    active = grpo.active_rewards()
    per_step = batch_size * grad_accum * processes
    checks = [
        (method == "grpo", "grpo", "is set but training.method is not grpo; remove the section or set training.method: grpo"),
        (bool(active), "grpo.rewards", f"is empty: switch on at least one reward ({', '.join(reward_names())})"),
        (grpo.num_generations >= 2, "grpo.num_generations", "must be at least 2 (rewards are compared within a group)"),
        (per_step % max(1, grpo.num_generations) == 0, "training.batch_size",
         (f"x training.grad_accum ({per_step} completions a step) must be a multiple of grpo.num_generations "
         f"({grpo.num_generations}): each step holds whole groups")),
        (grpo.max_completion_length >= 1, "grpo.max_completion_length", "must be at least 1"),
        (grpo.temperature > 0, "grpo.temperature", "must be positive"),
        (grpo.kl_beta >= 0, "grpo.kl_beta", "must be 0 or more"),
        (grpo.epsilon > 0, "grpo.epsilon", "must be positive"),
        (grpo.preview_prompts >= 1, "grpo.preview_prompts", "must be at least 1"),
        (grpo.preview_samples >= 1, "grpo.preview_samples", "must be at least 1"),
    ]
    for name, settings in active:
        checks.append((settings.weight != 0, f"grpo.rewards.{name}.weight", "is 0: remove the reward instead"))
    length = grpo.rewards.length
    if length is not None:
        checks.append((0 <= length.min <= length.max and length.max > 0, "grpo.rewards.length",
                       f"needs 0 <= min <= max and max > 0, got min {length.min}, max {length.max}"))
    if grpo.rewards.answer is not None:
        checks.append((grpo.rewards.answer.tolerance >= 0, "grpo.rewards.answer.tolerance", "must be 0 or more"))
    return checks
