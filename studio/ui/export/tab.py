"""The Export tab: pick a run and checkpoint, tick the steps, one Export button, a streaming
log per step, the verification table and the `ollama run` command. The work is core.export.pipeline;
handlers here only shape its events for the widgets. The Hub token goes in, never out."""

from __future__ import annotations

import time

import gradio as gr

from core.export import pipeline
from core.export.downloads import downloads
from core.export.gguf import ALL_TYPES, type_availability
from core.train.run_dir import UnknownRun, run_path
from core.train.runs import list_runs, model_artifacts
from studio.ui import sessions, visitor
from studio.ui.language import our_words, say, t, translate
from studio.ui.problems import EXPECTED, unexpected

VERIFY_HEADERS = ["prompt", "merged model", "GGUF", "agree?", "next tokens agreeing"]
LOG_LINES = 400


def run_choices() -> list[tuple[str, str]]:
    """(label, run id) for every run, newest first, for the run picker. The browser names a run by
    its id only; handlers turn it into a folder with core.train.run_dir.run_path."""
    return [(f"{info.run_id} · {info.state}", info.run_id) for info in list_runs()]


def refresh_runs(current: str | None, checkpoint: str | None = None):
    """The run picker as the workspace is now (on page load, on showing the tab, on ↻), keeping
    the picked run and checkpoint while they still exist."""
    choices = run_choices()
    values = [value for _, value in choices]
    value = current if current in values else (values[0] if values else None)
    checkpoints = checkpoint_choices(value)
    kept = checkpoint if value == current and checkpoint in [c for _, c in checkpoints] else "best"
    return gr.update(choices=choices, value=value), gr.update(choices=checkpoints, value=kept)


def _run_folder(run_id: str | None):
    try:
        return run_path(run_id) if run_id else None
    except UnknownRun:
        return None


def checkpoint_choices(run_id: str | None) -> list[tuple[str, str]]:
    folder = _run_folder(run_id)
    if folder is None:
        return [("best (default)", "best")]

    labels = [label for label, _ in model_artifacts(folder)]
    return [("best (default)", "best")] + [(label, label) for label in labels if label != "best"]


def refresh_checkpoints(run_id: str | None):
    return gr.update(choices=checkpoint_choices(run_id), value="best")


def gguf_type_note(gguf_type: str) -> str:
    reason = type_availability(gguf_type or pipeline.DEFAULT_GGUF)
    return f"⚠️ {translate(reason)}" if reason else say("`{kind}` is written by llama.cpp's converter.", kind=gguf_type)


def build_plan(run_path, checkpoint, do_merge, do_hub, do_gguf, do_ollama, do_verify, gguf_type,
               ollama_name, ollama_host, hub_repo, hub_private, hub_token, hub_what) -> pipeline.ExportPlan:
    """The form as an ExportPlan; ticking nothing but Merge is a merge-only export. `run_path` is
    the picked run's id, checked against the workspace's runs."""
    if not run_path:
        raise pipeline.ExportError("Pick a run first (train one in the Train tab, or refresh the list).")
    folder = _run_folder(run_path)
    if folder is None:
        raise pipeline.ExportError(f"{run_path!r} is not a run of this workspace; refresh the list and pick one.")
    if do_ollama and not (ollama_name or "").strip():
        raise pipeline.ExportError("Ollama needs a model name, e.g. my-tuned-smollm.")
    if do_hub and not (hub_repo or "").strip():
        raise pipeline.ExportError("The Hub step needs a repository id, e.g. your-name/my-adapter.")
    return pipeline.make_plan(
        str(folder), checkpoint=checkpoint, merge=bool(do_merge),
        gguf=(gguf_type or pipeline.DEFAULT_GGUF) if (do_gguf or do_ollama) else None,
        ollama=ollama_name if do_ollama else None, ollama_host=visitor.ollama_host(ollama_host),
        hub=hub_repo if do_hub else None, hub_private=hub_private, hub_token=hub_token, hub_what=hub_what, verify=do_verify)


def format_event(event: pipeline.Event) -> str:
    """One log line: done steps name their path and size."""
    line = f"[{event.step}] {event.message}"
    size = event.data.get("size_bytes") if event.kind == "done" else None
    return line + (f" ({pipeline.human_size(size)})" if size else "")


def append_log(log: list[str], line: str) -> None:
    """Add a line; the converter's one-line-per-tensor reports overwrite each other so the log
    shows progress without burying the step results."""
    if " --> " in line and log and " --> " in log[-1]:
        log[-1] = line
    else:
        log.append(line)
    del log[:-LOG_LINES]


def verify_rows(report: dict | None) -> list[list[str]]:
    if not report:
        return []
    return [[row["prompt"], row["merged"], row["gguf"],
             translate("✓ agree") if row["agree"] else say("✗ differs after {n} chars", n=row["same_prefix_chars"]),
             f"{row['token_agreement']:.0%}"] for row in report["rows"]]


def status_markdown(event: pipeline.Event) -> str:
    if event.kind == "summary":
        steps = event.data.get("steps", {})
        failed = [name for name, s in steps.items() if s.get("state") == "failed"]
        verdict = event.data.get("verify")
        line = f"**Export finished** in `{event.data.get('export_dir')}`."
        if verdict:
            line += (f" Verification ({verdict['runtime']}): {verdict['agreed']}/{verdict['total']} prompts agree word for word;"
                     f" {verdict['token_agreement']:.0%} of next tokens agree.")
        return line + (f" Steps that failed: {', '.join(failed)} (see the log)." if failed else "")
    if event.kind == "failed":
        return f"**{event.step} failed:** {event.message}"
    return f"Working: **{event.step}** — {event.message[:160]}"


def run_export_stream(run_path, checkpoint, do_merge, do_hub, do_gguf, do_ollama, do_verify, gguf_type,
                      ollama_name, ollama_host, hub_repo, hub_private, hub_token, hub_what, request: gr.Request = None):
    """Export button: stream (status, log, verification table, ollama command, summary); the
    summary (where each step's result is) comes with the last update, for export_downloads.
    A visitor signed in with Hugging Face pushes with their own token when the box is empty."""
    hub_token = hub_token or sessions.hub_token(request)
    log: list[str] = []
    table, command = [], ""
    try:
        plan = build_plan(run_path, checkpoint, do_merge, do_hub, do_gguf, do_ollama, do_verify, gguf_type,
                          ollama_name, ollama_host, hub_repo, hub_private, hub_token, hub_what)
    except EXPECTED as error:
        yield f"**Cannot export:** {error}", "", table, command, None
        return
    last_push = 0.0
    try:
        for event in pipeline.run_export(plan):
            append_log(log, format_event(event))
            ollama = event.data.get("ollama") or {}
            command = ollama.get("run_command") or (f"# no server reached; run this where Ollama is:\n{ollama['create_command']}"
                                                     if ollama.get("create_command") else command)
            table = verify_rows(event.data.get("verify")) or table
            # Converter logs come per tensor; refresh the page a few times a second, not per line.
            if event.kind != "progress" or time.monotonic() - last_push > 0.3:
                last_push = time.monotonic()
                yield status_markdown(event), "\n".join(log), table, command, None
    except EXPECTED as error:
        log.append(f"[export] {error}")
        yield f"**Export stopped:** {error}", "\n".join(log), table, command, None
        return
    except Exception as error:  # last resort: merging and converting run third-party code on any model
        log.append(f"[export] unexpected error: {type(error).__name__}: {error}")
        yield f"**Export stopped:** {unexpected(error, 'the export')}", "\n".join(log), table, command, None
        return
    summary = event.data if event.kind == "summary" else None
    yield status_markdown(event), "\n".join(log), table, command, summary


def export_downloads(summary: dict | None):
    """After an export: the GGUF, its Modelfile and the merged model (zipped when small enough)
    as downloads, and a line about anything too large to offer (and where it is instead)."""
    if not summary:
        return gr.update(value=None, visible=False), ""
    try:
        files, notes = downloads(summary)
    except OSError as error:  # a full disk while zipping: the files stay in the workspace
        return gr.update(value=None, visible=False), f"Could not prepare the downloads: {error}"
    return gr.update(value=[str(f) for f in files] or None, visible=bool(files)), " ".join(notes)


def build_export_tab(shown=()) -> None:
    """`shown`: the triggers on which the run list is read again (page load, the tab selected)."""
    gr.Markdown(t("Ship a trained run: merge the adapter into its base, push to the Hugging Face Hub, convert to GGUF "
                "for llama.cpp and Ollama, and check the GGUF answers like the merged model."))
    with gr.Row():
        runs = run_choices()
        first = runs[0][1] if runs else None
        # min_width everywhere on this tab: on a phone a row wraps into whole-width boxes instead of
        # squeezing five labels into 390 px (tests/e2e/test_phone.py)
        run = gr.Dropdown(label=t("Run to export"), choices=runs, value=first, scale=3, min_width=280)
        checkpoint = gr.Dropdown(label=t("Checkpoint (best = lowest eval loss, else the final adapter)"),
                                 choices=checkpoint_choices(first), value="best", scale=2, min_width=280)
        refresh = gr.Button(t("↻ Refresh runs"), scale=0, min_width=140)
    with gr.Row(elem_classes="phone-wrap"):  # checkboxes ignore min_width: studio.css wraps the row on a phone
        do_merge = gr.Checkbox(label=t("Merge adapter into the base model"), value=True)
        do_hub = gr.Checkbox(label=t("Push to the Hugging Face Hub"), value=False)
        do_gguf = gr.Checkbox(label=t("Convert to GGUF"), value=True)
        do_ollama = gr.Checkbox(label=t("Create in Ollama"), value=False)
        do_verify = gr.Checkbox(label=t("Verify the GGUF against the merged model"), value=True)
    with gr.Row():
        gguf_type = gr.Dropdown(label=t("GGUF type"), choices=list(ALL_TYPES), value=pipeline.DEFAULT_GGUF, scale=1, min_width=200)
        gguf_note = our_words(gr.Markdown(t(gguf_type_note("q8_0"))))
    with gr.Row():
        ollama_name = gr.Textbox(label=t("Ollama model name"), placeholder=t("my-tuned-model"), min_width=280)
        ollama_host = gr.Textbox(label=t("Ollama server address"), placeholder=t("http://127.0.0.1:11434 (or OLLAMA_HOST)"), min_width=280,
                                 info=t("Only servers the studio's operator allows (OLLAMA_HOST, STUDIO_OLLAMA_HOSTS)"))
    with gr.Row(elem_classes="phone-wrap"):
        hub_repo = gr.Textbox(label=t("Hub repository"), placeholder=t("your-name/my-adapter"), min_width=280)
        hub_what = gr.Radio(label=t("What to push"), value="auto", min_width=280,
                            choices=[(t("adapter (or full model)"), "auto"), (t("merged model"), "merged"), ("GGUF", "gguf")])
        hub_private = gr.Checkbox(label=t("Private repository"), value=True, min_width=280)
        hub_token = gr.Textbox(label=t(f"Hub token (write access; not stored; empty: {sessions.empty_token_means()})"), type="password",
                               min_width=280)
    start = gr.Button(t("Export"), variant="primary")
    status = our_words(gr.Markdown(t("Pick a run, tick the steps, press Export."), elem_id="export-status"))
    log = our_words(gr.Textbox(label=t("Progress log"), lines=14, max_lines=14, autoscroll=True, interactive=False,
                               elem_id="export-log"))
    table = gr.Dataframe(headers=VERIFY_HEADERS, label=t("Verification: greedy answers, merged model vs GGUF"), wrap=True,
                         interactive=False,
                         column_widths=["20%", "30%", "30%", "10%", "10%"])
    command = gr.Textbox(label=t("Run it in Ollama (copy into a terminal)"), lines=2, max_lines=4, interactive=False,
                         buttons=["copy"], elem_id="export-command")
    files = gr.File(label=t("Download what the export made (GGUF, Modelfile, the merged model as a zip)"), file_count="multiple",
                    interactive=False, visible=False, elem_id="export-files")
    files_note = our_words(gr.Markdown(elem_id="export-files-note"))
    summary = gr.State(None)

    inputs = [run, checkpoint, do_merge, do_hub, do_gguf, do_ollama, do_verify, gguf_type,
              ollama_name, ollama_host, hub_repo, hub_private, hub_token, hub_what]
    refresh.click(refresh_runs, inputs=[run, checkpoint], outputs=[run, checkpoint])
    if shown:  # a run list built when the server started would miss every run since
        gr.on(list(shown), refresh_runs, inputs=[run, checkpoint], outputs=[run, checkpoint], show_progress="hidden")
    run.change(refresh_checkpoints, inputs=run, outputs=checkpoint)
    gguf_type.change(gguf_type_note, inputs=gguf_type, outputs=gguf_note)
    (start.click(run_export_stream, inputs=inputs, outputs=[status, log, table, command, summary])
     .then(export_downloads, summary, [files, files_note]))
