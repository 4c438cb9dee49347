""""Start here": the first screen's path for a person who has never fine-tuned a model: open a
clean sample and check it, train the smoke recipe, chat with base and tuned side by side,
export. Each step says in one sentence what it does and takes the person to the tab where it
happens. Someone who knows the way hides it; the browser remembers that (a UI preference, not
a secret). Knows nothing about the tabs' insides beyond their ids."""

from __future__ import annotations

import gradio as gr

from core.train.runs import list_runs
from core.workspace import ASSETS
from studio.ui.language import our_words, t

FIRST_SAMPLE = ASSETS / "friction_sample.jsonl"  # clean, and what the smoke recipe trains on
SMOKE_RECIPE = "smoke-cpu"
# Measured on a 2-core CPU (README, bench/smoke_recipe.py): the time said before the first run.
SMOKE_REFERENCE_S = 90

STEPS = (
    ("dataset", "1. Look at the data",
     "Open the sample conversations (already picked) with **Open and check**: the cards say what the checks found "
     "and what to do; a green card is fine. Click a row to read it as a chat."),
    ("train", "2. Train",
     "The **smoke recipe** is loaded: it teaches a small built-in model (135M parameters) from the sample. Press "
     "**Start** and watch the loss curve fall; {smoke_time}."),
    ("chat", "3. Compare",
     "Pick your run on the right, type a question, and read the base model (left) and your tuned model (right) "
     "answer it side by side with the same settings."),
    ("export", "4. Take it with you",
     "Pick the run and press **Export**: it merges the adapter into the model and writes a GGUF file for llama.cpp "
     "and Ollama, checked by loading it back; download the files from there."),
)


def smoke_time() -> str:
    """How long the smoke recipe takes here: the last completed run of it on this machine, else
    the reference measurement."""
    try:
        done = [info for info in list_runs() if info.state == "completed" and info.recipe.get("name") == SMOKE_RECIPE
                and info.duration_s]
    except OSError:
        done = []
    if done:
        return f"it took {_minutes(done[0].duration_s)} on this machine last time"
    return (f"about {_minutes(SMOKE_REFERENCE_S)} on a 2-core CPU (the first run also unpacks the built-in model, "
            "about 20 s more)")


def _minutes(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 90 else f"{seconds / 60:.1f} minutes"


def step_markdown(tab: str) -> str:
    _, title, text = next(step for step in STEPS if step[0] == tab)
    return f"**{title}**  \n{text.format(smoke_time=smoke_time() if tab == 'train' else '')}"


def go_to(tab: str):
    """Show the step's tab."""
    return gr.Tabs(selected=tab)


def show_guide(hidden: bool | None):
    """Page load: the guide, unless this browser hid it."""
    return gr.update(visible=not hidden), gr.update(visible=bool(hidden))


def hide_guide():
    return True, gr.update(visible=False), gr.update(visible=True)


def unhide_guide():
    return False, gr.update(visible=True), gr.update(visible=False)


def build_guide(shown) -> dict[str, gr.Button]:
    """The guide, laid out where it is called (above the tabs); `shown` is the page-load trigger.
    Returns its Go buttons by tab id, for `wire_guide` once the tabs exist."""
    hidden = gr.BrowserState(False, storage_key="studio-guide-hidden", secret="a-ui-preference-not-a-secret")
    buttons: dict[str, gr.Button] = {}
    with gr.Column(variant="panel", elem_id="start-here") as guide:
        gr.Markdown(t("### Start here: your first tuned model in four steps"), elem_id="start-here-title")
        with gr.Row(equal_height=True, elem_classes=["start-steps"]):
            for tab, title, _ in STEPS:
                with gr.Column(min_width=200):
                    text = our_words(gr.Markdown(t(step_markdown(tab) if tab != "train" else f"**{title}**")))
                    buttons[tab] = gr.Button(t(f"Go to the {tab.capitalize()} tab"), size="sm", elem_id=f"start-go-{tab}")
                    if tab == "train":  # the time is read when the page loads: a run may have finished since
                        gr.on(shown, _train_step, None, text, show_progress="hidden")
        hide = gr.Button(t("Hide this guide (it stays hidden in this browser)"), size="sm", variant="secondary",
                         elem_id="start-hide")
    show = gr.Button(t("Show the Start here guide"), size="sm", visible=False, elem_id="start-show")
    gr.on(shown, show_guide, hidden, [guide, show], show_progress="hidden")
    hide.click(hide_guide, None, [hidden, guide, show])
    show.click(unhide_guide, None, [hidden, guide, show])
    return buttons


def wire_guide(buttons: dict[str, gr.Button], tabs: gr.Tabs) -> None:
    for tab, button in buttons.items():
        button.click(_goto_handler(tab), None, tabs)


def _train_step() -> str:
    return step_markdown("train")


def _goto_handler(tab: str):
    def go() -> gr.Tabs:
        return go_to(tab)

    go.__name__ = f"go_to_{tab}"
    return go
