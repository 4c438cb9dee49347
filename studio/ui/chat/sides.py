"""What both halves of the Chat tab (the live panes and the A/B run) share: the tuned-side
choices, the guarded path of a picked tuned side, the cached engine with that side attached,
and the sampling settings from the form. core.chat.engine (and torch) load when first used."""

from __future__ import annotations

import gradio as gr

from core.chat.tuned import tuned_options
from core.workspace import inside
from studio.ui import visitor
from studio.ui.language import translate

NO_TUNED = "None: base model only"


def tuned_choices() -> list[tuple[str, str]]:
    try:
        return [(NO_TUNED, "")] + tuned_options()
    except OSError as error:  # an unreadable runs folder must not break the page
        gr.Warning(translate(f"Could not list runs: {error}"))
        return [(NO_TUNED, "")]


def refresh_tuned(current: str):
    """The tuned-side list as the workspace is now (page load, tab shown, ↻). Only the choices
    change: the value stays as the page holds it when the answer lands, so a path the person
    typed meanwhile is not overwritten by the value the refresh started with."""
    return gr.update(choices=tuned_choices())


def tuned_path(choice: str | None) -> str | None:
    """The tuned side the user picked or typed, kept inside the workspace."""
    if not choice or not str(choice).strip():
        return None
    return str(inside(str(choice).strip()))


def engine_with_tuned(base_model: str, choice: str | None):
    """The cached engine for the base and the side key of the tuned weights (None without)."""
    from core.chat.engine import engine_for

    engine = engine_for(visitor.model(base_model))
    path = tuned_path(choice)
    return engine, (engine.attach(path) if path else None)


def problem(error: Exception) -> str:
    return f"⚠️ {error}"


def sampling_from(system, temperature, top_p, max_new_tokens, seed):
    from core.chat.engine import Sampling

    return Sampling(system or "", float(temperature or 0), float(top_p or 1), int(max_new_tokens or 1), int(seed or 0))
