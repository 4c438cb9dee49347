"""The Train tab's GRPO panel: the reward preview (sample, score, look before training) and,
while a GRPO run trains, its charts (each reward's mean and spread, the total, KL, completion
length, clip ratio) with the sampled completions of the latest logging steps in a table.

Handlers are plain functions the tab wires up and the tests call; they read run folders and
recipes through core only. Nothing here is shown for SFT or DPO runs.
"""

from __future__ import annotations

import gradio as gr

from core import recipes
from core.hosting import enforce_demo_limits
from core.train import reward_preview, run_dir
from studio.ui import visitor
from studio.ui.language import our_words, t
from studio.ui.train import charts as train_charts
from studio.ui.train.form import recipe_from_yaml

TABLE_HEADERS = ["step", "prompt", "completion", "total", "rewards"]
SIDE_CHARTS = (("kl", "KL to the reference", "#ff7f0e"), ("completions/mean_length", "Completion length (tokens)", "#8c564b"),
               ("clip_ratio/region_mean", "Clip ratio", "#7f7f7f"))
PREVIEW_HEADERS = ["prompt", "sample", "completion", "total", "rewards"]


def is_grpo(metrics: list[dict]) -> bool:
    return any("reward" in record for record in metrics)


def _rewards_text(rewards: dict) -> str:
    return ", ".join(f"{name} {'-' if value is None else f'{value:.2f}'}" for name, value in rewards.items())


def completion_rows(run_path: str, last_steps: int = 3) -> list[list]:
    """The sample table: the completions of the last few logging steps, newest first."""
    rows = run_dir.read_completions(run_path, last_steps=last_steps) if run_path else []
    out = []
    for row in reversed(rows):
        total = row.get("total")
        out.append([row.get("step"), row.get("prompt", "")[:300], row.get("completion", "")[:600],
                    "-" if total is None else round(total, 3), _rewards_text(row.get("rewards") or {})])
    return out


def grpo_updates(metrics: list[dict], run_path: str) -> list:
    """Updates for [panel, rewards chart, KL, length, clip ratio, completions table]."""
    if not is_grpo(metrics):
        return [gr.update(visible=False)] + [gr.update()] * 5
    figures = [train_charts.grpo_side_figure(metrics, key, title, colour) for key, title, colour in SIDE_CHARTS]
    return [gr.update(visible=True), train_charts.grpo_rewards_figure(metrics), *figures, completion_rows(run_path)]


def preview_rewards(yaml_text: str, prompts: float, samples: float):
    """The preview button: (summary Markdown, table rows)."""
    try:
        recipe = enforce_demo_limits(recipe_from_yaml(yaml_text))
        visitor.dataset(str(recipe.dataset_path()))  # the dataset and model a visitor names stay in the workspace
        recipe.model.name = visitor.model(recipe.model.name)
        result = reward_preview.preview(recipe, prompts=_count(prompts, 1, 8), samples=_count(samples, 2, 8))
    except (recipes.RecipeError, *visitor.Refused, LookupError, RuntimeError, OSError) as error:
        return f"⚠️ {error}", []
    rows = [[row["prompt_index"] + 1, i % result["samples_per_prompt"] + 1, row["completion"][:600],
             "-" if row["total"] is None else round(row["total"], 3), _rewards_text(row["rewards"])]
            for i, row in enumerate(result["rows"])]
    return summary_markdown(result), rows


def _count(value, low: int, high: int) -> int:
    return max(low, min(high, int(value or low)))


def summary_markdown(result: dict) -> str:
    lines = [(f"**Preview:** {result['prompts']} prompts x {result['samples_per_prompt']} samples from "
             f"`{result['model']}` ({result['generated_tokens']} tokens in {result['seconds']} s)."), "",
             "| reward | weight | mean | spread | scored |", "| --- | --- | --- | --- | --- |"]
    for name, weight in list(result["weights"].items()) + [("total", None)]:
        s = result["summary"][name]
        cells = ["-" if s[k] is None else f"{s[k]:.2f}" for k in ("mean", "std")]
        lines.append(f"| {name} | {'' if weight is None else f'{weight:g}'} | {cells[0]} | {cells[1]} | {s['scored']} |")
    total = result["summary"]["total"]
    if total.get("flat_groups"):
        lines.append(f"\n{total['flat_groups']} of {total['groups']} prompts got the same total in every sample: GRPO "
                     "learns nothing from such a group (raise grpo.temperature or make the reward finer).")
    lines += [f"\n- skipped {item['row']}: {item['reason']}" for item in result["skipped"][:10]]
    return "\n".join(lines)


def build_grpo_panel():
    """The preview (inside an accordion) and the run charts (hidden until a GRPO run logs).
    Returns (preview widgets, chart components in grpo_updates' order)."""
    with gr.Accordion(t("GRPO reward preview"), open=False):
        gr.Markdown(t("Sample completions for a few prompts from the recipe's model and score them with its rewards "
                    "before training."))
        with gr.Row():
            prompts = gr.Number(value=3, precision=0, label=t("Prompts"), minimum=1, maximum=8)
            samples = gr.Number(value=4, precision=0, label=t("Samples per prompt (K)"), minimum=2, maximum=8)
            button = gr.Button(t("Preview rewards"), elem_id="grpo-preview-button")
        summary = our_words(gr.Markdown("", elem_id="grpo-preview-summary"))
        table = gr.Dataframe(headers=PREVIEW_HEADERS, interactive=False, wrap=True, label=t("Sampled completions"),
                             column_widths=["8%", "8%", "58%", "8%", "18%"])
    with gr.Group(visible=False) as panel:
        rewards_plot = gr.Plot(label=t("Rewards"), elem_id="grpo-rewards-plot")
        with gr.Row():
            side = [gr.Plot(label=t(title)) for _, title, _ in SIDE_CHARTS]
        completions = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True,
                                   column_widths=["6%", "24%", "44%", "8%", "18%"],
                                   label=t("Sampled completions at the latest logging steps"), elem_id="grpo-completions")
    return (button, prompts, samples, summary, table), [panel, rewards_plot, *side, completions]
