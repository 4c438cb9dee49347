"""Tuning Studio's library: data, checks, recipes, training, chat, evaluation, export, models.

Nothing in here knows about gradio; the web UI in `studio/` is one client, the CLI another.
Importing `core` and its light modules (recipes, the workspace, runs, checks, metrics ...) never
loads torch, transformers, trl or peft: the few modules that compute with them (chat.engine,
train.training, decode_linear ...) import them at the top, and a light module that needs one of
those imports it inside the function that uses it. tests/test_boundaries.py holds both rules.
"""

__version__ = "0.1.0"
