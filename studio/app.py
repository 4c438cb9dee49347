"""The app assembly: header, the four tabs, and the cross-tab wiring. No logic of its own."""

from __future__ import annotations

import os

import gradio as gr

from core.workspace import ASSETS, workspace
from studio import chat_tab, dataset_tab, export_tab, train_tab

CSS_FILE = ASSETS / "studio.css"


def header_markdown() -> str:
    """Workspace, device and default model, computed when the page loads (torch is imported
    here, after the server is up, not at start-up)."""
    from core.models import device_policy

    policy = device_policy()
    demo = " · **demo mode**" if os.environ.get("STUDIO_DEMO") else ""
    return (
        f"**Workspace** `{workspace().root}` · **Device** {policy.device} ({policy.dtype_name}) · "
        f"**Default model** embedded (SmolLM2-135M-Instruct){demo}"
    )


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Tuning Studio") as app:
        gr.Markdown("# Tuning Studio")
        header = gr.Markdown("Loading…", elem_id="studio-header")
        with gr.Tabs():
            with gr.Tab("Dataset", id="dataset"):
                dataset_tab.build_dataset_tab()
            with gr.Tab("Train", id="train"):
                train_tab.build_train_tab()
            with gr.Tab("Chat", id="chat"):
                chat_tab.build_chat_tab()
            with gr.Tab("Export", id="export"):
                export_tab.build_export_tab()
        app.load(header_markdown, outputs=header)
    return app


def launch_kwargs() -> dict:
    """Theme and CSS go to launch() in gradio 6."""
    css = CSS_FILE.read_text() if CSS_FILE.is_file() else None
    return {"css": css, "theme": gr.themes.Soft()}
