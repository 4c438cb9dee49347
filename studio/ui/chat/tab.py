"""The Chat tab: base and tuned side by side, live and over a prompt set.

Left pane: the base model. Right pane: any adapter, checkpoint or model of any run (or a folder
typed in the workspace). Both answer the same messages with the same sampling settings and
stream at once. Below the panes: save the exchange as a preference example, and an A/B run
over a prompt set with per-prompt and aggregate tables and downloads. Handlers are plain
module-level functions (generators when streaming) that tests call directly; core.chat.engine and
core.eval (and torch) are imported when first needed, not when the app starts.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio as gr

from core.eval.preferences import export_kto, save_preference
from core.train import run_dir
from core.workspace import PathOutsideWorkspace
from studio.ui.chat import eval_view
from studio.ui.chat.ab import AGGREGATE_HEADERS, prompt_set_choices
from studio.ui.chat.sides import (
    NO_TUNED,
    engine_with_tuned,
    problem,
    refresh_tuned,
    sampling_from,
    tuned_path,
)
from studio.ui.language import choices, our_words, t
from studio.ui.problems import EXPECTED, unexpected
from studio.ui.zerogpu import gpu

LEFT, RIGHT = "Base (left) is better", "Tuned (right) is better"
GENERATION = dict(concurrency_limit=2, concurrency_id="chat-generation")  # two visitors share, a third queues


def empty_conversation() -> dict:
    return {"base": [], "tuned": [], "tuned_label": ""}


# ---- the A/B section's checkpoint list -------------------------------------------------------

def compare_choices(choice: str | None):
    """Every result of the run that holds the picked tuned side, for the checkpoint comparison."""
    try:
        path = Path(tuned_path(choice) or "")
    except PathOutsideWorkspace:
        return gr.update(choices=[], value=[])
    # Only a run of this workspace: the walk up stops at runs/, never above the workspace.
    run = run_dir.run_holding(path) if choice else None
    run = run if run is not None and run_dir.in_runs_folder(run) else None
    options = [(label, str(p)) for label, p in run_dir.model_artifacts(run)] if run else []
    return gr.update(choices=options, value=[])


# ---- rendering -----------------------------------------------------------------------------

def to_chatbot(messages: list[dict]) -> list[dict]:
    """Chat messages for a Chatbot: each <think> block becomes a collapsed thought whose title
    gives its length (open with a spinner while it is still being written)."""
    from core.chat.engine import split_think, think_title

    shown = []
    for message in messages:
        if message["role"] != "assistant":
            shown.append({"role": message["role"], "content": message["content"]})
            continue
        split = split_think(message["content"])
        if split.think is not None:
            status = "done" if split.closed else "pending"
            shown.append({"role": "assistant", "content": split.think or "(empty)",
                          "metadata": {"title": think_title(split), "status": status}})
        if split.answer or split.think is None:
            shown.append({"role": "assistant", "content": split.answer})
    return shown


LOADING_SHOWN_S = 0.5  # a load shorter than this (the models were already in memory) is not worth a word


def pane_stats(pane, loading_s: float = 0.0) -> str:
    """Tokens, speed and the wait for the first token; the first answer after loading the models
    says how much of the wait that was, so a person is not told 0.4 s after waiting 20."""
    if pane is None:
        return ""
    if pane.error:
        return f"⚠️ {pane.error}"
    ttft = f"{pane.ttft_s:.2f} s" if pane.ttft_s is not None else "…"
    loading = f" (plus **{loading_s:.1f} s** loading the model first)" if loading_s >= LOADING_SHOWN_S else ""
    state = "" if pane.done else " · generating…"
    return f"{pane.tokens} tokens · **{pane.tokens_per_s:.1f} tokens/s** · first token after **{ttft}**{loading}{state}"


def _view(conversation: dict, panes: dict | None = None, status: str = "", answering: bool = True,
          loading_s: float = 0.0) -> tuple:
    """(base chatbot, tuned chatbot, base stats, tuned stats, conversation, status); while
    `answering`, each pane's text so far is shown after its history."""
    panes = panes or {}
    shown = {}
    for side in ("base", "tuned"):
        live = [{"role": "assistant", "content": panes[side].text}] if answering and side in panes else []
        shown[side] = to_chatbot(conversation[side] + live)
    return (shown["base"], shown["tuned"], pane_stats(panes.get("base"), loading_s),
            pane_stats(panes.get("tuned"), loading_s), conversation, status)


# ---- chat handlers -------------------------------------------------------------------------

@gpu  # ZeroGPU: a GPU is attached for the generation only (no-op elsewhere)
def send_message(message, conversation, base_model, tuned_choice, system, temperature, top_p, max_new_tokens, seed):
    """Stream both panes' answers to `message`; yields (chatbots, stats, conversation, status, box)."""
    from core.chat.engine import BASE

    conversation = conversation or empty_conversation()
    if not (message or "").strip():
        yield *_view(conversation, status="Type a message first."), message
        return
    from core.chat.engine import loaded_engine

    loading = ("Loading the model (the first time the built-in model is unpacked, about 20 s; later a few "
               "seconds)…" if loaded_engine() is None else "Answering…")
    yield *_view(conversation, status=loading), ""
    started = time.perf_counter()
    try:
        sampling = sampling_from(system, temperature, top_p, max_new_tokens, seed).check()
        engine, tuned_key = engine_with_tuned(base_model, tuned_choice)
        loading_s = time.perf_counter() - started  # loading the base, attaching (and measuring) the tuned side
    except EXPECTED as error:  # a wrong model, adapter or setting: say what, keep the message
        yield *_view(conversation, status=problem(error)), message
        return
    except Exception as error:  # last resort: transformers/peft raise many kinds on a broken model folder
        yield *_view(conversation, status="⚠️ " + unexpected(error, "loading the models")), message
        return
    turn = {"role": "user", "content": message.strip()}
    sides = {"base": BASE} | ({"tuned": tuned_key} if tuned_key else {})
    histories = {pane: conversation[pane] + [turn] for pane in sides}
    status = "" if tuned_key else "No tuned side picked: only the base model answers."
    panes, stop = {}, threading.Event()
    try:
        for streamed in engine.stream({key: histories[pane] for pane, key in sides.items()}, sampling, stop):
            panes = {pane: streamed[key] for pane, key in sides.items()}
            yield *_view({**conversation, **{p: h for p, h in histories.items()}}, panes, status, loading_s=loading_s), ""
    finally:
        stop.set()  # Stop pressed or the visitor left: end generation
    for pane, history in histories.items():
        conversation[pane] = history + [{"role": "assistant", "content": panes[pane].text}]
    conversation["tuned_label"] = tuned_choice or ""
    yield *_view(conversation, panes, status, answering=False, loading_s=loading_s), ""


def retry_last(conversation, base_model, tuned_choice, system, temperature, top_p, max_new_tokens, seed):
    """Drop the last exchange from both panes and ask the same message again."""
    conversation = conversation or empty_conversation()
    if not conversation["base"]:
        yield *_view(conversation, status="Nothing to retry yet."), ""
        return
    message = conversation["base"][-2]["content"]
    trimmed = {**conversation, "base": conversation["base"][:-2], "tuned": conversation["tuned"][:-2]}
    yield from send_message(message, trimmed, base_model, tuned_choice, system, temperature, top_p, max_new_tokens, seed)


def clear_chat():
    return _view(empty_conversation())


def send_to_dataset(conversation, preference, system):
    """Save the last exchange as a preference example: chosen = the preferred pane."""
    conversation = conversation or empty_conversation()
    if not conversation["base"] or not conversation["tuned"]:
        return "⚠️ Chat with both a base and a tuned side first: a preference needs two answers."
    if preference not in (LEFT, RIGHT):
        return "⚠️ Pick which answer is better first."
    chosen, rejected = ("base", "tuned") if preference == LEFT else ("tuned", "base")
    prompt = ([{"role": "system", "content": system}] if (system or "").strip() else []) + conversation[chosen][:-1]
    try:
        path = save_preference(prompt, conversation[chosen][-1]["content"], conversation[rejected][-1]["content"],
                               chosen_side=chosen)
    except EXPECTED as error:
        return problem(error)
    count = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return f"Saved to `{path}` ({count} examples). Open it in the Dataset tab as preference data."


def picks_as_kto():
    """Every saved pick as KTO data: the better answer a good reply, the other a bad one."""
    try:
        path = export_kto()
    except EXPECTED as error:
        return problem(error)
    count = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return (f"Wrote `{path}`: {count} replies labelled good or bad. Train it with method kto (DPO and ORPO "
            "read the pairs file itself).")


# ---- layout --------------------------------------------------------------------------------

# Sending from the message box (below the panes, often scrolled to) would leave the answers
# streaming above the screen: on Enter in the box or a click on Send, scroll so the panes' tops
# (where answers start) are in view. Installed once per page (launch's js, studio/ui/app.py), in
# the page itself: a gradio listener's js would wait behind the model's first load.
SHOW_ANSWERS_JS = """() => {
  const show = () => { const pane = document.querySelector('#chat-base');
    if (pane && pane.getBoundingClientRect().top < 0) pane.scrollIntoView({block: 'start'}); };
  document.addEventListener('keydown', e => {
    if (e.key === 'Enter' && !e.shiftKey && e.target.closest && e.target.closest('#chat-message')) show(); }, true);
  document.addEventListener('click', e => { if (e.target.closest && e.target.closest('#chat-send')) show(); }, true);
}"""


def build_chat_tab(shown=()) -> None:
    """`shown`: the triggers on which the run list is read again (page load, the tab selected)."""
    gr.Markdown(t("Ask both models the same thing. **Left:** the base model. **Right:** a tuned adapter, "
                "checkpoint or model. Same settings for both, so differences come from the weights."))
    with gr.Row():
        # min_width: on a phone each box takes the whole width (the row wraps) instead of cutting its value
        base_model = gr.Textbox("embedded", label=t("Base model"), info=t("embedded, a model folder, or a Hub id"), scale=2,
                                min_width=240)
        tuned = gr.Dropdown(choices([(NO_TUNED, "")]), value="", label=t("Tuned side"), allow_custom_value=True, scale=3, min_width=300,
                            info=t("any run's adapter or checkpoint, or type a folder path inside the workspace"))
        refresh = gr.Button(t("↻ Refresh runs"), scale=0, min_width=120)
    run_verdict = our_words(gr.Markdown(elem_id="chat-run-verdict"))  # the picked run's evaluation after training, up front
    tuned.change(eval_view.run_verdict, tuned, run_verdict)
    with gr.Accordion(t("Settings (shared by both panes)"), open=False):
        system = gr.Textbox(label=t("System prompt"), placeholder=t("optional"), lines=2)
        with gr.Row():
            temperature = gr.Slider(0, 2, value=0, step=0.05, label=t("Temperature"), info=t("0 = greedy (always the most likely token)"))
            top_p = gr.Slider(0.05, 1, value=1, step=0.05, label=t("Top-p"),
                              info=t("sample only from the most likely tokens covering this share"))
            max_new_tokens = gr.Slider(16, 2048, value=256, step=16, label=t("Max new tokens"))
            seed = gr.Number(0, precision=0, label=t("Seed"), info=t("same seed, same answer when sampling"))
    with gr.Row(equal_height=True):
        with gr.Column():
            base_chat = gr.Chatbot(label=t("Base model"), height=420, feedback_options=None, buttons=["copy_all"], elem_id="chat-base")
            base_stats = our_words(gr.Markdown(elem_id="chat-base-stats"))
        with gr.Column():
            tuned_chat = gr.Chatbot(label=t("Tuned model"), height=420, feedback_options=None, buttons=["copy_all"], elem_id="chat-tuned")
            tuned_stats = our_words(gr.Markdown(elem_id="chat-tuned-stats"))
    with gr.Row():
        message = gr.Textbox(label=t("Message"), placeholder=t("Message both models (Enter sends)"), scale=5, elem_id="chat-message")
        send = gr.Button(t("Send"), variant="primary", scale=1, min_width=100, elem_id="chat-send")
    with gr.Row():
        stop = gr.Button(t("Stop"), size="sm")
        retry = gr.Button(t("Retry"), size="sm")
        clear = gr.Button(t("Clear"), size="sm")
        preference = gr.Radio(choices([LEFT, RIGHT]), label=t("Which answer is better?"), scale=3)
        save = gr.Button(t("Send to dataset"), size="sm", scale=1)
        kto = gr.Button(t("Picks as KTO data"), size="sm", scale=1, elem_id="chat-kto")
    status = our_words(gr.Markdown(elem_id="chat-status"))
    conversation = gr.State(empty_conversation())

    settings = [system, temperature, top_p, max_new_tokens, seed]
    chat_outputs = [base_chat, tuned_chat, base_stats, tuned_stats, conversation, status, message]
    sent = send.click(send_message, [message, conversation, base_model, tuned] + settings, chat_outputs, **GENERATION)
    submitted = message.submit(send_message, [message, conversation, base_model, tuned] + settings, chat_outputs, **GENERATION)
    retried = retry.click(retry_last, [conversation, base_model, tuned] + settings, chat_outputs, **GENERATION)
    stop.click(None, cancels=[sent, submitted, retried])
    for clears in (clear.click, base_chat.clear, tuned_chat.clear):  # the panes' own trash icons clear both
        clears(clear_chat, None, chat_outputs[:-1], cancels=[sent, submitted, retried])
    save.click(send_to_dataset, [conversation, preference, system], status)
    kto.click(picks_as_kto, None, status)

    _build_ab_section(base_model, tuned, settings)
    refresh.click(refresh_tuned, tuned, tuned)
    # Page load and showing the tab: runs finished since start-up (or since the page opened) appear.
    gr.on(list(shown) or None, refresh_tuned, tuned, tuned, show_progress="hidden")


def _build_ab_section(base_model, tuned, settings) -> None:
    gr.Markdown(t("### A/B over a prompt set\nRun every prompt through the base and the tuned side (and, to pick "
                "the best one, other checkpoints of the same run). Metrics: expected keywords found, refusals "
                "against `should_refuse`, length, latency, and pattern rates from the pattern list; with a tuned "
                "side, a report follows: substantive rate, source hits, each change with n and a 95% interval, "
                "per topic, and a verdict."))
    with gr.Row():
        prompt_set = gr.Dropdown(prompt_set_choices(), value=None, label=t("Bundled prompt set"), scale=2,
                                 info=t("an uploaded file takes precedence"))
        upload = gr.File(label=t("…or upload a prompt set (JSONL)"), file_types=[".jsonl"], type="filepath", scale=2,
                         elem_id="ab-upload")
        patterns = gr.File(label=t("Pattern list (YAML, optional)"), file_types=[".yaml", ".yml"], type="filepath", scale=1)
    with gr.Row():
        compare = gr.Dropdown([], multiselect=True, label=t("Compare checkpoints of the same run"),
                              info=t("pick a run's adapter or checkpoint as the tuned side to list the others"))
        judge = gr.Textbox(label=t("Pairwise judge (optional)"), elem_id="ab-judge",
                           placeholder=t("an Ollama model name, or embedded / hf:FOLDER for a local model"),
                           info=t("asks which answer is better, in both orders; says how often it agrees with your picks"))
    with gr.Row():
        run = gr.Button(t("Run A/B"), variant="primary")
        cancel = gr.Button(t("Stop A/B"))
    ab_status = our_words(gr.Markdown(elem_id="ab-status"))
    aggregate = gr.Dataframe(label=t("Aggregate (one column per side)"), headers=AGGREGATE_HEADERS, interactive=False, wrap=True,
                             max_height=1000, column_widths=["40%"], elem_id="ab-aggregate")
    per_prompt = gr.Dataframe(label=t("Per prompt"), headers=["prompt_id", "category", "prompt"], interactive=False,
                              wrap=True, max_height=500)
    report = eval_view.build_report_section()
    files = gr.File(label=t("Download results (CSV, JSONL, and the report as Markdown and JSON)"), file_count="multiple",
                    interactive=False)
    running = run.click(eval_view.run_ab_report, [prompt_set, upload, patterns, base_model, tuned, compare] + settings + [judge],
                        [ab_status, per_prompt, aggregate, files, *report], **GENERATION)
    cancel.click(None, cancels=[running])
    tuned.change(compare_choices, tuned, compare)

