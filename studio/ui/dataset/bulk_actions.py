"""The Dataset tab's bulk actions: one decision over every record the filters show (reject,
approve, keep one per group of duplicates, redact personal data and secrets, mark the replies
good or bad for KTO), and an undo of
the last one. The work is core.dataset.bulk's; here only the panel and its two handlers, which
answer in words and never raise into the page."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from core.dataset import bulk, review
from studio.ui.dataset import state
from studio.ui.language import choices, our_words, t
from studio.ui.problems import EXPECTED

REJECT, APPROVE, KEEP_ONE, REDACT = ("reject every record shown", "approve every record shown",
                                     "keep one per group of duplicates (reject the repeats shown)",
                                     "redact personal data and secrets in the records shown")
GOOD, BAD = "mark every reply shown good (KTO)", "mark every reply shown bad (KTO)"
ACTIONS = [REJECT, APPROVE, KEEP_ONE, REDACT, GOOD, BAD]


def apply_bulk(path, action, mode, status, findings, search, sort):
    """Apply `action` to every record the filters select; returns a message."""
    opened = state.opened(path)
    if opened is None:
        return "Open a dataset first."
    if action not in ACTIONS:
        return "Pick what to do with the records shown."
    if action == KEEP_ONE and opened.report is None:
        return "Wait for the check to finish: it finds the groups of duplicates."
    try:
        positions, _ = state.positions(opened, mode, status, findings, search, sort)
        if not len(positions):
            return "No records match the filters: nothing was changed."
        chosen = sorted(positions.tolist())
        items = list(zip(chosen, opened.paged.page(chosen)))
        if action in (REJECT, APPROVE):
            verb = "rejected" if action == REJECT else "approved"
            outcome = bulk.set_status(opened.path, items, verb)
            done = f"**{outcome.changed:,}** records {verb}."
        elif action in (GOOD, BAD):
            outcome = bulk.set_label(opened.path, items, action == GOOD)
            how = "good" if action == GOOD else "bad"
            done = f"**{outcome.changed:,}** replies marked {how}."
            if outcome.left_alone:
                done = f"**{outcome.changed:,}** replies marked {how}; {outcome.left_alone:,} preference pairs left as they are."
        elif action == KEEP_ONE:
            outcome = bulk.keep_one_per_group(opened.path, opened.report, items)
            if not outcome.changed and not outcome.left_alone:
                return "None of the records shown repeats another: nothing was changed."
            done = f"**{outcome.changed:,}** repeats rejected; the proposed record of each group stays."
            if outcome.left_alone:
                done = done[:-1] + f", and {outcome.left_alone:,} repeats you approved are left as they are."
        else:
            outcome = bulk.redact(opened.path, items)
            if not outcome.changed:
                return "No personal data or secrets in the records shown: nothing was changed."
            done = (f"**{outcome.spans:,}** pieces of personal data or secrets redacted in **{outcome.changed:,}** records "
                    "(saved as edits; the original file is unchanged).")
    except EXPECTED as error:
        return f"**Nothing was changed.** {error}"
    return f"{done}\n\n*Undo the last bulk action* takes it back."


def undo_bulk(path):
    """Take back the last bulk action on the open dataset; returns a message."""
    opened = state.opened(path)
    if opened is None:
        return "Open a dataset first."
    try:
        action = review.open_review(opened.path).undo_bulk()
    except EXPECTED as error:
        return f"**Could not undo.** {error}"
    if action is None:
        return "No bulk action to undo."
    return f"Undone: {action['label']}. Records changed by hand since then keep those changes."


def build_bulk() -> SimpleNamespace:
    with gr.Accordion(t("Act on every record shown"), open=False, elem_id="ds-bulk"):
        gr.Markdown(t("Set the filters above (a kind of finding, a status, a search), then act on every record they show. "
                      "Each action is saved like your own clicks and can be undone."))
        with gr.Row(equal_height=True, elem_classes="phone-wrap"):
            action = gr.Dropdown(choices(ACTIONS), value=None, label=t("What to do"), scale=3, elem_id="ds-bulk-action")
            apply = gr.Button(t("Apply to the records shown"), variant="primary", scale=1, elem_id="ds-bulk-apply")
            undo = gr.Button(t("Undo the last bulk action"), scale=1, elem_id="ds-bulk-undo")
        status = our_words(gr.Markdown(elem_id="ds-bulk-status"))
    return SimpleNamespace(action=action, apply=apply, undo=undo, status=status)
