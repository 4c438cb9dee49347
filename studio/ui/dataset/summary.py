"""The Dataset tab's check summary: running every check on the open dataset, the cards with the
quality targets they are graded against (and another kind of data picked by the person), the
charts, the findings table and token counts. Handlers the tab wires; no other logic."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from core.dataset import checks, reader, tokens
from core.eval import prompts as prompt_sets
from studio.ui import visitor
from studio.ui.dataset import render, state
from studio.ui.language import choices, our_words, t, translate
from studio.ui.problems import EXPECTED, unexpected


def check_dataset(path, targets="auto"):
    """Run every check over the open dataset; returns cards, two charts, the findings table and mode choices."""
    opened = state.opened(path)
    empty = empty_report()
    if opened is None:
        return (gr.skip(), "", render.length_figure(empty), render.modes_figure(empty), render.tokens_figure(None), [],
                gr.update(choices=["any"]))
    try:
        opened.report = checks.check(path, opened.format, format_template=opened.template, targets=targets or "auto",
                                     leaks=prompt_sets.leak_index())
    except (*EXPECTED, ValueError) as error:  # ValueError: a file that is not text (UnicodeDecodeError)
        return (f"**Checks could not run.** {error}", "", render.length_figure(empty), render.modes_figure(empty),
                render.tokens_figure(None), [], gr.update())
    report, paged = opened.report, opened.paged
    status = (f"**{Path(path).name}**: {report.rows:,} records, {report.examples:,} usable · format **{paged.format}** "
              f"({paged.evidence}) · checked in {report.elapsed_s:.1f} s: {verdict(report)}.")
    return (status, render.cards_html(report, opened.tokens), render.length_figure(report), render.modes_figure(report),
            render.tokens_figure(opened.tokens), findings_rows(report), gr.update(choices=["any"] + report.mode_names, value="any"))



def verdict(report) -> str:
    """The check's verdict in words; "no problems" only when no card is marked bad or to check."""
    if not report.ok:
        return f"**{report.problems} problem(s) found** (see Findings)"
    missed = report.warnings()
    if missed:
        return (f"no broken rows, but {len(missed)} quality target(s) for {report.targets.get('label', 'this data')} "
                "missed (see the cards)")
    return "no problems found"



def regrade(path, targets):
    """The quality cards graded for another kind of data (the values are as measured): (cards, status)."""
    opened = state.opened(path)
    if opened is None or opened.report is None:
        return gr.skip(), gr.skip()
    checks.apply_targets(opened.report, targets or "auto")
    report = opened.report
    status = f"**{Path(path).name}**: graded for {report.targets['label']} ({report.targets['why']}): {verdict(report)}."
    return render.cards_html(report, opened.tokens), status



def empty_report() -> checks.CheckReport:
    report = checks.CheckReport("", "unknown", "")
    report.metrics = {}
    return report



# What to do about each kind of finding, in the words a reviewer acts on (matched on how the
# finding's text begins: core.dataset.checker and core.dataset.contamination write them).
WHAT_TO_DO = (
    ("bad row", "Click the row: its line is shown as it is in the file; fix it there and Save."),
    ("left out", "Images or other non-text parts are dropped: the studio trains on the text only."),
    ("empty", "Write the missing text, or reject the record."),
    ("role order", "Put the turns in order (user, then assistant), or reject the record."),
    ("exact duplicate", "Reject this copy; the first one stays."),
    ("near duplicate", "Reject it and keep the proposed record (filter on near duplicates, then keep one per group), "
                       "or change it so it says something new."),
    ("chosen and rejected are identical", "Change one of the two replies, or reject the pair."),
    ("no mode", "Give the record its mode (dual, emulation or agent), or reject it."),
    ("unknown mode", "Fix the mode's name, or add the mode to the mode table."),
    ("missing tags", "Add the tags this mode needs, or reject the record."),
    ("foreign tags", "Remove the other mode's tags, or reject the record: they teach the model to mix modes."),
    ("unbalanced tags", "Close every tag that is opened, in order."),
    ("personal data", "Edit the text to remove it (a placeholder such as [EMAIL] keeps the sentence), or reject the record."),
    ("secret", "Remove the key from the text and revoke it where it was issued: it has been shared."),
    ("evaluation leak", "Reject the record (or change its question): a model trained on an evaluation prompt is "
                        "graded on memory, not on what it learned."),
)
FINDINGS_HEADERS = ["record", "line", "finding", "detail", "what to do"]


def what_to_do(kind: str) -> str:
    return next((advice for start, advice in WHAT_TO_DO if kind.strip().lower().startswith(start)), "")


def findings_rows(report: checks.CheckReport, limit: int = 500) -> list[list]:
    """[record, line, kind, detail, what to do] for the findings table, records in file order."""
    rows = []
    for position in sorted(report.findings)[:limit]:
        line = report.lines[position] if position < len(report.lines) else 0
        for message in report.findings[position]:
            kind, _, detail = message.partition(":")
            rows.append([position + 1, line or "", translate(kind), translate(detail.strip()), translate(what_to_do(kind))])
    return rows



def count_tokens(path, model, max_length):
    """Token statistics for the first TOKEN_LIMIT examples: cards and the token histogram."""
    opened = state.opened(path)
    if opened is None or opened.report is None:
        return "Open a dataset first.", render.tokens_figure(None)
    try:
        tokenizer = tokens.tokenizer_for(visitor.model(model))
        examples = (x for x in reader.stream(path, opened.format, format_template=opened.template) if isinstance(x, reader.Example))
        opened.tokens = tokens.token_stats(examples, tokenizer, max_length=int(max_length or 2048), limit=TOKEN_LIMIT)
    except EXPECTED as error:  # a missing model or an offline Hub: say so
        return f"<b>Could not count tokens:</b> {error}", render.tokens_figure(None)
    except Exception as error:  # last resort: tokenizers raise many kinds on a model they can't load
        return f"<b>Could not count tokens:</b> {unexpected(error, 'loading the tokenizer')}", render.tokens_figure(None)
    return render.cards_html(opened.report, opened.tokens), render.tokens_figure(opened.tokens)



TOKEN_LIMIT = 2000  # examples counted in the tab; `studio check --model` counts them all



TARGET_CHOICES = [("picked from the data", "auto"), ("short conversational replies", "short-replies"),
                  ("instructions and Q&A (any length)", "general")]



def build_summary() -> SimpleNamespace:
    targets = gr.Dropdown(choices(TARGET_CHOICES), value="auto", label=t("Quality targets: what this kind of data should look like"),
                          elem_id="ds-targets", scale=0, min_width=280)
    cards = our_words(gr.HTML(elem_id="ds-cards"))
    with gr.Row():
        length_plot = gr.Plot(show_label=False)
        modes_plot = gr.Plot(show_label=False)
        tokens_plot = gr.Plot(show_label=False)
    with gr.Row(equal_height=True):
        model = gr.Textbox("embedded", label=t("Model whose tokenizer counts tokens and shows which words the model learns from"))
        max_length = gr.Number(2048, precision=0, minimum=16, label=t("Max length (tokens)"))
        count_button = gr.Button(t("Count tokens"), scale=0, min_width=140)
    findings = gr.Dataframe(headers=FINDINGS_HEADERS, label=t("Findings, row by row"),
                            interactive=False, max_height=260, wrap=True, elem_id="ds-findings")
    return SimpleNamespace(cards=cards, length_plot=length_plot, modes_plot=modes_plot, tokens_plot=tokens_plot,
                           model=model, max_length=max_length, count_button=count_button, findings=findings, targets=targets)
