"""The evaluation report in the browser: verdict first, then the table with n and intervals,
per topic, bar charts per category, downloads (Markdown, CSV, JSONL, JSON).

Used by the Chat tab (its A/B section grows into the report, and a run's guard report shows up
front when a run is picked) and the Train tab (the open run's verdict). Handlers are plain
functions tests call; core.eval is imported when first needed, so the app starts without torch.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from core.eval import judge as judges
from core.eval.metrics import METRICS
from core.eval.preferences import read_picks
from core.eval.stats import BETTER_WORSE
from core.train.run_dir import in_runs_folder, read_evaluation, run_holding
from core.workspace import PathOutsideWorkspace, inside, read_jsonl
from studio.ui import visitor
from studio.ui.chat.ab import run_ab
from studio.ui.language import our_words, t
from studio.ui.problems import EXPECTED

CHART_METRICS = tuple((metric.key, metric.label) for metric in METRICS if metric.per_topic)
SIDE_COLOURS = {"base": "#7f7f7f", "tuned": "#2563eb"}


def verdict_markdown(report: dict | None, *, title: str = "Verdict") -> str:
    if not report:
        return ""
    v = report["verdict"]
    icon = "⚠️" if v.get("regressed") or v.get("forgot") else "✅" if v.get("improved") else "➖"
    what = (f"{report.get('prompt_set') or 'prompt set'}, {report['prompts']} prompts" if report.get("prompts")
            else "general-skill benchmarks")
    lines = [f"**{title} ({what}):** {icon} {v['headline']}"]
    lines += [f"- {item}" for item in v.get("details", [])]
    lines += _benchmark_lines(report)
    if report.get("retrieval"):
        r = report["retrieval"]
        lines.append(f"- Retrieval (BM25, same for both sides): MRR {r['mrr']:.3f}, hit@{r['k']} {r['hit_at_k']:.0%} (n={r['n']})")
    if report.get("judge"):
        j = report["judge"]
        agree = f"; agrees with your picks {j['agreement']:.0%} of {j['agreement_n']}" if j.get("agreement") is not None else ""
        lines.append(f"- Judge {j['model']}: tuned better {j['tuned']}, base better {j['base']}, ties {j['ties']}{agree}")
    from core.eval.report import safe_markdown

    return safe_markdown("\n".join(lines))


def _benchmark_lines(report: dict) -> list[str]:
    """The benchmarks as Markdown tables: the judged weights' change per task (lm-eval's standard
    error, the paired 95% interval), then each kept checkpoint's score (the forgetting curve)."""
    from core.eval.report import benchmark_curve_table, benchmark_table

    bench = report.get("benchmarks")
    if not bench:
        return []
    lines = ["", "**General skills** (lm-evaluation-harness; points, ± standard error; change with its 95% paired interval)", ""]
    lines += _table(benchmark_table(report))
    if len(bench.get("rows", [])) > 1:
        lines += ["", "**Every kept checkpoint** (score in points; ⚑ forgot): pick the one that learned without forgetting", ""]
        lines += _table(benchmark_curve_table(report))
    return lines


def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    heads = list(rows[0])
    return (["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
            + ["| " + " | ".join(str(row.get(head, "")) for head in heads) + " |" for row in rows])


def report_frames(report: dict | None):
    """(metrics table, per-topic table) as DataFrames for gr.Dataframe."""
    import pandas as pd

    from core.eval.report import metrics_table, topic_table

    if not report:
        return pd.DataFrame(), pd.DataFrame()
    topics = topic_table(report) + topic_table(report, "by_mode")
    return pd.DataFrame(metrics_table(report)), pd.DataFrame(topics)


def category_chart(report: dict | None):
    """Grouped bars per category (topic), base vs tuned, one panel per headline metric."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    topics = (report or {}).get("per_topic") or []
    panels = [(key, label) for key, label in CHART_METRICS if any(key in t for t in topics)]
    if not panels:
        return None
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[label for _, label in panels], shared_yaxes=True)
    for col, (key, _) in enumerate(panels, start=1):
        shown = [t for t in topics if key in t]
        for side in ("base", "tuned"):
            fig.add_trace(go.Bar(x=[t["topic"] for t in shown], y=[(t[key][side] or 0) * 100 for t in shown],
                                 name=side, marker_color=SIDE_COLOURS[side], showlegend=col == 1,
                                 text=[f"n={t['n']}" for t in shown], textposition="none",
                                 hovertemplate="%{x}: %{y:.0f}% (%{text})<extra>" + side + "</extra>"), row=1, col=col)
    fig.update_yaxes(range=[0, 100], ticksuffix="%")
    fig.update_layout(barmode="group", height=340, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def report_downloads(report: dict, rows: list[dict], beside: str | Path) -> list[str]:
    """report.md, report.json, rows.csv, rows.jsonl in exports/<the A/B's name>-report/, beside the
    A/B's own downloads (`beside`: one of them), in the folder the server serves for download."""
    from core.eval.report import save_report

    beside = Path(beside)
    return [str(path) for path in save_report(report, rows, beside.parent / f"{beside.stem}-report")]


def _rows_from(files: list[str] | None) -> list[dict]:
    jsonl = next((f for f in files or [] if str(f).endswith(".jsonl")), None)
    if not jsonl:
        return []
    return read_jsonl(jsonl)  # a half-written last line is skipped, not a crash


def run_ab_report(set_choice, upload, patterns_upload, base_model, tuned_choice, compare, system, temperature, top_p,
                  max_new_tokens, seed, judge=None):
    """The Chat tab's A/B (studio.ui.chat.ab.run_ab), then the report built from its saved rows,
    judged pairwise when a judge is named: yields (status, per prompt, aggregate, files, verdict,
    report table, topic table, chart)."""

    files = None
    for status, per_prompt, aggregate, files in run_ab(set_choice, upload, patterns_upload, base_model, tuned_choice,
                                                       compare, system, temperature, top_p, max_new_tokens, seed):
        yield status, per_prompt, aggregate, files, gr.skip(), gr.skip(), gr.skip(), gr.skip()
    rows = _rows_from(files)
    if not rows or len({row["side"] for row in rows}) < 2:
        return
    from core.eval.guard import load_prompts
    from core.eval.report import build_report

    source = upload or set_choice
    prompts, _, retrieval = load_prompts(source)
    settings = {"max_new_tokens": int(max_new_tokens or 1), "temperature": float(temperature or 0), "seed": int(seed or 0)}
    tuned = "tuned" if any(row["side"] == "tuned" for row in rows) else None
    judged, note = None, ""
    if (judge or "").strip() and tuned:
        yield f"Judging {len(prompts)} pairs in both orders with {judge.strip()}…", *(gr.skip(),) * 7
        judged, note = _judge(judge.strip(), rows, prompts)
    report = build_report(rows, prompt_set=Path(source).name, settings=settings, retrieval=retrieval, tuned=tuned, judge=judged)
    metrics, topics = report_frames(report)
    yield (note or gr.skip(), gr.skip(), gr.skip(), files + report_downloads(report, rows, files[0]),
           verdict_markdown(report, title="A/B verdict"), metrics, topics, category_chart(report))


def _judge(spec: str, rows: list[dict], prompts) -> tuple[dict | None, str]:
    """The pairwise judge over the A/B's pairs (both orders; the person's Chat picks too): (summary,
    a note when it could not judge). A local judge is a model the visitor may name; an Ollama judge
    is asked at the operator's Ollama address only."""
    try:
        if spec == "embedded" or spec.startswith("hf:"):
            spec = "hf:" + visitor.model(spec.removeprefix("hf:"))
        ask = judges.judge_for(spec)
        summary = judges.judge_rows(ask, rows, {p.id: p.messages for p in prompts}, model=spec, tuned="tuned",
                                    picks=read_picks())
    except (*EXPECTED, judges.JudgeError) as error:
        return None, f"⚠️ **Not judged:** {error}"
    return summary, ""


def run_verdict(run_or_choice: str | None) -> str:
    """The verdict of the guard report of the run that holds this path (the Train tab's open run,
    or the Chat tab's tuned side); nothing when there is none."""
    from core.eval.guard import run_report

    if not run_or_choice or not str(run_or_choice).strip():
        return ""
    try:
        path = inside(str(run_or_choice).strip())
    except PathOutsideWorkspace:
        return ""
    run = run_holding(path)  # only a run of this workspace: the walk up stops at runs/
    if run is None or not in_runs_folder(run):
        return ""
    evaluation = read_evaluation(run)
    if evaluation.get("state") == "running":
        return "⏳ Evaluating base vs the best checkpoint on the recipe's prompt set…"
    if evaluation.get("state") == "failed":
        return f"⚠️ The evaluation after training failed: {evaluation.get('error')}"
    return verdict_markdown(run_report(run), title="Evaluation after training")


def build_report_section():
    """Verdict, report tables and chart under the A/B tables; returns the components in the order
    run_ab_report fills them after the first four."""
    verdict = our_words(gr.Markdown(elem_id="ab-verdict"))
    with gr.Row():
        table = gr.Dataframe(label=t("Base vs tuned: n, change and its 95% paired interval (⚑ = beyond it)"),
                             headers=["metric", "n", "base", "tuned", "change [95% CI]", BETTER_WORSE],
                             interactive=False, wrap=True, elem_id="ab-report")
    topics = gr.Dataframe(label=t("Per topic (and per mode)"), headers=["topic", "n", "keyword coverage", "substantive", "source hit"],
                          interactive=False, wrap=True, elem_id="ab-topics")
    chart = gr.Plot(label=t("Per category"), elem_id="ab-chart")
    return [verdict, table, topics, chart]

