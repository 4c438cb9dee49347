"""The Dataset tab's "Make a dataset" place: grounded Q&A from documents (generated in a
background process, watched with a progress bar, stopped and resumed at will) and mode-tagged
samples from raw records (a staged build that takes seconds). Both results open in the Dataset
tab for review; `build_make_accordion` returns the buttons and paths the tab wires to its opener.
Handlers are plain functions that tests call directly; they never raise into the page.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from core.dataset import make_worker, tokens
from core.dataset.make_docs import DOC_SUFFIXES, DocumentError
from core.dataset.make_modes import build_modes
from core.dataset.make_qa import KINDS, MakeError, QASettings
from core.dataset.make_schema import ChatTemplateSchema, SchemaError, load_schema_file
from core.hosting import DEMO_DATA, DemoRefusal, demo_mode, shared_workspaces
from core.train import quotas
from core.workspace import ASSETS, PathOutsideWorkspace, all_workspaces, as_visitor, inside, workspace
from studio.ui import visitor
from studio.ui.language import choices, our_words, t

SAMPLE_DOCS = ASSETS / "make" / "docs"
SAMPLE_RECORDS = ASSETS / "make" / "raw_records.jsonl"
DEMO_MAX_PAIRS = 20
DEMO_BUDGET_S = 15 * 60  # a demo generation stops (kept pairs stay, Resume goes on) after this long
DEMO_MAX_RUNNING = 1  # generations at once on a demo server, all visitors together
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class MadeLinks:
    """What the Dataset tab wires: each button opens the path its textbox holds."""

    qa_open: gr.Button
    qa_out: gr.Textbox
    modes_open: gr.Button
    modes_final: gr.Textbox


def made_folder() -> Path:
    folder = workspace().datasets / "made"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def output_for(name: str, suffix: str = ".jsonl") -> Path:
    name = (name or "").strip()
    if not _NAME.fullmatch(name) or name.endswith((".", ".make")):
        raise MakeError(f"Name {name!r}: use letters, digits, '-', '_' or '.', starting with a letter or digit")
    return made_folder() / f"{name}{suffix}"


def page_value(path: str | Path) -> str:
    """A workspace file as the page holds it: relative to the workspace (a shared studio's
    visitors never see the server's folders; relative paths start at the workspace everywhere)."""
    return Path(path).resolve().relative_to(workspace().root).as_posix()


def made_output(out: str | None) -> Path | None:
    """The generation a page names (its hidden output box, which a browser can forge) as a
    `.jsonl` file directly in the workspace's made/ folder; None for anything else. Stop and the
    progress timer act only on such a file, so no value makes them write or read elsewhere."""
    if not out or not str(out).strip():
        return None
    try:
        path = inside(str(out).strip())  # relative values start at the workspace
    except PathOutsideWorkspace:
        return None
    return path if path.parent == made_folder().resolve() and path.suffix == ".jsonl" else None


def document_choices() -> list[tuple[str, str]]:
    choices = [("Sample: 5 short documents written for the studio", str(SAMPLE_DOCS))]
    root = workspace().root / "documents"
    if root.is_dir():
        choices += [(f"Uploaded: {p.name}", str(p)) for p in sorted(root.iterdir()) if p.is_dir()]
    return choices


def _documents(choice: str | None, uploads: list | None, name: str) -> Path:
    if uploads:
        folder = workspace().root / "documents" / name
        folder.mkdir(parents=True, exist_ok=True)
        for upload in uploads:
            source = Path(upload)
            if source.suffix.lower() not in DOC_SUFFIXES:
                raise MakeError(f"{source.name}: not a document ({', '.join(DOC_SUFFIXES)})")
            shutil.copyfile(source, folder / source.name)
        return folder
    if not choice:
        raise MakeError("Pick the sample documents or upload some first.")
    return inside(choice)


# ---------------------------------------------------------------- Q&A from documents


def start_qa(choice, uploads, name, count, grounded, synthesis, refusal, chunk_size, chunk_overlap, seed, retries,
             backend, model, host, temperature, num_predict, think, resume=False):
    """Start (or resume) a generation in the background: (output path, status, progress, timer)."""
    try:
        out = output_for(name)
        settings = QASettings(count=int(count), grounded=float(grounded), synthesis=float(synthesis),
                              refusal=float(refusal), chunk_size=int(chunk_size), chunk_overlap=int(chunk_overlap),
                              seed=int(seed), retries=int(retries))
        local = str(backend or "").startswith("transformers")
        # A typed model or address is a visitor's: a local model through the model guard, an Ollama
        # address only if the operator allows it (an Ollama model name is only a name to that server).
        spec = {"backend": "transformers" if local else "ollama",
                "model": (visitor.model(model) if local else (model or "").strip()) or None,
                "host": None if local else visitor.ollama_host(host),
                "temperature": float(temperature), "num_predict": int(num_predict) if num_predict else None,
                "think": {"model default": None, "on": True, "off": False}.get(think), "seed": int(seed)}
        limits = {}
        if demo_mode():  # a shared studio: the bundled model and documents only, short runs that end with the server
            spec.update(backend="transformers", model="embedded", host=None)
            settings.count = min(settings.count, DEMO_MAX_PAIRS)
            limits = _demo_limits(choice, uploads)
        elif shared_workspaces():
            _one_at_a_time()
        quotas.check_made_dataset(settings.count)
        documents = _documents(choice, uploads, out.stem)
        make_worker.start(documents, out, settings, spec, resume=resume, **limits)
    except (MakeError, DocumentError, *visitor.Refused, ValueError, OSError) as error:
        return gr.skip(), f"**Can't start.** {error}", gr.skip(), gr.Timer(active=False)
    verb = "Resuming" if resume else "Making"
    return (page_value(out), f"{verb} **{out.name}** in the background: you may close this page; it keeps going.",
            progress_html({"state": "starting", "total": settings.count, "done": 0}), gr.Timer(active=True))


class DemoBusy(MakeError):
    """A demo server already makes as many datasets as it allows at once."""


SHARED_MAX_RUNNING = 2  # a shared studio's generations at once, all visitors together (STUDIO_MAKE_MAX_RUNNING)


def _one_at_a_time() -> None:
    """A shared studio: one generation at a time per visitor, and a cap for the whole server."""
    mine = running_outputs()
    if mine:
        raise DemoBusy(f"you are making {mine[0].name} already; stop it or wait for it to end, then start another")
    cap = int(os.environ.get("STUDIO_MAKE_MAX_RUNNING") or SHARED_MAX_RUNNING)
    if len(running_on_this_server()) >= cap:
        raise DemoBusy(f"this studio makes {cap} datasets at a time for all its visitors; try again when one ends")


def _demo_limits(choice, uploads) -> dict:
    """What a demo visitor's generation may use: the sample documents, one generation at a time
    on the whole server (every visitor's workspace counts), a time budget, and a worker that stops
    when this server does."""
    if uploads or (choice and inside(choice) != SAMPLE_DOCS.resolve()):
        raise DemoRefusal(f"documents: {DEMO_DATA}")
    if len(running_on_this_server()) >= DEMO_MAX_RUNNING:
        raise DemoBusy("this demo studio makes one dataset at a time; try again when the current one ends")
    return {"owner_pid": os.getpid(), "budget_s": DEMO_BUDGET_S}


def resume_qa(*values):
    return start_qa(*values, resume=True)


def stop_qa(out):
    made = made_output(out)
    if made is None or make_worker.status(made) is None:
        return "Nothing is being made."
    make_worker.stop(made)
    return f"Stopping **{made.name}**: every pair made so far is kept; press Resume to go on."


def poll_qa(out):
    """One timer tick: (progress, status, timer)."""
    made = made_output(out)
    manifest = make_worker.status(made) if made else None
    if manifest is None:
        return gr.skip(), gr.skip(), gr.skip()
    live = manifest.get("state") in ("running", "starting")
    return progress_html(manifest), status_markdown(manifest, str(made)), gr.Timer(active=live)


def progress_html(manifest: dict) -> str:
    total, done = max(int(manifest.get("total") or 0), 1), int(manifest.get("done") or 0)
    share = min(done / total, 1.0)
    rate = manifest.get("pairs_per_min")
    eta = manifest.get("eta_s")
    parts = [f"{done} / {total} pairs", f"{manifest.get('kept', 0)} kept", f"{manifest.get('rejected', 0)} rejected replies"]
    if rate is not None:
        parts.append(f"{rate:.1f} pairs/min")
    if eta is not None and manifest.get("state") == "running":
        parts.append(f"ETA {_duration(eta)}")
    parts.append(str(manifest.get("state", "")))
    return (f"<div id='make-progress' class='make-progress'><div style='background:#e5e7eb;border-radius:6px;height:14px'>"
            f"<div style='width:{share:.1%};background:#6366f1;height:14px;border-radius:6px'></div></div>"
            f"<div class='make-progress-text'>{html.escape(' · '.join(parts))}</div></div>")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds >= 3600 else f"{seconds // 60} min {seconds % 60} s"


def status_markdown(manifest: dict, out: str) -> str:
    state = manifest.get("state")
    name = Path(out).name
    kinds = manifest.get("by_kind") or {}
    mix = ", ".join(f"{kinds.get(k, 0)} {k}" for k in KINDS)
    thinking = manifest.get("from_thinking") or 0
    note = f" {thinking} taken from the model's thinking field." if thinking else ""
    given_up = len(manifest.get("gave_up") or [])
    lines = {"running": f"Making **{name}**: {mix}.{note}",
             "completed": f"**{name}** is ready: {mix}; {given_up} pairs given up after retries.{note} "
                          "Open it in the Dataset tab to check and review it.",
             "stopped": f"**{name}** stopped: {mix} kept. Press Resume to go on.",
             "interrupted": f"**{name}** was interrupted (its process ended): {mix} kept. Press Resume to go on.",
             "failed": f"**{name}** failed: {manifest.get('error') or 'see the worker log'}. Fix it and press Resume."}
    if state == "completed" and not manifest.get("kept"):
        lines["completed"] = (f"**{name}** finished without a usable pair: all {given_up} were given up after "
                              "retries. A larger model or token budget helps.")
    rejected = f" Rejected replies and why: `{Path(out).stem}.make/rejected.log`." if manifest.get("rejected") else ""
    return lines.get(state, f"{name}: {state}") + rejected


# ---------------------------------------------------------------- mode-tagged samples


def build_modes_ui(records, upload, name, only_mode, max_count, schema_choice, model):
    """The staged build, in this process (seconds): (final file path, summary markdown)."""
    try:
        source = Path(upload) if upload else inside(records or SAMPLE_RECORDS)
        if demo_mode() and source != SAMPLE_RECORDS.resolve():
            raise DemoRefusal(f"records: {DEMO_DATA}")
        out = output_for(name, "")
        if schema_choice == "prefix/suffix file (Llama 2 layout)":
            schema = load_schema_file(ASSETS / "make" / "schema_plain.yaml")
        else:
            schema = ChatTemplateSchema(tokens.tokenizer_for(visitor.model(model)), model or "embedded")
        summary = build_modes(source, out, only_mode=None if only_mode in (None, "", "all") else only_mode,
                              max_count=int(max_count) if max_count else None, schema=schema)
    except (MakeError, SchemaError, *visitor.Refused, ValueError, OSError) as error:
        return gr.skip(), f"**Can't build.** {error}"
    return page_value(summary["stages"]["final"]["file"]), modes_markdown(summary)


def modes_markdown(summary: dict) -> str:
    stages, check = summary["stages"], summary["check"]
    cur = stages["curated"]
    verdict = ("**Clean**: no contamination in final.jsonl." if summary["ok"] else
               f"**Build failed**: {check['problems']} problem(s) in final.jsonl." if check["problems"] else
               "**Build failed**: no record was left to build; the dropped lines below say why.")
    lines = [verdict, "", "| stage | rows | file |", "| --- | --- | --- |",
             f"| curated | {cur['rows_out']} of {cur['rows_in']} ({cur['filler_removed']} filler phrases removed) "
             f"| `{Path(cur['file']).name}` |"]
    lines += [f"| {n} | {stages[n]['rows_out']} | `{Path(stages[n]['file']).name}` |" for n in ("formatted", "schema", "final")]
    lines.append("")
    for row in summary["dropped"]["rows"][:10]:
        lines.append(f"- dropped line {row['line']}: {html.escape(row['reason'])}")
    for row in summary["mode_shares"]:
        lines.append(f"- mode {row['mode']}: {row['count']} samples, {row['share']:.0%} (target {row['target']:.0%}, {row['status']})")
    for item in check["contamination"][:10]:
        lines.append(f"- contamination in row {item['row']} ({html.escape(str(item['id']))}), mode {item['mode']}: "
                     f"{item['reason']} {html.escape(' '.join(item['tags']))}")
    for metric in check["metrics"].values():
        lines.append(f"- [{metric['status']}] {metric['label']}: {metric['display']} (target {metric['target']})")
    lines.append(f"\nEvery stage and `run-summary.json` are in `{summary['out']}`.")
    return "\n".join(lines)


# ---------------------------------------------------------------- layout


def build_make_accordion() -> MadeLinks:
    with gr.Accordion(t("Make a dataset: Q&A from documents, or mode-tagged samples from raw records"), open=False,
                      elem_id="make"), gr.Tabs():
        with gr.Tab(t("Q&A from documents")):
            links = _qa_panel()
        with gr.Tab(t("Mode-tagged samples from raw records")):
            modes_open, modes_final = _modes_panel()
    return MadeLinks(links[0], links[1], modes_open, modes_final)


def _qa_panel():
    defaults = QASettings()
    gr.Markdown(t("A local model writes question / answer pairs from your documents in a fixed mix: **grounded** "
                "(one document's passage, a cited answer), **synthesis** (two documents, a comparison) and "
                "**refusal** (an unrelated question, a polite refusal that says why). Every reply is checked before "
                "it is kept; bad ones are retried alone."))
    with gr.Row(equal_height=True):
        docs = gr.Dropdown(choices(document_choices()), value=str(SAMPLE_DOCS), label=t("Documents"), scale=2)
        uploads = gr.File(file_count="multiple", file_types=list(DOC_SUFFIXES), type="filepath", height=110, scale=2,
                          label=t("…or upload .txt / .md / .pdf / .jsonl documents"))
        name = gr.Textbox("rag-qa", label=t("Name of the new dataset"), scale=1, elem_id="make-qa-name")
    with gr.Row(equal_height=True):
        count = gr.Number(20, precision=0, minimum=1, label=t("Pairs (the reference run made 1,997)"), elem_id="make-count")
        grounded = gr.Number(defaults.grounded, minimum=0, maximum=1, label=t("Grounded share"))
        synthesis = gr.Number(defaults.synthesis, minimum=0, maximum=1, label=t("Synthesis share"))
        refusal = gr.Number(defaults.refusal, minimum=0, maximum=1, label=t("Refusal share"))
        chunk_size = gr.Number(defaults.chunk_size, precision=0, label=t("Chunk size (characters)"))
        chunk_overlap = gr.Number(defaults.chunk_overlap, precision=0, label=t("Chunk overlap (characters)"))
    with gr.Row(equal_height=True):
        backend = gr.Radio(choices(["Ollama server", "transformers (local model)"]), value="Ollama server", label=t("Model runs on"))
        model = gr.Textbox("qwen3:4b", label=t("Model (Ollama name, or embedded / a folder for transformers)"),
                           elem_id="make-model")
        host = gr.Textbox("", label=t("Ollama address (empty: OLLAMA_HOST or 127.0.0.1:11434)"), elem_id="make-host")
        temperature = gr.Number(0.7, minimum=0, maximum=2, label=t("Temperature"))
        num_predict = gr.Number(2048, precision=0, minimum=16, label=t("Token budget per reply (num_predict)"))
        think = gr.Dropdown(choices(["model default", "on", "off"]), value="model default", label=t("Thinking (Ollama)"))
    with gr.Row(equal_height=True):
        seed = gr.Number(defaults.seed, precision=0, label=t("Seed"))
        retries = gr.Number(defaults.retries, precision=0, minimum=0, label=t("Retries per pair"))
        start = gr.Button(t("Start"), variant="primary", elem_id="make-start")
        resume = gr.Button(t("Resume"), elem_id="make-resume")
        stop = gr.Button(t("Stop"), variant="stop", elem_id="make-stop")
        open_button = gr.Button(t("Open in the Dataset tab"), elem_id="make-open")
    progress = our_words(gr.HTML(t(progress_html({"state": "not started", "total": 0}))))
    status = our_words(gr.Markdown(elem_id="make-status"))
    # What Start, Stop, the progress timer and "Open" act on. Set by events only: a value computed at
    # page load (it once was) could land after a quick visitor typed a name and pressed Start, and
    # Open then opened the default file instead of the one just made.
    out = gr.Textbox(made_path("rag-qa"), visible=False)
    gr.on(None, reattach, None, [name, out])  # page load: watch a generation that is still running
    timer = gr.Timer(1.0)
    inputs = [docs, uploads, name, count, grounded, synthesis, refusal, chunk_size, chunk_overlap, seed, retries,
              backend, model, host, temperature, num_predict, think]
    start.click(start_qa, inputs, [out, status, progress, timer])
    resume.click(resume_qa, inputs, [out, status, progress, timer])
    stop.click(stop_qa, out, status)
    timer.tick(poll_qa, out, [progress, status, timer])
    name.change(made_path, name, out)
    backend.change(backend_defaults, backend, [model, num_predict])
    return open_button, out


def backend_defaults(backend):
    """The model and budget that suit each backend: a small local model needs a small budget."""
    if backend.startswith("transformers"):
        return "embedded", 256
    return "qwen3:4b", 2048


def current_output() -> str:
    """The output a page (re)loaded now should watch: the newest generation still running in the
    workspace, else the default name's file."""
    live = running_outputs()
    if live:
        return page_value(max(live, key=lambda out: (out.parent / f"{out.stem}.make" / "job.json").stat().st_mtime))
    return made_path("rag-qa")


def reattach():
    """Page load: while a generation runs, show its name and watch it; otherwise leave the form
    as the visitor may already have changed it."""
    if not running_outputs():
        return gr.skip(), gr.skip()
    out = Path(current_output())
    return out.stem, str(out)  # current_output is already relative to the workspace


def running_outputs() -> list[Path]:
    """The outputs in the workspace whose generation is still running."""
    outputs = [job.parent.parent / (job.parent.name[: -len(".make")] + ".jsonl")
               for job in made_folder().glob("*.make/job.json")]  # job.json: written before the worker starts
    return [out for out in outputs if make_worker.is_running(out)]


def running_on_this_server() -> list[Path]:
    """Running generations in every workspace of this server (a shared studio's visitors too)."""
    found = []
    for key, _ in all_workspaces():
        with as_visitor(key):
            found += running_outputs()
    return found


def made_path(name):
    try:
        return page_value(output_for(name))
    except MakeError:
        return ""


def _modes_panel():
    gr.Markdown(t("Raw records (JSONL, each with a `type` and a `text` or an `input`/`output` exchange) become "
                "mode-tagged samples: the type -> mode map, the filler list and the prompts are in "
                "`assets/modes_make.yaml`. Every stage writes its file; contamination fails the build."))
    with gr.Row(equal_height=True):
        records = gr.Dropdown(choices([("Sample: 36 raw records", str(SAMPLE_RECORDS))]), value=str(SAMPLE_RECORDS),
                              label=t("Raw records"), scale=2)
        upload = gr.File(file_types=[".jsonl"], type="filepath", height=110, label=t("…or upload records (JSONL)"), scale=2)
        name = gr.Textbox("modes", label=t("Name of the output folder"), scale=1)
    with gr.Row(equal_height=True):
        only_mode = gr.Dropdown(choices(["all", "dual", "emulation", "agent"]), value="all", label=t("Only this mode"))
        max_count = gr.Number(0, precision=0, minimum=0, label=t("At most this many samples (0: all)"))
        schema = gr.Radio(choices(["chat template of the model", "prefix/suffix file (Llama 2 layout)"]),
                          value="chat template of the model", label=t("Model-family schema"))
        model = gr.Textbox("embedded", label=t("Model whose chat template is used"))
    with gr.Row():
        build = gr.Button(t("Build"), variant="primary", elem_id="make-modes-build")
        open_button = gr.Button(t("Open final.jsonl in the Dataset tab"), elem_id="make-modes-open")
    summary = our_words(gr.Markdown(elem_id="make-modes-summary"))
    final = gr.Textbox(visible=False)
    build.click(build_modes_ui, [records, upload, name, only_mode, max_count, schema, model], [final, summary])
    return open_button, final
