"""An optional pairwise judge: which of two answers is better for this prompt, against a rubric.

The judge is a model behind the official `ollama` client (`ollama:NAME`, or a plain name) or a
local transformers model (`hf:PATH_OR_ID`, or `embedded`). It is asked twice per prompt, once
with the base answer as A and once with it as B, so a preference for a position cancels out:
the side that wins both orders wins; split or tied orders are a tie. Its rationale is kept for
each order. Where the person also picked an answer in the Chat tab, the judge judges those pairs
too and the report says how often it agrees. The rubric is YAML (assets/judge_rubric.yaml).
This module knows nothing about gradio; answers arrive as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.clients import ollama_client, ollama_host
from core.dataset.tags import split_think
from core.errors import BadInput, StudioError
from core.workspace import ASSETS

DEFAULT_RUBRIC = ASSETS / "judge_rubric.yaml"
_WINNER = re.compile(r'"?winner"?\s*[:=]\s*"?(A|B|tie)\b', re.IGNORECASE)


class JudgeError(StudioError, RuntimeError):
    """The judge could not be reached or loaded; the message says which and how to fix it."""


@dataclass
class Rubric:
    name: str
    text: str  # instructions, criteria and reply format, as the judge reads them


def load_rubric(path: str | Path | None = None) -> Rubric:
    import yaml

    path = Path(path or DEFAULT_RUBRIC)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not str(data.get("instructions", "")).strip():
        raise BadInput(f"{path}: a rubric needs 'instructions' (text), and may have 'criteria' and 'reply_format'")
    criteria = "\n".join(f"- {c}" for c in data.get("criteria") or [])
    text = "\n\n".join(part for part in (str(data["instructions"]).strip(), criteria,
                                         str(data.get("reply_format", "")).strip()) if part)
    return Rubric(str(data.get("name", path.stem)), text)


def judge_messages(rubric: Rubric, conversation: list[dict], first: str, second: str) -> list[dict]:
    shown = "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in conversation)
    return [{"role": "system", "content": rubric.text},
            {"role": "user", "content": f"Conversation:\n{shown}\n\nAnswer A:\n{split_think(first).answer}\n\n"
                                        f"Answer B:\n{split_think(second).answer}\n\nWhich answer is better?"}]


def parse_reply(text: str) -> tuple[str, str]:
    """('A' | 'B' | 'tie', rationale) from the judge's reply; an unreadable reply is a tie.
    >>> parse_reply('{"winner": "B", "rationale": "B names the source."}')
    ('B', 'B names the source.')
    """
    answer = split_think(text).answer
    match = re.search(r"\{.*\}", answer, re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
            winner = str(data.get("winner", "")).strip()
            winner = {"a": "A", "b": "B", "tie": "tie"}.get(winner.lower())
            if winner:
                return winner, str(data.get("rationale", "")).strip()
        except json.JSONDecodeError:
            pass
    found = _WINNER.search(answer)
    if found:
        return {"a": "A", "b": "B"}.get(found.group(1).lower(), "tie"), answer.strip()[:500]
    return "tie", f"unreadable reply, counted as a tie: {answer.strip()[:200]}"


def compare_pair(ask: Callable[[list[dict]], str], rubric: Rubric, conversation: list[dict],
                 base: str, tuned: str) -> dict:
    """Both orders; {'winner': base|tuned|tie, 'orders': [...]} with each order's rationale."""
    orders, score = [], 0
    for name, first, second, first_side in (("base as A", base, tuned, "base"), ("tuned as A", tuned, base, "tuned")):
        picked, rationale = parse_reply(ask(judge_messages(rubric, conversation, first, second)))
        side = "tie" if picked == "tie" else first_side if picked == "A" else ("tuned" if first_side == "base" else "base")
        score += {"tuned": 1, "base": -1, "tie": 0}[side]
        orders.append({"order": name, "picked": picked, "side": side, "rationale": rationale})
    return {"winner": "tuned" if score > 0 else "base" if score < 0 else "tie", "orders": orders}


def judge_rows(ask: Callable[[list[dict]], str], rows: list[dict], prompts: dict[str, list[dict]], *,
               model: str, tuned: str, rubric: Rubric | None = None, picks: list[dict] | None = None) -> dict:
    """Judge every prompt answered by both `base` and `tuned`; then the person's picks, if any."""
    rubric = rubric or load_rubric()
    answers: dict[str, dict] = {}
    for row in rows:
        answers.setdefault(row["prompt_id"], {})[row["side"]] = row["answer"]
    per_prompt = []
    for prompt_id, sides in answers.items():
        if "base" in sides and tuned in sides and prompt_id in prompts:
            result = compare_pair(ask, rubric, prompts[prompt_id], sides["base"], sides[tuned])
            per_prompt.append({"prompt_id": prompt_id, **result})
    summary = {"model": model, "rubric": rubric.name, "n": len(per_prompt), "per_prompt": per_prompt,
               **{key: sum(1 for p in per_prompt if p["winner"] == side) for key, side in
                  (("tuned", "tuned"), ("base", "base"), ("ties", "tie"))}}
    agreed = [compare_pair(ask, rubric, pick["prompt"], pick["base"], pick["tuned"])["winner"] == pick["person"]
              for pick in picks or []]
    summary["agreement"] = round(sum(agreed) / len(agreed), 3) if agreed else None
    summary["agreement_n"] = len(agreed)
    return summary


def judge_for(spec: str, *, host: str | None = None) -> Callable[[list[dict]], str]:
    """A function asking the judge model: 'ollama:NAME' / 'NAME' (Ollama), 'hf:ID' / 'embedded'."""
    if spec == "embedded" or spec.startswith("hf:"):
        return _local_judge(spec.removeprefix("hf:"))
    return _ollama_judge(spec.removeprefix("ollama:"), ollama_host(host))


def _ollama_judge(model: str, host: str | None) -> Callable[[list[dict]], str]:
    import httpx
    import ollama

    client = ollama_client(host, use="judge")

    def ask(messages: list[dict]) -> str:
        try:
            reply = client.chat(model=model, messages=messages, format="json", options={"temperature": 0, "seed": 0})
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as error:
            raise JudgeError(f"The judge '{model}' at {host or 'the default Ollama address'} did not answer: {error}. "
                             f"Start Ollama and pull the model (`ollama pull {model}`), or name a local model "
                             "with --judge hf:PATH") from None
        return reply.message.content or ""

    return ask


def _local_judge(model: str) -> Callable[[list[dict]], str]:
    from core.chat.engine import BASE, ChatEngine, Sampling

    engine = ChatEngine(model)
    sampling = Sampling(max_new_tokens=96)
    return lambda messages: engine.generate(BASE, messages, sampling).text
