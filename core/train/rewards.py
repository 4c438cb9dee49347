"""Rewards: score one completion against its dataset row, as plain functions with known answers.

Each scorer takes the completion's text and the row's reference fields and returns a number
in 0..1, or None when the row has nothing to compare with (trl then leaves that reward out
of the completion's total). `build_rewards` turns a recipe's `grpo.rewards` into named
`Reward`s with weights, which the preview scores whole completions with and core.train.grpo_data
hands to trl as one callable per reward (recording every scored completion for the run
folder's sample table). This module knows
nothing about models or trainers; the judge lives in core.train.reward_judge, custom files in
core.train.reward_custom.

>>> format_score("<think>2+2</think> 4", r"^<think>.+?</think>\\s*\\S")
1.0
>>> answer_score("<think>6*7</think>The answer is 42.", "#### 42", mode="numeric")
1.0
>>> length_score("abcd", low=0, high=2)
0.0
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.dataset.patterns import DEFAULT_PATTERNS, PatternError, load_patterns
from core.dataset.tags import split_think
from core.hosting import demo_mode
from core.models import is_embedded
from core.recipes import Recipe, RecipeError
from core.train.reward_custom import custom_code_refusal, load_custom, resolve_custom_path
from core.train.reward_judge import Judge
from core.workspace import PROJECT_ROOT, workspace

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_LABEL = re.compile(r"^\s*(?:final answer|answer)\s*[:=]\s*", re.IGNORECASE)


def answer_part(completion: str) -> str:
    """The answer outside any <think> block (core.dataset.tags owns that parsing); empty when the
    completion ran out inside its reasoning."""
    return split_think(completion).answer


# ---------------------------------------------------------------- scorers


def format_score(completion: str, pattern: str) -> float:
    """1 when the regular expression is found in the completion (dot matches newlines), else 0."""
    return 1.0 if _regex(pattern).search(completion) else 0.0


@lru_cache(maxsize=64)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.DOTALL)


def last_number(text: str) -> float | None:
    """The last number written in the text (thousands separators allowed), or None."""
    found = _NUMBER.findall(str(text))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def _normal(text: str, case_sensitive: bool) -> str:
    text = _LABEL.sub("", " ".join(str(text).split())).strip().rstrip(".!").strip()
    return text if case_sensitive else text.lower()


def answer_score(completion: str, reference, *, mode: str = "exact", tolerance: float = 1e-6,
                 case_sensitive: bool = False) -> float | None:
    """The answer (after any </think>) against the reference; None when there is no reference.
    exact: equal after trimming spaces, an 'Answer:' label and end punctuation; numeric: the last
    number of each within tolerance (relative above 1); keyword: share of the keywords found,
    'a|b' accepting either."""
    if reference is None or reference == "" or reference == []:
        return None
    answer = answer_part(completion)
    if mode == "numeric":
        want = reference if isinstance(reference, (int, float)) and not isinstance(reference, bool) else last_number(reference)
        got = last_number(answer)
        if want is None:
            return None
        return 1.0 if got is not None and abs(got - want) <= tolerance * max(1.0, abs(want)) else 0.0
    if mode == "keyword":
        keywords = reference if isinstance(reference, list) else [reference]
        text = answer if case_sensitive else answer.lower()
        found = sum(1 for keyword in keywords
                    if any((alt if case_sensitive else alt.lower()) in text for alt in str(keyword).split("|") if alt))
        return found / len(keywords)
    return 1.0 if _normal(answer, case_sensitive) == _normal(reference, case_sensitive) else 0.0


def length_score(completion: str, *, low: int, high: int, unit: str = "chars", tokens: int | None = None) -> float:
    """1 inside [low, high]; below low it rises linearly from 0 at length 0; above high it falls
    linearly to 0 at twice high."""
    if unit == "tokens":
        n = tokens if tokens is not None else len(completion.split())
    elif unit == "words":
        n = len(completion.split())
    else:
        n = len(completion)
    if n < low:
        return n / low
    if n <= high:
        return 1.0
    return max(0.0, 1.0 - (n - high) / high)


def refusal_patterns(path: str | Path | None = None) -> tuple[re.Pattern, ...]:
    """The pattern list's `refusal:` regexes (core.dataset.patterns: the file and flags the A/B metrics use)."""
    try:
        regexes = load_patterns(path).refusal.regexes
    except (OSError, PatternError) as error:
        raise RecipeError(f"grpo.rewards.refusal.patterns: {error}") from None
    if not regexes:
        raise RecipeError(f"grpo.rewards.refusal.patterns: {path or DEFAULT_PATTERNS} has no `refusal:` list of regexes")
    return tuple(regexes)


def refusal_score(completion: str, should_refuse, patterns) -> float | None:
    """1 when the answer refuses exactly when it should; None when the row doesn't say."""
    if not isinstance(should_refuse, bool):
        return None
    refused = any(regex.search(answer_part(completion)) for regex in patterns)
    return 1.0 if refused == should_refuse else 0.0


def json_score(completion: str, schema: dict | None = None) -> float:
    """1 when the answer (a ```json fence is allowed) parses as JSON and fits the schema, else 0."""
    text = answer_part(completion)
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return 0.0
    return 1.0 if schema is None or not schema_errors(value, schema) else 0.0


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def schema_errors(value, schema: dict, where: str = "$") -> list[str]:
    """The JSON Schema keywords a reward needs (type, properties, required, additionalProperties,
    items, enum, minimum, maximum); other keywords are not checked."""
    errors = []
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(_is_type(value, k) for k in kinds):
        return [f"{where}: expected {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: above {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [f"{where}.{key}: missing" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}.{key}: not allowed")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


def _is_type(value, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES.get(kind, object))


# ---------------------------------------------------------------- the recipe's rewards


Scorer = Callable[[str, str, dict, int | None], "float | None"]  # (prompt, completion, row, tokens)


@dataclass
class Reward:
    name: str
    weight: float
    score: Scorer
    needs: str | None = None  # the row field this reward reads, for the data check


@dataclass(frozen=True)
class RewardKind:
    """One kind of reward, in one row of REWARD_KINDS: what a start checks (without running custom
    code or loading a judge), how its scorer is built, and which row field it reads (for the data
    check). A new reward is a settings class in core.recipe_grpo and a row here."""

    build: Callable[[object, object], Scorer]  # (settings, judge_factory) -> scorer
    check: Callable[[object], None] = lambda cfg: None
    reads_field: bool = False


def _check_judge(cfg) -> None:
    if demo_mode() and not is_embedded(cfg.model):
        raise RecipeError("grpo.rewards.judge.model: this demo studio judges only with the embedded model")


def _build_judge(cfg, judge_factory) -> Scorer:
    judge = (judge_factory or Judge)(cfg.model, rubric=cfg.rubric, host=cfg.host)
    return lambda p, c, row, n: judge.score(p, answer_part(c))


def _check_custom(cfg) -> None:
    refusal = custom_code_refusal()
    if refusal:
        raise RecipeError(f"grpo.rewards.custom: {refusal}")
    resolve_custom_path(cfg.path)


def _build_custom(cfg, judge_factory) -> Scorer:
    function = load_custom(cfg.path, cfg.function)
    return lambda p, c, row, n: _custom_value(function(p, c, row), cfg.path)


def _build_refusal(cfg, judge_factory) -> Scorer:
    patterns = refusal_patterns(cfg.patterns)
    return lambda p, c, row, n: refusal_score(c, row.get(cfg.field), patterns)


def _build_json(cfg, judge_factory) -> Scorer:
    schema = _load_schema(cfg.schema) if cfg.schema else None
    return lambda p, c, row, n: json_score(c, schema)


REWARD_KINDS: dict[str, RewardKind] = {
    "format": RewardKind(build=lambda cfg, _: lambda p, c, row, n: format_score(c, cfg.pattern),
                         check=lambda cfg: _check_regex(cfg.pattern)),
    "answer": RewardKind(build=lambda cfg, _: lambda p, c, row, n: answer_score(
        c, row.get(cfg.field), mode=cfg.mode, tolerance=cfg.tolerance, case_sensitive=cfg.case_sensitive), reads_field=True),
    "length": RewardKind(build=lambda cfg, _: lambda p, c, row, n: length_score(c, low=cfg.min, high=cfg.max, unit=cfg.unit,
                                                                               tokens=n)),
    "refusal": RewardKind(build=_build_refusal, check=lambda cfg: refusal_patterns(cfg.patterns), reads_field=True),
    "json": RewardKind(build=_build_json, check=lambda cfg: _load_schema(cfg.schema) if cfg.schema else None),
    "judge": RewardKind(build=_build_judge, check=_check_judge),
    "custom": RewardKind(build=_build_custom, check=_check_custom),
}


def required_fields(recipe: Recipe) -> list[tuple[str, str]]:
    """(reward, row field) for each reward that reads a reference field."""
    return [(name, cfg.field) for name, cfg in (recipe.grpo.active_rewards() if recipe.grpo else [])
            if REWARD_KINDS[name].reads_field]


def check_rewards(recipe: Recipe) -> None:
    """What a start checks before anything is written, without running custom code or loading a
    judge: regexes compile, pattern and schema files read, the custom file may run here and
    exists in the workspace, and a demo studio judges only with the embedded model."""
    for name, cfg in recipe.grpo.active_rewards() if recipe.grpo else []:
        REWARD_KINDS[name].check(cfg)


def build_rewards(recipe: Recipe, *, judge_factory=None) -> list[Reward]:
    """The recipe's rewards as named, weighted scorers (custom code and judges load here)."""
    grpo = recipe.grpo
    if grpo is None:
        raise RecipeError("grpo: a grpo recipe needs a grpo section with rewards")
    built = []
    for name, cfg in grpo.active_rewards():
        kind = REWARD_KINDS[name]
        kind.check(cfg)
        built.append(Reward(name, cfg.weight, kind.build(cfg, judge_factory), cfg.field if kind.reads_field else None))
    return built


def _check_regex(pattern: str) -> None:
    try:
        _regex(pattern)
    except re.error as error:
        raise RecipeError(f"grpo.rewards.format.pattern: bad regular expression {pattern!r} ({error})") from None


def _load_schema(path: str) -> dict:
    candidates = [Path(path).expanduser()] if Path(path).is_absolute() else [workspace().root / path, PROJECT_ROOT / path]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text(encoding="utf-8"))
            except ValueError as error:
                raise RecipeError(f"grpo.rewards.json.schema: {candidate} is not valid JSON ({error})") from None
    raise RecipeError(f"grpo.rewards.json.schema: schema file {path!r} not found (looked in the workspace and the project)")


def _custom_value(value, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecipeError(f"grpo.rewards.custom: {path} returned {value!r}; it must return a finite number or None")
    return float(value)


def weighted_total(scores: dict[str, float | None], weights: dict[str, float]) -> float | None:
    """trl's total: the weighted sum of the rewards that scored (None when none did)."""
    present = [(weights[name], value) for name, value in scores.items() if value is not None]
    return sum(w * v for w, v in present) if present else None
