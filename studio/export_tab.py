"""The Export tab."""

from __future__ import annotations

import gradio as gr


def build_export_tab() -> None:
    gr.Markdown("The Export tab is being built.")
