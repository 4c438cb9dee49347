"""The Dataset tab's record handlers: show one record, review it (approve / reject / pending,
note, edit, swap a pair) and draw its label mask. Named plain functions the tab wires to
buttons and tests call directly; review state is saved by core.dataset.review on every call."""

from __future__ import annotations

import json
from typing import NamedTuple

import gradio as gr

from core.dataset import checks, reader, review, tokens
from core.dataset.pages import PagedDataset
from core.eval import prompts as prompt_sets
from studio.ui import visitor
from studio.ui.dataset import render
from studio.ui.dataset.state import mode_table, next_record, record_at
from studio.ui.language import say
from studio.ui.problems import EXPECTED, unexpected


class RecordView(NamedTuple):
    """Every view of the open record, refreshed together whenever the open record changes, so no
    widget can keep showing (and the editor can't save) another record's text."""

    number: int
    view: str
    original: str
    note: str
    which: dict
    swap: dict
    progress: str
    edit_text: dict
    editing: dict | None


def show_record(path, number, which=None, editing=None) -> RecordView:
    """Every view of record `number`. The editor is reloaded with this record's text: the message
    picked before (`which`) when the editor already held this record, else the default one."""
    opened, item, position = record_at(path, number)
    if item is None:
        return RecordView(1, render.record_html(None, findings=[], mode_table={}), "", "", gr.update(choices=[], value=None),
                          gr.update(visible=False), "", gr.update(value="", label=EDITOR_LABEL), None)
    state = review.open_review(opened.path)
    record = state.get(getattr(item, "id", ""))
    shown = review.apply_edits(item, record) if isinstance(item, reader.Example) else item
    findings = opened.report.findings.get(position, []) if opened.report else []
    html_view = render.record_html(shown, findings=findings, mode_table=mode_table(), status=record.get("status", "pending"),
                                   note=record.get("note", ""), number=position + 1,
                                   edited=any(key in record for key in ("messages", "chosen", "rejected")))
    original = json.dumps(item.source if isinstance(item, reader.Example) else {"reason": item.reason}, indent=2, ensure_ascii=False)
    choices = _edit_choices(shown) if isinstance(shown, reader.Example) else [WHOLE_LINE] if _fixable(shown) else []
    same_record = bool(editing) and isinstance(item, reader.Example) and editing.get("id") == item.id
    picked = which if same_record and which in choices else _default_choice(choices)
    preference = isinstance(shown, reader.Example) and shown.is_preference
    progress = render.progress_html(state.counts(), len(opened.paged), state.label_counts())
    text, target = _editor(shown, position, picked)
    return RecordView(position + 1, html_view, original, record.get("note", ""), gr.update(choices=choices, value=picked),
                      gr.update(visible=preference), progress, text, target)


EDITOR_LABEL = "Text"
WHOLE_LINE = "the whole line (fix it in the file)"


def _fixable(item) -> bool:
    """A bad line of a JSONL file, read as it is: a person can fix it here, in place."""
    return isinstance(item, reader.BadRow) and item.raw is not None and bool(item.line)


def _editor(shown, position: int, which: str | None) -> tuple[dict, dict | None]:
    """The editor's text box for one message of the shown record, labelled with the record it
    belongs to, and the target a later Save must match."""
    if _fixable(shown) and which == WHOLE_LINE:
        return (gr.update(value=shown.raw, label=f"Line {shown.line} of the file as it is now: fix it, then Save"),
                {"line": shown.line, "raw": shown.raw, "number": position + 1, "which": WHOLE_LINE})
    if not isinstance(shown, reader.Example) or not which:
        return gr.update(value="", label=EDITOR_LABEL), None
    label = f"Text of record {position + 1} ({shown.id}), message {which}"
    return (gr.update(value=_message_text(shown, which), label=label),
            {"id": shown.id, "number": position + 1, "which": which})


def _message_text(shown: reader.Example, which: str) -> str:
    if which == "chosen reply":
        return shown.chosen
    if which == "rejected reply":
        return shown.rejected
    return shown.messages[int(which.split(" ")[0]) - 1]["content"]


def _edit_choices(example: reader.Example) -> list[str]:
    choices = [f"{i + 1} · {m['role']}" for i, m in enumerate(example.messages)]
    return choices + (["chosen reply", "rejected reply"] if example.is_preference else [])


def _default_choice(choices: list[str]) -> str | None:
    """What a reviewer edits most: the chosen reply of a pair, else the last assistant message
    (a bad line: the line itself)."""
    if "chosen reply" in choices or WHOLE_LINE in choices:
        return choices[-2] if "chosen reply" in choices else WHOLE_LINE
    return next((choice for choice in reversed(choices) if choice.endswith("· assistant")), None)


def _reviewable(path, number):
    """(opened, example, position) of the record to review, or None (a bad row is said so)."""
    opened, item, position = record_at(path, number)
    if isinstance(item, reader.Example):
        return opened, item, position
    if item is not None:
        gr.Warning(say("Bad rows can't be reviewed; fix them in the file and open it again."))
    return None


def _set_status(path, number, status, mode, review_status, only_findings, search, sort):
    found = _reviewable(path, number)
    if found is None:
        return number
    opened, item, position = found
    review.open_review(opened.path).set_status(item.id, status, position=position)
    return next_record(path, position + 1, mode, review_status, only_findings, search, sort)


def approve_record(path, number, mode, status, only_findings, search, sort):
    """Approve, then move to the next record of the selection."""
    return _set_status(path, number, "approved", mode, status, only_findings, search, sort)


def reject_record(path, number, mode, status, only_findings, search, sort):
    return _set_status(path, number, "rejected", mode, status, only_findings, search, sort)


def _set_label(path, number, label, mode, status, only_findings, search, sort):
    found = _reviewable(path, number)
    if found is None:
        return number
    opened, item, position = found
    if item.is_preference:
        gr.Warning(say("A preference pair already says which reply is good; mark single replies with the thumbs."))
        return number
    review.open_review(opened.path).set_label(item.id, label, position=position)
    if label is None:
        return number
    return next_record(path, position + 1, mode, status, only_findings, search, sort)


def good_reply(path, number, mode, status, only_findings, search, sort):
    """Thumbs up on the record's last reply (KTO's good example), then on to the next record."""
    return _set_label(path, number, True, mode, status, only_findings, search, sort)


def bad_reply(path, number, mode, status, only_findings, search, sort):
    """Thumbs down: a reply to learn not to write (KTO); SFT leaves it out."""
    return _set_label(path, number, False, mode, status, only_findings, search, sort)


def clear_label(path, number, mode, status, only_findings, search, sort):
    """Take the thumbs back (the row's own label, if it has one, counts again); stays on the record."""
    return _set_label(path, number, None, mode, status, only_findings, search, sort)


def reset_record(path, number, mode, status, only_findings, search, sort):
    """Back to pending; stays on the record."""
    opened, item, position = record_at(path, number)
    if isinstance(item, reader.Example):
        review.open_review(opened.path).set_status(item.id, "pending", position=position)
    return number


def save_note(path, number, note):
    opened, item, position = record_at(path, number)
    if not isinstance(item, reader.Example):
        return "Open a record first."
    review.open_review(opened.path).set_note(item.id, note or "", position=position)
    return f"Note saved for record {position + 1}."


def choose_message(path, number, which):
    """The editor loaded with the message picked for editing: (text box, editing target)."""
    opened, item, position = record_at(path, number)
    if _fixable(item):
        return _editor(item, position, which)
    if not isinstance(item, reader.Example) or not which:
        return gr.update(value="", label=EDITOR_LABEL), None
    return _editor(review.apply_edits(item, review.open_review(opened.path).get(item.id)), position, which)


def save_edit(path, number, which, text, editing):
    """Store an edited message beside the dataset (the original file is not touched). `editing`
    names the record and message the text box was loaded from; a save writes only into that one,
    and only while it is the open record (a text box that still held another record's text
    would otherwise overwrite this one)."""
    opened, item, position = record_at(path, number)
    if _fixable(item) and which == WHOLE_LINE:
        return _fix_line(opened, item, position, text, editing)
    if not isinstance(item, reader.Example) or not which:
        return "Pick a message to edit first."
    if not editing or editing.get("id") != item.id or editing.get("which") != which:
        held = f"record {editing.get('number')} ({editing.get('which')})" if editing else "no record"
        return (f"**Not saved.** The text box holds {held}, but record {position + 1} ({which}) is open. "
                "Pick the message again to load its text, then edit and save.")
    state = review.open_review(opened.path)
    if which in ("chosen reply", "rejected reply"):
        state.edit(item.id, position=position, **{which.split(" ")[0]: text})
    else:
        messages = [dict(m) for m in review.apply_edits(item, state.get(item.id)).messages]
        messages[int(which.split(" ")[0]) - 1]["content"] = text
        state.edit(item.id, messages=messages, position=position)
    return f"Edit saved for record {position + 1} ({item.id}, {which}). The original file is unchanged."


def _fix_line(opened, item, position: int, text: str, editing) -> str:
    """Write a bad line's fix into the file (core.dataset.review.fix_line keeps the old line in
    the review folder), then read the file again so the record shows as it now is."""
    if not editing or editing.get("line") != item.line or editing.get("raw") != item.raw:
        return (f"**Not saved.** The text box does not hold line {item.line} as it is now. "
                "Pick 'the whole line' again to load it, then fix and save.")
    try:
        review.fix_line(opened.path, item.line, item.raw, text or "")
    except (review.ReviewError, OSError) as error:
        return f"**Not saved.** {error}"
    opened.paged = PagedDataset(opened.path, opened.format, format_template=opened.template)
    opened.searches.clear()
    opened.report = checks.check(opened.path, opened.format, format_template=opened.template, leaks=prompt_sets.leak_index())
    fixed = opened.paged.get(position)
    if isinstance(fixed, reader.BadRow):
        return (f"Line {item.line} saved in the file (the old text is kept in the review folder), but it still can't be "
                f"used: {fixed.reason}")
    return (f"Line {item.line} fixed in the file: record {position + 1} can now be used (the old text is kept in the "
            "review folder's fixes.jsonl).")


def revert_edits(path, number):
    opened, item, _ = record_at(path, number)
    if not isinstance(item, reader.Example):
        return "Open a record first."
    review.open_review(opened.path).revert(item.id)
    return f"Edits of record {number} reverted to the original text."


def swap_pair(path, number):
    opened, item, position = record_at(path, number)
    if not (isinstance(item, reader.Example) and item.is_preference):
        return "Only preference pairs have chosen and rejected replies to swap."
    review.open_review(opened.path).swap(item, position=position)
    return f"Swapped chosen and rejected for record {position + 1}."



def show_mask(path, number, model, max_length, stack=1):
    """The exact training text of the record (stacked with the next ones when `stack` > 1)
    with trained tokens highlighted."""
    opened, item, position = record_at(path, number)
    if not isinstance(item, reader.Example):
        return [], "Open a record first (bad rows have no training text)."
    try:
        tokenizer = tokens.tokenizer_for(visitor.model(model))
        state = review.open_review(opened.path)
        following = opened.paged.page(list(range(position, min(position + max(int(stack or 1), 1), len(opened.paged)))))
        group = [review.apply_edits(x, state.get(x.id)) for x in following if isinstance(x, reader.Example)]
        view = tokens.mask_view(group, tokenizer, max_length=int(max_length or 2048))
    except EXPECTED as error:  # template or model problems are shown, not raised
        return [], f"**Could not render this record:** {error}"
    except Exception as error:  # last resort: tokenizers raise many kinds on a model they can't load
        return [], f"**Could not render this record:** {unexpected(error, 'loading the tokenizer')}"
    segments = [(text, "trained" if trained else None) for text, trained in view["segments"]]
    cut = f" · **truncated** from {view['full_length']} tokens" if view["truncated"] else ""
    what = f"Records {position + 1}-{position + len(group)} stacked" if len(group) > 1 else f"Record {position + 1}"
    return segments, (f"{what}: {view['tokens']} tokens; the model learns to write the **{view['trained']}** in green "
                      f"(the replies) and only reads the rest{cut}. Shown as `{model or 'embedded'}` sees it (its chat template).")


def mask_if_shown(path, number, model, max_length, stack, mask_shown):
    """Keep the view of which words are learned from in step with the record, once the person has opened it."""
    if not mask_shown:
        return gr.skip(), gr.skip()
    return show_mask(path, number, model, max_length, stack)


def mask_opened(path, number, model, max_length, stack):
    segments, info = show_mask(path, number, model, max_length, stack)
    return True, segments, info
