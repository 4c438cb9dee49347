"""Tuning Studio's library: data, checks, recipes, training, chat, evaluation, export, models.

Nothing in here knows about gradio; the web UI in `studio/` is one client, the CLI another.
Heavy libraries (torch, transformers, trl, peft) are imported inside the functions that
need them, so importing `core` stays fast.
"""

__version__ = "0.1.0"
