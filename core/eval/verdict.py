"""The verdict: what improved, what regressed beyond its uncertainty, the likely cause, and the
recipe change to try, in sentences a person reads before any table.

Forgetting comes from the general-skill benchmarks (core.eval.benchmarks puts the tasks that
dropped beyond their interval in report["benchmarks"]["forgot"]): "forgot: arithmetic -12 points",
with the changes that keep more of what the model knew. Causes it can detect from the answers
alone: tuned answers that ran out of tokens inside <think> (the budget went to thinking), markdown
where prose was asked, refusals where answers were expected. Each cause maps to a concrete change (a larger token budget, fewer steps or a
lower learning rate, mixing general examples back in), with numbers from the run's recipe when
it is known. This module knows nothing about models, files or gradio; it reads a report dict.
"""

from __future__ import annotations

from core.eval.metrics import METRICS

MARKDOWN_PATTERN = "markdown_in_prose"
TIMING = tuple(metric.key for metric in METRICS if metric.unit == "s")
# The answers' quality at a glance (METRICS' headline flag): a worse value here is named even within
# its uncertainty, and these are the metrics a table of several runs shows beside the headline (see `outcome`).
HEADLINE_METRICS = tuple(metric.key for metric in METRICS if metric.headline)


def _points(line: dict) -> str:
    if line["unit"] == "%":
        return f"{line['delta'] * 100:+.1f} points ({line['base'] * 100:.0f}% → {line['tuned'] * 100:.0f}%, n={line['n']})"
    unit = " s" if line["unit"] == "s" else ""
    return f"{line['delta']:+.2f}{unit} ({line['base']:.2f} → {line['tuned']:.2f}, n={line['n']})"


def _better(line: dict) -> bool | None:
    if line["prefer"] is None or not line["delta"]:
        return None
    return (line["delta"] > 0) == (line["prefer"] == "more")


def _recipe_numbers(recipe: dict | None) -> dict:
    training = (recipe or {}).get("training") or {}
    return {"lr": training.get("learning_rate"), "steps": training.get("max_steps"), "epochs": training.get("epochs")}


def _fewer_steps(recipe: dict | None) -> str:
    numbers = _recipe_numbers(recipe)
    parts = []
    if isinstance(numbers["lr"], (int, float)):
        parts.append(f"training.learning_rate {numbers['lr']:g} → {numbers['lr'] / 2:g}")
    if isinstance(numbers["steps"], int) and numbers["steps"] > 0:
        parts.append(f"training.max_steps {numbers['steps']} → {max(1, numbers['steps'] // 2)}")
    elif isinstance(numbers["epochs"], (int, float)) and numbers["epochs"] > 1:
        parts.append(f"training.epochs {numbers['epochs']:g} → {max(1, numbers['epochs'] / 2):g}")
    return "fewer steps or a lower learning rate" + (f" ({', '.join(parts)})" if parts else "")


def causes(report: dict, recipe: dict | None = None) -> list[tuple[str, str]]:
    """(cause, change to try) for each problem the tuned answers show more often than the base's."""
    tuned, found = report.get("tuned"), []
    lines = {line["metric"]: line for line in report.get("metrics", [])}
    outcomes = report.get("outcomes", {})
    cut = outcomes.get(tuned, {}).get("cut_off_in_think", 0)
    if cut > outcomes.get("base", {}).get("cut_off_in_think", 0):
        budget = (report.get("settings") or {}).get("max_new_tokens")
        bigger = f" (max new tokens {budget} → {budget * 2})" if isinstance(budget, int) else ""
        found.append(((f"{cut} of {lines.get('substantive', {}).get('n', '?')} tuned answers ran out of tokens "
                       "inside <think>, so no answer followed"),
                      f"a larger token budget{bigger}, or shorter <think> blocks in the training data"))
    markdown = lines.get(MARKDOWN_PATTERN)
    if markdown and markdown["delta"] and markdown["delta"] > 0:
        found.append((f"markdown headers or bullets where prose was asked went up {_points(markdown)}",
                      "mix prose answers (general examples) back into the training data"))
    refusing = lines.get("refused_when_answer_expected")
    if refusing and refusing["delta"] and refusing["delta"] > 0:
        found.append((f"refusals where an answer was expected went up {_points(refusing)}",
                      f"{_fewer_steps(recipe)}, and mix answerable examples back in"))
    return found


def _forgot_text(item: dict) -> str:
    return (f"{item['name']} {item['delta'] * 100:+.1f} points ({item['base'] * 100:.0f}% → {item['tuned'] * 100:.0f}%, "
            f"n={item['n']})")


def _keep_more(recipe: dict | None) -> str:
    """The recipe changes that make a run forget less, with the recipe's own numbers."""
    rank = ((recipe or {}).get("lora") or {}).get("r")
    smaller = f", a smaller LoRA rank (lora.r {rank} → {max(1, rank // 2)})" if isinstance(rank, int) and rank > 4 else ""
    return f"{_fewer_steps(recipe)}{smaller}, or mix general examples into the training data"


def _with_forgetting(result: dict, report: dict, recipe: dict | None) -> dict:
    """The verdict with the benchmarks' forgetting (or their all-clear) added."""
    bench = report.get("benchmarks")
    if not bench:
        return result
    forgot = bench.get("forgot") or []
    tasks = len(bench.get("tasks") or [])
    if forgot:
        text = "Forgot: " + "; ".join(_forgot_text(item) for item in forgot)
        result["headline"] = text if not report.get("metrics") else f"{text}. {result['headline']}"
        change = _keep_more(recipe)
        result["suggestions"].append(change)
        result["details"].append(f"Try: {change}")
    elif not report.get("metrics"):
        result["headline"] = f"Nothing forgotten beyond its uncertainty on {tasks} general-skill benchmark tasks."
    else:
        result["details"].append(f"Nothing forgotten beyond its uncertainty on {tasks} general-skill benchmark tasks.")
    result["forgot"] = [item["task"] for item in forgot]
    return result


def verdict(report: dict, recipe: dict | None = None) -> dict:
    """{'headline', 'details', 'improved', 'regressed', 'causes', 'suggestions', 'forgot'}."""
    lines = report.get("metrics", [])
    if not lines:
        return _with_forgetting({"headline": "Nothing to compare: the report needs answers from the base and a tuned side.",
                                 "details": [], "improved": [], "regressed": [], "causes": [], "suggestions": []},
                                report, recipe)
    # Latency is reported, not judged: it moves with the machine's load between the two sides'
    # turns (the regression guard must stay quiet on a no-op adapter); `--fail-on latency_s` still gates it.
    quality = [line for line in lines if line["metric"] not in TIMING]
    improved = [line for line in quality if line["beyond_uncertainty"] and _better(line) is True]
    regressed = [line for line in quality if line["beyond_uncertainty"] and _better(line) is False]
    worse_within = [line for line in lines if not line["beyond_uncertainty"] and _better(line) is False
                    and line["metric"] in HEADLINE_METRICS]
    found = causes(report, recipe)
    suggestions = [change for _, change in found]
    if regressed and not found:
        suggestions.append(f"{_fewer_steps(recipe)}, or mix general examples back into the training data")
    if regressed:
        headline = "Regressed beyond its uncertainty: " + "; ".join(f"{line['label']} {_points(line)}" for line in regressed)
    elif improved:
        headline = "Improved, nothing regressed beyond its uncertainty."
    else:
        headline = f"No change beyond its uncertainty on {report.get('prompts', 0)} prompts."
    details = [f"Improved: {line['label']} {_points(line)}" for line in improved]
    details += [f"Worse, but within its uncertainty: {line['label']} {_points(line)}" for line in worse_within]
    details += [f"Likely cause: {cause}" for cause, _ in found]
    details += [f"Time per answer (depends on the load, not judged): {line['label']} {_points(line)}"
                for line in lines if line["metric"] in TIMING and line["beyond_uncertainty"]]
    details += [f"Try: {change}" for change in suggestions]
    return _with_forgetting({"headline": headline, "details": details, "improved": [line["metric"] for line in improved],
                             "regressed": [line["metric"] for line in regressed], "causes": [c for c, _ in found],
                             "suggestions": suggestions}, report, recipe)


def outcome(report: dict) -> dict:
    """The verdict in brief, small enough for a run's status.json and a table row: the headline,
    the regressed metrics (names, and each line), and the tuned side's value and change vs base
    for the headline metrics the report has."""
    v = report.get("verdict") or {}
    regressed = list(v.get("regressed") or [])
    keep = ("label", "unit", "prefer", "n", "base", "tuned", "delta", "low", "high", "beyond_uncertainty")
    lines = report.get("metrics", [])
    return {"headline": v.get("headline"), "regressed": regressed, "prompt_set": report.get("prompt_set"),
            "forgot": list(report["benchmarks"].get("forgot") or []) if report.get("benchmarks") else None,
            "metrics": {line["metric"]: {k: line.get(k) for k in keep} for line in lines if line["metric"] in HEADLINE_METRICS},
            "regressions": [{"metric": line["metric"], **{k: line.get(k) for k in keep}}
                            for line in lines if line["metric"] in regressed]}
