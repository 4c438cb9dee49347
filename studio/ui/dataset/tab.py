"""The Dataset tab: open a dataset, see its check summary, browse and review it, export it.

Widgets are laid out by small builders that `build_dataset_tab` calls; every event goes to a
named handler below that tests call directly. The open dataset (the line index and the check
report: compact arrays, never the rows) lives in the visitor's session (studio.ui.dataset.state),
so a page of a million-row file is read from disk when shown. Review state is saved by core.dataset.review after
every click. Handlers never raise into the page: they return a readable message.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from core.dataset import checks, reader, review
from core.dataset.formats import FORMATS
from core.dataset.pages import PagedDataset
from core.errors import BadInput
from core.hosting import DEMO_DATA, DemoRefusal, demo_mode
from core.workspace import ASSETS, PathOutsideWorkspace, inside, workspace
from studio.ui import visitor
from studio.ui.dataset import bulk_actions, state
from studio.ui.dataset import make as dataset_make
from studio.ui.dataset import summary as summary_panel
from studio.ui.dataset.record import (
    approve_record,
    bad_reply,
    choose_message,
    clear_label,
    good_reply,
    mask_if_shown,
    mask_opened,
    reject_record,
    reset_record,
    revert_edits,
    save_edit,
    save_note,
    show_record,
    swap_pair,
)
from studio.ui.dataset.state import next_record, previous_record
from studio.ui.language import choices, our_words, say, t, translate
from studio.ui.problems import EXPECTED

PAGE_SIZE = 15
SORTS = ["file order", "findings first", "longest first", "shortest first"]
STATUS_FILTERS = ["any", "pending", "approved", "rejected"]
KEEP_OR_DROP, THUMBS = "keep or drop the record (approve / reject)", "good or bad reply (thumbs up / down, for KTO)"
PAGE_HEADERS = ["#", "id", "mode", "status", "words", "findings", "preview"]
KEYS_JS = """
() => {
  if (window.__datasetKeys) return; window.__datasetKeys = true;
  const map = {a: 'ds-approve', r: 'ds-reject', u: 'ds-pending', j: 'ds-next', ArrowRight: 'ds-next',
               k: 'ds-prev', ArrowLeft: 'ds-prev', s: 'ds-swap', g: 'ds-good', b: 'ds-bad', n: 'ds-unlabel'};
  document.addEventListener('keydown', (e) => {
    const t = e.target, tag = (t && t.tagName || '').toLowerCase();
    if (tag === 'input' || tag === 'textarea' || tag === 'select' || (t && t.isContentEditable)) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const panel = document.getElementById('ds-review');
    if (!panel || panel.offsetParent === null) return;  // only while the Dataset tab is showing
    const button = document.getElementById(map[e.key]);
    if (button && button.offsetParent !== null) { e.preventDefault(); button.click(); }
  });
}
"""


# ---------------------------------------------------------------- opening


def dataset_choices() -> list[tuple[str, str]]:
    """Bundled samples and every dataset in the workspace (uploads, exports, chat pairs); in demo
    mode the bundled samples only. A link that leads out of the workspace is not listed."""
    choices = [(f"Sample: {p.name}", str(p)) for p in sorted(ASSETS.glob("*.jsonl"))]
    if demo_mode():
        return choices
    root = workspace().datasets
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in reader.SUFFIXES and p.name not in ("review.json", "run-summary.json") \
                and not p.name.startswith(".") and not p.parent.name.endswith(".make"):  # .make: a generation's own files
            try:
                inside(p)
            except PathOutsideWorkspace:
                continue
            choices.append((f"Workspace: {p.relative_to(root)}", str(p)))
    return choices


def refresh_choices():
    return gr.update(choices=dataset_choices())


def _store_upload(upload: str) -> Path:
    source = Path(upload)
    folder = workspace().datasets / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    counter = 1
    while target.exists() and target.read_bytes() != source.read_bytes():
        target = folder / f"{source.stem}-{counter}{source.suffix}"
        counter += 1
    if not target.exists():
        shutil.copyfile(source, target)
    return target


def _resolve(choice: str | None, upload: str | None, typed: str | None) -> str:
    """The dataset to open, from the upload, the typed path or the picked choice, each through the
    visitor guard (the browser sends all three)."""
    if upload:
        if demo_mode():
            raise DemoRefusal(f"uploads: {DEMO_DATA}")
        return str(_store_upload(upload))
    if typed and typed.strip():
        return visitor.dataset(typed)
    if choice:
        return visitor.dataset(choice)
    raise BadInput("Pick a sample, upload a file, or type a path first.")


def open_dataset(choice, upload, typed, fmt, template):
    """Open a dataset and index it; returns (path, status markdown). The check runs next."""
    try:
        path = _resolve(choice, upload, typed)
        template = (template or "").strip() or None
        paged = PagedDataset(path, fmt or "auto", format_template=template)
    except (*EXPECTED, *visitor.Refused, ValueError) as error:  # ValueError: a file that is not text (UnicodeDecodeError)
        return "", f"**Can't open this dataset.** {error}"
    how = "detected" if (fmt or "auto") == "auto" else "chosen"
    status = (f"**{Path(path).name}**: {len(paged):,} records · format **{paged.format}** ({how}: {paged.evidence}). "
              "Checking every row…")
    if review.dataset_changed(review.open_review(path)):
        status += (" ⚠️ **This file changed since it was last reviewed.** Your approvals, edits and notes are kept and "
                   "matched to records by their id; look over a few records to be sure they still fit.")
    return state.open_path(path, state.OpenDataset(paged, paged.format, template)), status


# ---------------------------------------------------------------- browsing


def browse(path, mode, status, only_findings, search, sort, page):
    """One page of the filtered, sorted records: (table rows, page caption, page number)."""
    opened = state.opened(path)
    if opened is None:
        return [], "Open a dataset to browse it.", 1
    positions, statuses = state.positions(opened, mode, status, only_findings, search, sort)
    pages = max(1, -(-len(positions) // PAGE_SIZE))
    page = min(max(int(page or 1), 1), pages)
    chosen = positions[(page - 1) * PAGE_SIZE: page * PAGE_SIZE].tolist()
    findings = opened.report.findings if opened.report else {}
    rows = []
    for position, item in zip(chosen, opened.paged.page(chosen)):
        rows.append(_page_row(position, item, statuses.get(position, "pending"), len(findings.get(position, []))))
    caption = f"{len(positions):,} matching records · page {page} of {pages:,}"
    return rows, caption, page


def _page_row(position: int, item, status: str, findings: int) -> list:
    if isinstance(item, reader.BadRow):
        where = say("line {n}", n=item.line) if item.line else say("row {n}", n=item.row)
        return [position + 1, where, "", translate("bad row"), 0, findings, translate(item.reason)[:80]]
    last = item.chosen if item.is_preference else next((m["content"] for m in reversed(item.messages)), "")
    first_user = next((m["content"] for m in item.messages if m["role"] == "user"), "")
    preview = (first_user[:60] + " → " + last[:60]).replace("\n", " ")
    return [position + 1, item.id, item.mode or "", translate(status), checks.visible_words(last or ""), findings, preview]


def next_page(page):
    return int(page or 1) + 1


def previous_page(page):
    return max(1, int(page or 1) - 1)


def pick_row(evt: gr.SelectData):
    """Clicking a page row opens that record."""
    row = evt.row_value or []
    return int(row[0]) if row else gr.update()


# ---------------------------------------------------------------- tokens and export


def export_dataset(path, which, style):
    """Write the reviewed dataset as JSONL in the workspace; returns (file, message)."""
    opened = state.opened(path)
    if opened is None:
        return None, "Open a dataset first."
    only_approved = which == "approved rows only"
    try:
        examples = (x for x in reader.stream(path, opened.format, format_template=opened.template) if isinstance(x, reader.Example))
        summary = review.export_reviewed(path, examples, opened.format, only_approved=only_approved,
                                         style="original" if style == "original format" else "normalized")
    except EXPECTED as error:
        return None, f"**Export failed:** {error}"
    note = (f" {summary.normalized_fallback} edited rows were written in the normalized form because the "
            f"{opened.format} format can't hold edited messages.") if summary.normalized_fallback else ""
    return str(summary.path), (f"Wrote **{summary.written}** rows ({summary.left_out} left out) to `{summary.path}`.{note} "
                               "It is listed under *Workspace* above and ready for the Train tab.")


# ---------------------------------------------------------------- layout


def build_dataset_tab() -> gr.State:
    """Lay out the tab and wire its events; returns the State holding the open dataset (an
    OpenPath: it reads as the dataset's path)."""
    current = gr.State("")
    gr.Markdown(t("Open a dataset to see its format, what the checks found, and every record as a chat. "
                "Approve, reject or edit records, then export the reviewed set for training."))
    opener = _build_opener()
    with gr.Accordion(t("Check summary"), open=True):
        summary = summary_panel.build_summary()
    with gr.Accordion(t("Browse and review"), open=True, elem_id="ds-review"):
        pages = _build_pages()
        pages.bulk = bulk_actions.build_bulk()
        record = _build_record()
    with gr.Accordion(t("Export the reviewed dataset"), open=False):
        exporter = _build_export()
    _wire(current, opener, summary, pages, record, exporter)
    return current


def _build_opener() -> SimpleNamespace:
    with gr.Row(equal_height=True):
        # The first sample a newcomer opens is a clean one (and the one the smoke recipe trains on).
        choice = gr.Dropdown(choices(dataset_choices()), value=str(ASSETS / "friction_sample.jsonl"), scale=3, min_width=300,
                             label=t("Sample or workspace dataset"), allow_custom_value=False)  # whole names on a phone
        refresh = gr.Button(t("Refresh list"), scale=0, min_width=120)
        upload = gr.File(label=t("…or upload a file (JSONL, JSON, CSV, Parquet)"), file_types=list(reader.SUFFIXES),
                         type="filepath", scale=2, height=120)
    with gr.Row(equal_height=True):
        typed = gr.Textbox(label=t("…or type a path inside the workspace, or a Hub dataset name (owner/name)"), scale=3)
        open_button = gr.Button(t("Open and check"), variant="primary", scale=0, min_width=160, elem_id="ds-open")
    with gr.Accordion(t("More options: the format, the friction reply template"), open=False):
        with gr.Row(equal_height=True):
            fmt = gr.Dropdown(["auto", *FORMATS], value="auto", label=t("Format (detected automatically; change it if wrong)"))
            template = gr.Textbox(label=t("Friction reply template (how a friction record becomes the reply)"),
                                  placeholder="<think>{thought_stream}</think>{final_answer}")
    made = dataset_make.build_make_accordion()
    status = our_words(gr.Markdown(elem_id="ds-status"))
    return SimpleNamespace(choice=choice, refresh=refresh, upload=upload, typed=typed, fmt=fmt, template=template,
                           open_button=open_button, status=status, made=made)


def _build_pages() -> SimpleNamespace:
    """Filters, the page of records and the page buttons."""
    with gr.Row(equal_height=True, elem_classes="phone-wrap"):
        mode_filter = gr.Dropdown(choices(["any"]), value="any", label=t("Mode"))
        status_filter = gr.Dropdown(choices(STATUS_FILTERS), value="any", label=t("Review status"))
        findings_filter = gr.Dropdown(choices(state.FINDINGS_CHOICES), value=state.ALL_RECORDS, label=t("Findings"),
                                      elem_id="ds-findings-filter")
        search = gr.Textbox(label=t("Search text"), placeholder=t("words in the record; press Enter"))
        sort = gr.Dropdown(choices(SORTS), value="file order", label=t("Sort"))
    table = gr.Dataframe(headers=PAGE_HEADERS, interactive=False, wrap=False, max_height=420,
                         label=t("Records (click a row to open it)"), elem_id="ds-page")
    with gr.Row(equal_height=True):
        back = gr.Button(t("◀ Page"), scale=0, min_width=90)
        page = gr.Number(1, precision=0, minimum=1, label=t("Page"), scale=0, min_width=90)
        forward = gr.Button(t("Page ▶"), scale=0, min_width=90)
        caption = our_words(gr.Markdown())
    return SimpleNamespace(mode_filter=mode_filter, filters=[mode_filter, status_filter, findings_filter, search, sort],
                           table=table, back=back, page=page, forward=forward, caption=caption)


def _build_record() -> SimpleNamespace:
    """One record: the review buttons and its four views (chat, which words are learned from, edit, original row)."""
    progress = our_words(gr.HTML(elem_id="ds-progress"))
    review_as = gr.Radio(choices([KEEP_OR_DROP, THUMBS]), value=KEEP_OR_DROP, label=t("Review"), elem_id="ds-review-as")
    with gr.Row(equal_height=True):
        number = gr.Number(1, precision=0, minimum=1, label=t("Record #"), scale=0, min_width=100)
        back = gr.Button(t("◀ Previous (K)"), elem_id="ds-prev")
        forward = gr.Button(t("Next (J) ▶"), elem_id="ds-next")
        approve = gr.Button(t("Approve (A)"), variant="primary", elem_id="ds-approve")
        reject = gr.Button(t("Reject (R)"), variant="stop", elem_id="ds-reject")
        pending = gr.Button(t("Back to pending (U)"), elem_id="ds-pending")
        good = gr.Button(t("Good reply (G)"), variant="primary", elem_id="ds-good", visible=False)
        bad = gr.Button(t("Bad reply (B)"), variant="stop", elem_id="ds-bad", visible=False)
        unlabel = gr.Button(t("No label (N)"), elem_id="ds-unlabel", visible=False)
        swap = gr.Button(t("Swap chosen / rejected (S)"), elem_id="ds-swap", visible=False)
    gr.Markdown(t("Keyboard: **A** approve, **R** reject, **U** pending, **G** good reply, **B** bad reply, **N** no label, "
                "**J / →** next, **K / ←** previous, **S** swap a pair. Every click is saved at once, beside the dataset "
                "in the workspace. Replies marked good and bad train KTO; SFT leaves the bad ones out."))
    with gr.Tabs():
        with gr.Tab(t("Chat view")):
            view = gr.HTML(elem_id="ds-record")
        with gr.Tab(t("Which words the model learns from")) as mask_tab:
            with gr.Row(equal_height=True):
                mask_info = our_words(gr.Markdown(t("Open this view to render the record with the model's chat template.")))
                stack = gr.Number(1, precision=0, minimum=1, maximum=16, scale=0, min_width=220,
                                  label=t("Stack conversations (the recipe's data.stack); press Enter"))
            mask = gr.HighlightedText(color_map={"trained": "#7ee2a8"}, combine_adjacent=True, show_legend=True,
                                      label=t("Green words are what the model learns to write; the rest it only reads"))
        with gr.Tab(t("Edit and note")):
            which = gr.Dropdown([], label=t("Message to edit"))
            edit_text = gr.Textbox(lines=6, label=t("Text"), elem_id="ds-edit-text")
            with gr.Row():
                save_edit_button = gr.Button(t("Save edit"), variant="primary")
                revert_button = gr.Button(t("Revert this record's edits"))
            note = gr.Textbox(lines=2, label=t("Reviewer note"))
            save_note_button = gr.Button(t("Save note"))
            edit_status = our_words(gr.Markdown())
        with gr.Tab(t("Original row")):
            original = gr.Code(language="json", label=t("The row exactly as it is in the file"))
    return SimpleNamespace(progress=progress, number=number, back=back, forward=forward, approve=approve, reject=reject,
                           pending=pending, review_as=review_as, good=good, bad=bad, unlabel=unlabel,
                           swap=swap, view=view, mask_tab=mask_tab, mask_info=mask_info, stack=stack,
                           mask=mask, which=which, edit_text=edit_text, save_edit_button=save_edit_button,
                           revert_button=revert_button, note=note, save_note_button=save_note_button,
                           edit_status=edit_status, original=original, mask_shown=gr.State(False),
                           editing=gr.State(None))


def _build_export() -> SimpleNamespace:
    with gr.Row():
        which_rows = gr.Radio(choices(["all rows except rejected", "approved rows only"]), value="all rows except rejected",
                              label=t("Rows to export"))
        style = gr.Radio(choices(["normalized", "original format"]), value="normalized",
                         label=t("Shape (normalized = messages / prompt-chosen-rejected, ready for training)"))
    button = gr.Button(t("Export as JSONL"), variant="primary")
    file = gr.File(label=t("Exported file"), interactive=False)
    status = our_words(gr.Markdown())
    return SimpleNamespace(which_rows=which_rows, style=style, button=button, file=file, status=status)


def _wire(current, opener, summary, pages, record, exporter) -> None:
    filters = pages.filters
    page_outputs = [pages.table, pages.caption, pages.page]
    record_outputs = [record.number, record.view, record.original, record.note, record.which, record.swap, record.progress,
                      record.edit_text, record.editing]
    mask_inputs = [current, record.number, summary.model, summary.max_length, record.stack]

    def after_record(event):
        return (event.then(show_record, [current, record.number, record.which, record.editing], record_outputs)
                .then(mask_if_shown, [*mask_inputs, record.mask_shown], [record.mask, record.mask_info]))

    def then_browse(event):
        return event.then(browse, [current, *filters, pages.page], page_outputs)

    opener_inputs = [opener.choice, opener.upload, opener.typed, opener.fmt, opener.template]
    made = opener.made  # "Open in the Dataset tab" on a made dataset types its path, then opens it like any other
    made_opens = [button.click(_same, path, opener.typed).then(refresh_choices, None, opener.choice)
                  for button, path in ((made.qa_open, made.qa_out), (made.modes_open, made.modes_final))]
    for start in (opener.open_button.click(open_dataset, opener_inputs, [current, opener.status]),
                  *(event.then(open_dataset, opener_inputs, [current, opener.status]) for event in made_opens)):
        opened = then_browse(start)
        after_record(opened.then(_first_record, None, record.number))
        then_browse(opened.then(summary_panel.check_dataset, [current, summary.targets],
                                [opener.status, summary.cards, summary.length_plot, summary.modes_plot, summary.tokens_plot,
                                 summary.findings, pages.mode_filter]))
    opener.open_button.click(None, js=KEYS_JS)
    opener.refresh.click(refresh_choices, None, opener.choice)

    for trigger in (filters[0].change, filters[1].change, filters[2].change, filters[3].submit, filters[4].change):
        then_browse(trigger(_first_page, None, pages.page))
    then_browse(pages.forward.click(next_page, pages.page, pages.page))
    then_browse(pages.back.click(previous_page, pages.page, pages.page))
    pages.page.submit(browse, [current, *filters, pages.page], page_outputs)
    after_record(pages.table.select(pick_row, None, record.number))
    after_record(record.number.submit(_same, record.number, record.number))
    after_record(record.forward.click(next_record, [current, record.number, *filters], record.number))
    after_record(record.back.click(previous_record, [current, record.number, *filters], record.number))
    for button, handler in ((record.approve, approve_record), (record.reject, reject_record), (record.pending, reset_record),
                            (record.good, good_reply), (record.bad, bad_reply), (record.unlabel, clear_label)):
        then_browse(after_record(button.click(handler, [current, record.number, *filters], record.number)))
    record.review_as.change(review_buttons, record.review_as,
                            [record.approve, record.reject, record.pending, record.good, record.bad, record.unlabel])
    after_record(record.swap.click(swap_pair, [current, record.number], record.edit_status))

    bulk = pages.bulk
    then_browse(after_record(bulk.apply.click(bulk_actions.apply_bulk, [current, bulk.action, *filters], bulk.status)))
    then_browse(after_record(bulk.undo.click(bulk_actions.undo_bulk, current, bulk.status)))
    record.which.input(choose_message, [current, record.number, record.which], [record.edit_text, record.editing])
    after_record(record.save_edit_button.click(save_edit, [current, record.number, record.which, record.edit_text,
                                                           record.editing], record.edit_status))
    after_record(record.revert_button.click(revert_edits, [current, record.number], record.edit_status))
    record.save_note_button.click(save_note, [current, record.number, record.note], record.edit_status)
    mask_outputs = [record.mask_shown, record.mask, record.mask_info]
    record.mask_tab.select(mask_opened, mask_inputs, mask_outputs)
    record.stack.submit(mask_opened, mask_inputs, mask_outputs)
    summary.count_button.click(summary_panel.count_tokens, [current, summary.model, summary.max_length],
                               [summary.cards, summary.tokens_plot])
    summary.targets.input(summary_panel.regrade, [current, summary.targets], [summary.cards, opener.status])
    exporter.button.click(export_dataset, [current, exporter.which_rows, exporter.style],
                          [exporter.file, exporter.status]).then(refresh_choices, None, opener.choice)


def review_buttons(review_as):
    """Approve / reject / pending, or the thumbs, as the review mode picked."""
    thumbs = review_as == THUMBS
    return [gr.update(visible=not thumbs)] * 3 + [gr.update(visible=thumbs)] * 3


def _first_record():
    return 1


def _first_page():
    return 1


def _same(value):
    return value
