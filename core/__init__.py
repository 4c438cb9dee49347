"""Tuning Studio's library: data, checks, recipes, training, chat, evaluation, export, models.

Nothing in here knows about gradio; the web UI in `studio/` is one client, the CLI another.
Importing `core` and its light modules (recipes, the workspace, runs, checks, metrics ...) never
loads torch, transformers, trl or peft: the few modules that compute with them (chat.engine,
train.training, decode_linear ...) import them at the top, and a light module that needs one of
those imports it inside the function that uses it. tests/test_boundaries.py holds both rules.
"""

__version__ = "0.1.0"

import logging
import warnings

# bitsandbytes (imported by peft) tries, on every import on a CPU with avx512_bf16, to fetch a 4-bit
# CPU kernel from the Hub's kernels-community and logs a warning when it can't (always offline, and
# online too: the repository fails the `kernels` trust check). The studio's 4-bit path is CUDA's, so
# the line says nothing about a run and would open every command's output and training log.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
# trl and peft call a transformers method deprecated in v5; the warning says nothing about a run and
# would be the first line of a training log or a `studio plan`.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
# ORPO and SimPO (CPO) live under trl.experimental in trl 1.x; the studio's tests run them on the trl
# it installs (pyproject: trl>=1.0,<2), so the "unstable API" warning says nothing to a person training.
warnings.filterwarnings("ignore", message="You are importing from 'trl.experimental'")
