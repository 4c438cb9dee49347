"""The Train tab."""

from __future__ import annotations

import gradio as gr


def build_train_tab() -> None:
    gr.Markdown("The Train tab is being built.")
