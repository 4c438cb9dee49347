"""The Chat tab's A/B over a prompt set: every prompt through the base and each tuned side, with
the per-prompt and aggregate tables growing as answers come and the results saved for download.
studio.ui.chat.eval_view builds the report on top of it; the tab lays out its widgets."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from core.eval.metrics import aggregate, load_patterns, metric_table, per_prompt_table
from core.eval.prompts import bundled_prompt_sets
from core.workspace import inside
from studio.ui.chat.sides import engine_with_tuned, problem, sampling_from, tuned_path
from studio.ui.problems import EXPECTED, unexpected
from studio.ui.zerogpu import gpu

AGGREGATE_HEADERS = ["metric", "base", "tuned"]


def prompt_set_choices() -> list[tuple[str, str]]:
    return [(path.stem.replace("_", " "), str(path)) for path in bundled_prompt_sets()]


def _ab_sides(tuned_choice, compare: list[str] | None) -> dict[str, str | None]:
    from core.eval.ab import sides_for

    return sides_for(tuned_path(tuned_choice), compare=[tuned_path(path) for path in compare or []])


def _tables(rows, patterns):
    """The per-prompt table (answers get the width) and the aggregate, as DataFrames."""
    import pandas as pd

    patterns = patterns or load_patterns()  # read once for all three tables
    wide = pd.DataFrame(per_prompt_table(rows, patterns))
    sides = max(1, (len(wide.columns) - 3) // 2)
    widths = ["6%", "7%", "13%"] + [f"{50 / sides:.1f}%", f"{24 / sides:.1f}%"] * sides
    return gr.update(value=wide, column_widths=widths), aggregate_view(aggregate(rows, patterns), patterns)


def aggregate_view(table: list[dict], patterns=None):
    """The aggregate turned for reading: one row per metric, one column per side, values as
    percentages, seconds or counts; a metric with nothing to measure (no should_refuse, no
    keywords in the set) shows a dash. Downloads keep the raw numbers."""
    import pandas as pd

    lines = [{"metric": "prompts", **{row["side"]: str(row["prompts"]) for row in table}}] if table else []
    for metric in metric_table(patterns):
        if table and metric.key in table[0]:
            label = metric.label + (f" ({metric.prefer} is better)" if metric.prefer and metric.unit == "%" else "")
            lines.append({"metric": label, **{row["side"]: metric.show(row[metric.key]) for row in table}})
    if table:
        lines.append({"metric": "errors", **{row["side"]: str(row["errors"]) for row in table}})
    return pd.DataFrame(lines, columns=["metric"] + [row["side"] for row in table])


def _downloads(rows: list[dict], tuned: str | None) -> list[str]:
    """Save the results (core.eval.report.save_results) and offer the workspace's exports/ab-<time>
    .csv and .jsonl: the exports folder is what the server serves for download (launch_kwargs), so
    nothing is copied to a temporary folder that no one removes."""
    from core.eval.report import save_results

    return [str(saved) for saved in save_results(rows, tuned)[:2]]


@gpu  # ZeroGPU: a GPU is attached for the whole prompt set (no-op elsewhere)
def run_ab(set_choice, upload, patterns_upload, base_model, tuned_choice, compare, system, temperature, top_p,
           max_new_tokens, seed):
    """Run the prompt set through every side; yields (status, per-prompt table, aggregate, files)."""
    from core.eval.ab import run_prompt_set
    from core.eval.guard import load_prompts

    try:
        source = upload or (str(inside(set_choice)) if set_choice else None)
        if not source:
            yield "⚠️ Pick a bundled prompt set or upload a JSONL file.", None, None, None
            return
        prompts, bad, _ = load_prompts(source)  # a set pointing at documents gets BM25 contexts
        patterns = load_patterns(patterns_upload) if patterns_upload else load_patterns()
        sampling = sampling_from(system, temperature, top_p, max_new_tokens, seed).check()
        sides = _ab_sides(tuned_choice, compare)
        yield "Loading the model…", None, None, None
        engine, _ = engine_with_tuned(base_model, None)
    except EXPECTED as error:  # bad file, bad pattern list, wrong model: say what, run nothing
        yield problem(error), None, None, None
        return
    except Exception as error:  # last resort: transformers/peft raise many kinds on a broken model folder
        yield "⚠️ " + unexpected(error, "preparing the A/B run"), None, None, None
        return
    skipped = "".join(f"\n- skipped line {row.line}: {row.reason}" for row in bad)
    if not prompts:
        yield f"⚠️ No usable prompts in {Path(source).name}.{skipped}", None, None, None
        return
    rows = []
    try:
        for progress in run_prompt_set(engine, prompts, sampling, sides, patterns):
            rows.append(progress.row)
            yield (f"Running **{progress.side}**: {progress.done} of {progress.total} answers.{skipped}",
                   *_tables(rows, patterns), None)
    except Exception as error:  # noqa: BLE001 - last resort mid-run (a side's weights failing to load): keep what finished
        message = problem(error) if isinstance(error, EXPECTED) else "⚠️ " + unexpected(error, "the A/B run")
        yield message + skipped, *(_tables(rows, patterns) if rows else (None, None)), None
        return
    yield (f"Done: {len(prompts)} prompts × {len(sides)} sides ({', '.join(sides)}).{skipped}",
           *_tables(rows, patterns), _downloads(rows, next((path for path in sides.values() if path), None)))
