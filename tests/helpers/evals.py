"""Hand-made answers and prompts for the evaluation's scoring, and the chat settings tabs take."""

from __future__ import annotations

from core.chat.engine import PaneState
from core.eval import metrics
from core.eval.prompts import Prompt

PATTERNS = metrics.load_patterns()


SETTINGS = ("", 0.0, 1.0, 24, 0)  # system prompt, temperature, top-p, max new tokens, seed


def reply(text: str, tokens: int = 5, seconds: float = 1.0, error: str | None = None) -> PaneState:
    return PaneState(text=text, token_ids=list(range(tokens)), started=0.0, first_token_at=0.1, ended_at=seconds, error=error)


def prompt(pid="p", keywords=("Paris",), should_refuse=False, sources=(), category="fact", mode=None) -> Prompt:
    return Prompt(pid, [{"role": "user", "content": f"question {pid}"}], category, list(keywords), should_refuse,
                  sources=list(sources), mode=mode, question=f"question {pid}")
