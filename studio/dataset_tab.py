"""The Dataset tab."""

from __future__ import annotations

import gradio as gr


def build_dataset_tab() -> None:
    gr.Markdown("The Dataset tab is being built.")
