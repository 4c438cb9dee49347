"""Custom rewards: one Python function from a file in the workspace.

The file defines

    def reward(prompt: str, completion: str, row: dict) -> float | None:
        ...

`prompt` is the last user message, `completion` the generated text, `row` the dataset row's
fields; return a number (the GRPO total weighs it like any other reward) or None to leave the
completion unscored. Loading the file runs its code, so it is refused in demo mode and when the
studio serves a non-local address (or a share link) without a login. This module knows nothing
about trainers or the UI.
"""

from __future__ import annotations

import importlib.util
import inspect
import ipaddress
import os
import sys
from pathlib import Path

from core.hosting import auth_from_env, demo_mode
from core.recipes import RecipeError
from core.workspace import PathOutsideWorkspace, inside, workspace

SIGNATURE = "reward(prompt: str, completion: str, row: dict) -> float | None"


def _local(host: str) -> bool:
    host = host.strip().strip("[]")
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def custom_code_refusal() -> str | None:
    """Why custom reward code may not run here, or None when it may. STUDIO_HOST and
    STUDIO_SHARE are set by `studio ui` for itself and the workers it starts."""
    if demo_mode():
        return "custom reward code is turned off in demo mode (it would run a visitor's Python on this server)"
    public = not _local(os.environ.get("STUDIO_HOST", "127.0.0.1")) or os.environ.get("STUDIO_SHARE") == "1"
    try:
        has_login = auth_from_env() is not None
    except ValueError:
        has_login = False
    if public and not has_login:
        return ("custom reward code is turned off: this studio listens on a non-local address without a login; "
                "start it with --auth USER:PASS (or STUDIO_AUTH) or on 127.0.0.1")
    return None


def resolve_custom_path(path: str) -> Path:
    """The reward file, which must lie inside the workspace (relative paths start there)."""
    try:
        resolved = inside(path, workspace().root)
    except PathOutsideWorkspace:
        raise RecipeError(f"grpo.rewards.custom.path: {path} is outside the workspace ({workspace().root}); "
                          "put the reward file there, e.g. rewards/my_reward.py") from None
    if not resolved.is_file() or resolved.suffix != ".py":
        raise RecipeError(f"grpo.rewards.custom.path: {resolved} is not a Python file; create it with a function "
                          f"{SIGNATURE}")
    return resolved


def load_custom(path: str, function: str = "reward"):
    """The reward function from the file, after the hosting policy and a signature check."""
    refusal = custom_code_refusal()
    if refusal:
        raise RecipeError(f"grpo.rewards.custom: {refusal}")
    resolved = resolve_custom_path(path)
    name = f"studio_custom_reward_{abs(hash(str(resolved)))}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - the user's file: any failure is reported, not raised as a traceback
        raise RecipeError(f"grpo.rewards.custom: {resolved} failed to load: {type(error).__name__}: {error}") from None
    sys.modules[name] = module  # as a normal import would: the file's own dataclasses and pickling work
    found = getattr(module, function, None)
    if not callable(found):
        raise RecipeError(f"grpo.rewards.custom.function: {resolved} has no function {function!r}; define {SIGNATURE}")
    try:
        inspect.signature(found).bind("prompt", "completion", {})
    except TypeError:
        raise RecipeError(f"grpo.rewards.custom.function: {function}{inspect.signature(found)} in {resolved} must "
                          f"accept (prompt, completion, row): {SIGNATURE}") from None
    return found
