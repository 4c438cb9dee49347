"""The evaluation report: base vs tuned per metric with n and a paired interval, per topic and
per mode, retrieval once, held-out loss, the judge, and the verdict; as JSON, Markdown, CSV, JSONL.

Input is result rows (core.eval.metrics.score, one per prompt and side) and the optional parts
measured elsewhere. Every change is tuned minus base over the prompts both sides have a value
for, with core.eval.stats' interval. This module knows nothing about models or gradio.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from core.chat.engine import BASE
from core.eval import stats
from core.eval.metrics import METRICS, PatternSet, aggregate, load_patterns, metric_table
from core.eval.verdict import verdict
from core.train.run_dir import AB_DIR
from core.workspace import read_json, workspace, write_atomic

REPORT_FILE, MARKDOWN_FILE = "report.json", "report.md"


def metric_specs(patterns: PatternSet | None = None) -> list[tuple[str, str, str, str | None]]:
    """(key, label, unit, prefer) of every metric the report compares (core.eval.metrics.METRICS)."""
    return [(m.key, m.label, m.unit, m.prefer) for m in metric_table(patterns) if m.in_report]


TOPIC_SPECS = [(m.key, m.label, m.unit, m.prefer) for m in METRICS if m.per_topic]


def _scores(rows: list[dict], side: str, key: str, order: list[str]) -> list:
    by_prompt = {row["prompt_id"]: row.get(key) for row in rows if row["side"] == side}
    return [None if by_prompt.get(pid) is None else float(by_prompt[pid]) for pid in order]


def compare(rows: list[dict], tuned: str, specs, *, base: str = BASE) -> list[dict]:
    """One line per metric with a value on both sides: n, base, tuned, change and its interval."""
    order = list(dict.fromkeys(row["prompt_id"] for row in rows))
    lines = []
    for key, label, unit, prefer in specs:
        found = stats.change(_scores(rows, base, key, order), _scores(rows, tuned, key, order))
        if found.n:
            lines.append({"metric": key, "label": label, "unit": unit, "prefer": prefer, **found.to_dict(),
                          **stats.better_worse(found, prefer)})
    return lines


def _grouped(rows: list[dict], field: str, tuned: str, *, base: str = BASE) -> list[dict]:
    groups = list(dict.fromkeys(row.get(field) for row in rows if row.get(field)))
    table = []
    for group in groups:
        mine = [row for row in rows if row.get(field) == group]
        entry = {field if field != "category" else "topic": group,
                 "n": len({row["prompt_id"] for row in mine if row["side"] == base})}
        for line in compare(mine, tuned, TOPIC_SPECS, base=base):
            entry[line["metric"]] = {k: line[k] for k in ("base", "tuned", "delta", "n")}
        table.append(entry)
    return table


def build_report(rows: list[dict], *, patterns: PatternSet | None = None, tuned: str | None = None,
                 prompt_set: str = "", settings: dict | None = None, retrieval: dict | None = None,
                 heldout: dict | None = None, judge: dict | None = None, recipe: dict | None = None,
                 leaked: list[str] | None = None, benchmarks: dict | None = None) -> dict:
    """Everything a person needs to decide whether the tuning worked, in one dict. `leaked`: the
    prompts the run's training data holds (core.eval.prompts.leaked_prompts); their rows are
    marked and every metric is also compared without them."""
    patterns = patterns or load_patterns()
    sides = list(dict.fromkeys(row["side"] for row in rows))
    tuned = tuned or next((side for side in sides if side != BASE), None)
    report = {
        "prompt_set": prompt_set, "prompts": len({row["prompt_id"] for row in rows}), "sides": sides,
        "tuned": tuned, "settings": settings or {}, "created_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "aggregate": aggregate(rows, patterns), "metrics": [], "per_topic": [], "by_mode": [],
        "outcomes": _outcomes(rows), "retrieval": retrieval, "heldout": heldout, "judge": judge,
        "benchmarks": benchmarks,
    }
    if tuned and BASE in sides:
        report["metrics"] = compare(rows, tuned, metric_specs(patterns))
        report["per_topic"] = _grouped(rows, "category", tuned)
        report["by_mode"] = _grouped(rows, "mode", tuned)
    if leaked is not None:
        report["leakage"] = _leakage(rows, leaked, tuned, patterns, sides)
    report["verdict"] = verdict(report, recipe)
    if leaked:
        shown = ", ".join(leaked[:5]) + (" ..." if len(leaked) > 5 else "")
        report["verdict"]["details"].append(
            f"{len(leaked)} of {report['prompts']} prompts are in the run's training data ({shown}): on those the tuned "
            "side may recite what it saw. The leakage table compares every metric without them.")
    return report


def _leakage(rows: list[dict], leaked: list[str], tuned: str | None, patterns, sides: list[str]) -> dict:
    """The leaked prompts, their rows marked `leaked`, and the comparison without them."""
    held = set(leaked)
    for row in rows:
        row["leaked"] = row["prompt_id"] in held
    found = {"prompts": list(leaked), "n": len(leaked), "metrics_without": []}
    if held and tuned and BASE in sides:
        found["metrics_without"] = compare([row for row in rows if row["prompt_id"] not in held], tuned,
                                           metric_specs(patterns))
    return found


def leakage_table(report: dict) -> list[dict]:
    """Each metric's change over all prompts and over the prompts the training data does not hold."""
    without = {line["metric"]: line for line in (report.get("leakage") or {}).get("metrics_without", [])}
    return [{"metric": line["label"], "change, all prompts": _delta(line), "n": line["n"],
             "change without the leaked prompts": _delta(without[line["metric"]]) if line["metric"] in without else "–",
             "n without": without[line["metric"]]["n"] if line["metric"] in without else 0}
            for line in report["metrics"]]


def _outcomes(rows: list[dict]) -> dict:
    """Per side, how many answers ended which way (substantive, cut off inside <think>, ...)."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        side = counts.setdefault(row["side"], {})
        side[row.get("outcome", "substantive")] = side.get(row.get("outcome", "substantive"), 0) + 1
    return counts


# ---- Markdown ------------------------------------------------------------------------------

def _value(value, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "%":
        return f"{value * 100:.1f}%"
    return f"{value:.2f} s" if unit == "s" else f"{value:.1f}"


def _delta(line: dict) -> str:
    if line["delta"] is None:
        return "–"
    scale, suffix = (100, " pts") if line["unit"] == "%" else (1, " s" if line["unit"] == "s" else "")
    interval = f" [{line['low'] * scale:+.1f}, {line['high'] * scale:+.1f}]" if line["low"] is not None else ""
    mark = " ⚑" if line["beyond_uncertainty"] else ""
    return f"{line['delta'] * scale:+.1f}{suffix}{interval}{mark}"


def metrics_table(report: dict) -> list[dict]:
    """The headline table as display rows: metric, n, base, tuned, change [95% interval]."""
    return [{"metric": line["label"], "n": line["n"], "base": _value(line["base"], line["unit"]),
             "tuned": _value(line["tuned"], line["unit"]), "change [95% CI]": _delta(line),
             stats.BETTER_WORSE: _better_worse_text(line)} for line in report["metrics"]]


def _better_worse_text(line: dict) -> str:
    if line.get("better") is None:
        return f"no better direction ({line['ties']} same)"
    return f"{line['better']} / {line['worse']} / {line['same']}"


def topic_table(report: dict, key: str = "per_topic") -> list[dict]:
    field = "topic" if key == "per_topic" else "mode"
    rows = []
    for entry in report.get(key) or []:
        row = {field: entry[field], "n": entry["n"]}
        for metric, label, _, _ in TOPIC_SPECS:
            if metric in entry:
                value = entry[metric]
                row[label] = (f"{_value(value['base'], '%')} → {_value(value['tuned'], '%')} "
                                                 f"({value['delta'] * 100:+.1f} pts)")
        rows.append(row)
    return rows


def _md_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def escape(text) -> str:
        return "–" if text is None else str(text).replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
            + ["| " + " | ".join(escape(row.get(c, "")) for c in columns) + " |" for row in rows])


def safe_markdown(text: str) -> str:
    """Markdown renderers drop unknown tags such as <think>; show it as code instead."""
    return str(text).replace("`<think>`", "<think>").replace("<think>", "`<think>`")


def to_markdown(report: dict, *, heading: str = "#") -> list[str]:
    """The report as Markdown lines: verdict first, then the tables (used by the model card too)."""
    return [safe_markdown(line) for line in _markdown_lines(report, heading)]


def _markdown_lines(report: dict, heading: str) -> list[str]:
    v = report["verdict"]
    lines = [f"{heading} Evaluation: base vs {report.get('tuned') or 'tuned'}", ""]
    if report["prompts"]:
        lines += [(f"Prompt set `{report.get('prompt_set') or '?'}`, {report['prompts']} prompts, same prompts, settings and "
                   "seed for both sides. Change = tuned − base with a 95% paired bootstrap interval; ⚑ = beyond that interval."), ""]
    lines += [f"**Verdict:** {v['headline']}"]
    lines += [f"- {item}" for item in v["details"]]
    if report["metrics"]:
        lines += ["", *_md_table(metrics_table(report))]
    leakage = report.get("leakage") or {}
    if leakage.get("n"):
        lines += ["", f"{heading}# Evaluation leakage", "",
                  (f"{leakage['n']} of {report['prompts']} prompts are in the run's training data: "
                   + ", ".join(f"`{prompt}`" for prompt in leakage["prompts"][:20])
                   + (" ..." if leakage["n"] > 20 else "") + ". Each metric with and without them:"),
                  "", *_md_table(leakage_table(report))]
    if report.get("retrieval"):
        r = report["retrieval"]
        lines += ["", (f"Retrieval (BM25, same for both sides): MRR {r['mrr']:.3f}, hit@{r['k']} {r['hit_at_k']:.0%} "
                       f"over {r['n']} prompts and {r['documents']} documents.")]
    for key, title in (("per_topic", "Per topic"), ("by_mode", "By mode")):
        if report.get(key):
            lines += ["", f"{heading}# {title}", "", *_md_table(topic_table(report, key))]
    if report.get("heldout"):
        lines += ["", f"{heading}# Held-out loss", "", *_md_table(report["heldout"].get("rows", []))]
    if report.get("benchmarks"):
        lines += ["", f"{heading}# General skills (lm-evaluation-harness)", "",
                  "Tuned − base on the same items, with a 95% paired interval; ⚑ forgot = the whole interval below zero.",
                  "", *_md_table(benchmark_table(report))]
        if len(report["benchmarks"]["rows"]) > 1:
            lines += ["", "Every kept result (the forgetting curve):", "", *_md_table(benchmark_curve_table(report))]
    if report.get("judge"):
        j = report["judge"]
        lines += ["", f"{heading}# Judge ({j['model']})", "",
                  f"Tuned better {j['tuned']}, base better {j['base']}, ties {j['ties']} (asked in both orders)."]
        if j.get("agreement") is not None:
            lines.append(f"Agrees with the person's picks in the Chat tab {j['agreement']:.0%} of {j['agreement_n']} times.")
    return lines


def _task(name: str) -> str:
    """The probe's parts by their own names ('studio_probe_arithmetic' → 'arithmetic'); others as lm-eval names them."""
    return name.removeprefix("studio_probe_")


def benchmark_table(report: dict) -> list[dict]:
    """The judged weights' score per benchmark task: base, tuned, change with its interval."""
    bench = report.get("benchmarks") or {}
    if not bench.get("rows"):
        return []
    table = []
    for task, line in bench["rows"][0]["changes"].items():
        table.append({"task": _task(task), "metric": line["metric"], "items": line["n"],
                      "base": f"{line['base'] * 100:.1f} ± {line['base_stderr'] * 100:.1f}",
                      "tuned": f"{line['tuned'] * 100:.1f} ± {line['tuned_stderr'] * 100:.1f}",
                      "change (points)": f"{line['delta'] * 100:+.1f} [{line['low'] * 100:+.1f}, {line['high'] * 100:+.1f}]",
                      "": "⚑ forgot" if line["forgot"] else "learned" if line["learned"] else ""})
    return table


def forgetting_curve(report: dict | None) -> list[dict]:
    """The benchmark score (points) of base (step 0) and each kept checkpoint, by step: where a run
    learned its task without forgetting. [{step, weights, task: score, ...}]"""
    bench = (report or {}).get("benchmarks")
    if not bench:
        return []
    points = [{"step": 0, "weights": "base", **{task: s["score"] * 100 for task, s in bench["base"].items()}}]
    for row in bench["rows"]:
        if row["weights"].startswith("checkpoint-") and row["weights"].split("-")[-1].isdigit():
            points.append({"step": int(row["weights"].split("-")[-1]), "weights": row["weights"],
                           **{task: line["tuned"] * 100 for task, line in row["changes"].items()}})
    return sorted(points, key=lambda point: point["step"])


def benchmark_curve_table(report: dict) -> list[dict]:
    """Each result's score per task (points), base first: where the forgetting set in."""
    bench = report.get("benchmarks") or {}
    rows = [{"weights": "base", **{_task(task): f"{s['score'] * 100:.1f}" for task, s in bench.get("base", {}).items()}}]
    for row in bench.get("rows", []):
        rows.append({"weights": row["weights"] + (f" (= {row['same_as']})" if row.get("same_as") else ""),
                     **{_task(task): f"{line['tuned'] * 100:.1f}" + (" ⚑" if line["forgot"] else "")
                        for task, line in row["changes"].items()}})
    return rows


# ---- files ---------------------------------------------------------------------------------

def export(rows: list[dict], path: str | Path) -> Path:
    """Write result rows as CSV (by extension .csv) or JSONL (anything else)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        buffer = io.StringIO()
        columns = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(path, buffer.getvalue())
    else:
        write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def save_report(report: dict, rows: list[dict], folder: str | Path) -> list[Path]:
    """report.json, report.md, rows.csv and rows.jsonl in `folder`."""
    folder = Path(folder)
    write_atomic(folder / REPORT_FILE, json.dumps(report, indent=2, ensure_ascii=False, default=str))
    write_atomic(folder / MARKDOWN_FILE, "\n".join(to_markdown(report)) + "\n")
    return [folder / REPORT_FILE, folder / MARKDOWN_FILE, export(rows, folder / "rows.csv"), export(rows, folder / "rows.jsonl")]


def read_report(folder: str | Path) -> dict | None:
    return read_json(Path(folder) / REPORT_FILE) or None


def run_folder_of(path: str | Path | None) -> Path | None:
    """The run folder (STUDIO_HOME/runs/<id>) a tuned path lives in, or None for anything else."""
    if not path:
        return None
    runs_root = workspace().runs.resolve()
    try:
        relative = Path(path).expanduser().resolve().relative_to(runs_root)
    except ValueError:
        return None
    return runs_root / relative.parts[0] if relative.parts else None


def save_results(rows: list[dict], tuned: str | Path | None = None) -> list[Path]:
    """Keep an A/B run: exports/ab-<time>.csv and .jsonl for download, and, when the tuned side
    is a run's adapter or checkpoint, runs/<id>/ab/ab-<time>.jsonl, which the run's model card
    reports on export."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    saved = [export(rows, workspace().exports / f"ab-{stamp}{suffix}") for suffix in (".csv", ".jsonl")]
    run = run_folder_of(tuned)
    if run is not None and run.is_dir():
        saved.append(export(rows, run / AB_DIR / f"ab-{stamp}.jsonl"))
    return saved


def format_aggregate(table: list[dict]) -> str:
    """The aggregate as plain text for a terminal: one line per metric, one column per side."""
    if not table:
        return "(no results)"
    metrics = [key for key in table[0] if key != "side"]
    header = ["metric"] + [str(row["side"]) for row in table]
    lines = [header] + [[metric] + [_cell(row.get(metric)) for row in table] for metric in metrics]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in lines)


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)
