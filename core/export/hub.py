"""Hub: a model card and a folder ready to push, and the push itself through huggingface_hub.

The card is built with ModelCard/ModelCardData: `base_model` is the real Hub id (never a
local path), `library_name: peft` for adapters, the datasets when they are Hub ids, the
recipe, the final/best losses from metrics.jsonl, the evaluation report (verdict first) and
A/B results when the run has them.
Uploading is `HfApi(endpoint, token).create_repo` + `upload_folder`. The token comes from
the caller or HF_TOKEN and is never written to a file, a log, a manifest or a message:
every error text is scrubbed of it. This module knows nothing about merging or GGUF.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from core.clients import hub_api, resolve_token
from core.errors import StudioError
from core.eval.metrics import aggregate, metric_table
from core.models import HUB_ID
from core.workspace import atomic_path

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

class HubError(StudioError, RuntimeError):
    """A push that could not happen; the message says why and where the prepared folder is."""


@dataclass
class CardFacts:
    """What the card says; gathered by core.export.pipeline from the run folder."""

    base_model: str | None
    kind: str  # adapter | model | gguf
    name: str
    recipe: dict | None = None
    datasets: list[str] = field(default_factory=list)
    losses: dict = field(default_factory=dict)
    ab_results: list[dict] = field(default_factory=list)
    eval_report: dict | None = None  # the regression guard's report (core.eval.report), when the run has one
    gguf_files: list[str] = field(default_factory=list)


def losses(records: list[dict]) -> dict:
    """Final train loss, final and best eval loss (with their steps) from metrics records."""
    out: dict = {}
    for row in records:
        loss = row.get("loss")
        if not isinstance(loss, (int, float)):
            continue
        if row.get("split") == "eval":
            out["final_eval_loss"], out["final_eval_step"] = loss, row.get("step")
            if loss < out.get("best_eval_loss", float("inf")):
                out["best_eval_loss"], out["best_eval_step"] = loss, row.get("step")
        else:
            out["final_train_loss"], out["final_train_step"] = loss, row.get("step")
    return out


def hub_datasets(recipe: dict | None) -> list[str]:
    """The recipe's dataset when it is a Hub id (a local file is named in the card text instead)."""
    path = ((recipe or {}).get("data") or {}).get("path") or ""
    return [path] if HUB_ID.match(path) and not Path(path).exists() else []


def model_card(facts: CardFacts) -> ModelCard:
    from huggingface_hub import ModelCard, ModelCardData

    tags = ["tuning-studio", "text-generation"]
    tags += {"adapter": ["lora"], "gguf": ["gguf"], "model": []}[facts.kind]
    data = ModelCardData(
        base_model=facts.base_model,
        library_name={"adapter": "peft", "model": "transformers", "gguf": "gguf"}[facts.kind],
        datasets=facts.datasets or None, tags=tags, pipeline_tag="text-generation",
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_card_body(facts)}")


def _card_body(facts: CardFacts) -> str:
    what = {"adapter": "a LoRA adapter for", "model": "a fine-tuned version of", "gguf": "a GGUF export of a fine-tune of"}[facts.kind]
    base = f"[{facts.base_model}](https://huggingface.co/{facts.base_model})" if facts.base_model else "an unknown base model"
    parts = [f"# {facts.name}", "", f"This is {what} {base}, trained with Tuning Studio."]
    recipe = facts.recipe or {}
    data_path = (recipe.get("data") or {}).get("path")
    if data_path and not facts.datasets:
        parts += ["", f"Training data: local file `{Path(data_path).name}` (not on the Hub)."]
    if facts.losses:
        parts += ["", "## Training results", "", "| metric | value | step |", "| --- | --- | --- |"]
        for key in ("final_train_loss", "final_eval_loss", "best_eval_loss"):
            if key in facts.losses:
                step = facts.losses.get(key.replace("_loss", "_step"))
                parts.append(f"| {key.replace('_', ' ')} | {facts.losses[key]:.4f} | {step if step is not None else ''} |")
    if facts.eval_report:
        from core.eval.report import to_markdown

        parts += ["", *to_markdown(facts.eval_report, heading="##")]
    parts += _ab_section(facts.ab_results)
    if facts.gguf_files:
        parts += ["", "## Files", ""] + [f"- `{name}`" for name in facts.gguf_files]
    if recipe:
        parts += ["", "## Recipe", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).rstrip(), "```"]
    return "\n".join(parts) + "\n"


def _ab_section(rows: list[dict]) -> list[str]:
    """The run's latest A/B over a prompt set (core.eval.metrics rows, one per prompt and side):
    each metric per side, then the first answers side by side."""
    rows = [row for row in rows if isinstance(row, dict) and "side" in row and "prompt_id" in row]
    if not rows:
        return []

    table = aggregate(rows)
    sides = [summary["side"] for summary in table]
    parts = ["", "## A/B comparison with the base model", "",
             f"{table[0]['prompts']} prompts, answered by each side with the same settings (Tuning Studio's A/B).", "",
             "| metric | " + " | ".join(sides) + " |", "| --- |" + " --- |" * len(sides)]
    for metric in metric_table():
        values = [summary.get(metric.key) for summary in table]
        if any(value is not None for value in values):
            parts.append(f"| {metric.label} | " + " | ".join("–" if v is None else metric.show(v) for v in values) + " |")
    answers: dict[str, dict] = {}
    for row in rows:
        answers.setdefault(row["prompt_id"], {"prompt": row.get("prompt")})[row["side"]] = row.get("answer")
    parts += ["", "| prompt | " + " | ".join(sides) + " |", "| --- |" + " --- |" * len(sides)]
    for entry in list(answers.values())[:5]:
        parts.append("| " + " | ".join(_cell(entry.get(key)) for key in ["prompt", *sides]) + " |")
    return parts


def _cell(value) -> str:
    text = str(value if value is not None else "").replace("\n", " ").replace("|", "\\|")
    return text[:200] + ("…" if len(text) > 200 else "")


def prepare_folder(source: Path, target: Path, facts: CardFacts, *, files: list[Path] | None = None) -> Path:
    """Copy what gets pushed (a folder, or only `files`) into `target` with README.md; atomic."""
    with atomic_path(target) as partial:
        if files is None:
            shutil.copytree(source, partial, ignore=shutil.ignore_patterns("*.partial", "optimizer.pt", "scheduler.pt", "rng_state*.pth"))
        else:
            partial.mkdir(parents=True)
            for item in files:
                shutil.copy2(item, partial / Path(item).name)
        model_card(facts).save(partial / "README.md")
    return target


def push(folder: Path, repo_id: str, *, token: str | None = None, private: bool = True,
         endpoint: str | None = None) -> str:
    """Create the repo (if needed) and upload the folder; return the commit URL."""
    from huggingface_hub import constants

    secret = resolve_token(token)
    keep = f"The prepared folder stays at {folder}; push it later from the Export tab or with `studio export ... --hub {repo_id}`."
    if not HUB_ID.match(repo_id or ""):
        raise HubError(f"'{repo_id}' is not a Hub repository id; use owner/name, e.g. your-name/my-adapter. {keep}")
    if not secret:
        raise HubError(f"No Hugging Face token: paste one in the token field or set HF_TOKEN (a token with write access). {keep}")
    if constants.is_offline_mode():
        raise HubError(f"Hub access is switched off here (HF_HUB_OFFLINE=1), so nothing was uploaded. {keep}")
    api = hub_api(secret, endpoint)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                 commit_message="Upload from Tuning Studio")
    except Exception as error:
        raise HubError(f"Pushing to {repo_id} failed: {_scrub(f'{type(error).__name__}: {error}', secret)}. {keep}") from None
    return str(getattr(info, "commit_url", info))


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text
