"""The Chat tab."""

from __future__ import annotations

import gradio as gr


def build_chat_tab() -> None:
    gr.Markdown("The Chat tab is being built.")
