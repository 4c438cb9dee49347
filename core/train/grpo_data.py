"""GRPO data and reward plumbing: prompt rows from any chat dataset, the check that each row has
the fields its rewards read, and the callables trl's GRPOTrainer calls.

A prompt is an example's messages up to its last user turn (a trailing assistant reply, such as
a worked answer, is left out of the prompt and kept in the row as `completion`). The row's own
fields (answer, should_refuse, ...) travel as one JSON column, `reference`, so rows of mixed
shape never trip Arrow's schema inference. `TrlReward` wraps one scorer in trl's batch
signature; `CompletionLog` collects each scored completion for the run folder's sample table.
This module knows nothing about models or run folders.
"""

from __future__ import annotations

import json
import threading

from core.train.rewards import Reward, weighted_total

MAX_LOGGED = 16  # completions kept per logging step in the sample table


def prompt_messages(example) -> tuple[list[dict], str | None]:
    """(messages up to the last user turn, the assistant reply that followed it, if any)."""
    messages = [{"role": m["role"], "content": m["content"]} for m in example.messages]
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        return [], None
    tail = messages[last_user + 1:]
    reply = next((m["content"] for m in tail if m["role"] == "assistant"), None)
    return messages[:last_user + 1], reply


def reference_fields(example, reply: str | None) -> dict:
    """The row's fields a reward may read (the chat itself left out)."""
    row = {k: v for k, v in (example.source or {}).items() if k not in ("messages", "conversations")}
    if reply is not None:
        row.setdefault("completion", reply)
    return row


def prompt_rows(examples, needs: list[tuple[str, str]]) -> tuple[list[dict], list[tuple[str, str]]]:
    """trl rows ({prompt, reference}) and the skipped examples with why: no user turn, or a
    field a reward needs is missing (named with the row's line). `needs`: (reward, field) pairs."""
    rows, skipped = [], []
    for example in examples:
        where = f"{example.id} (line {example.line})" if example.line else str(example.id)
        prompt, reply = prompt_messages(example)
        if not prompt:
            skipped.append((where, "no user turn to use as the prompt"))
            continue
        fields = reference_fields(example, reply)
        missing = [f"'{field}' (grpo.rewards.{name})" for name, field in needs if fields.get(field) in (None, "")]
        if missing:
            skipped.append((where, "no " + ", ".join(missing) + " field"))
            continue
        rows.append({"prompt": prompt, "reference": json.dumps(fields, ensure_ascii=False, default=str)})
    return rows, skipped


def completion_text(completion) -> str:
    """trl hands conversational completions as [{role, content}]; plain ones as text."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def prompt_text(prompt) -> str:
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return str(prompt)


class CompletionLog:
    """Scored completions since the last logging step. Each reward adds its column; the row is
    complete when the last reward of the set has scored it."""

    def __init__(self, rewards: list[Reward]):
        self.rewards = rewards
        self.names = [r.name for r in rewards]
        self.weights = {r.name: r.weight for r in rewards}
        self._batch: dict = {}
        self._rows: list[dict] = []
        self._lock = threading.Lock()

    def add(self, name: str, prompts: list, completions: list, scores: list) -> None:
        with self._lock:
            if name == self.names[0]:
                self._batch = {"prompts": prompts, "completions": completions, "scores": {}}
            self._batch.setdefault("scores", {})[name] = scores
            if name == self.names[-1] and self._batch.get("completions") is not None:
                self._rows += self._assemble(self._batch)
                self._rows = self._rows[-MAX_LOGGED:]
                self._batch = {}

    def _assemble(self, batch: dict) -> list[dict]:
        rows = []
        for i, (prompt, completion) in enumerate(zip(batch["prompts"], batch["completions"])):
            scores = {name: batch["scores"].get(name, [None] * (i + 1))[i] for name in self.names}
            rows.append({"prompt": prompt_text(prompt), "completion": completion_text(completion), "rewards": scores,
                         "total": weighted_total(scores, self.weights)})
        return rows

    def drain(self) -> list[dict]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows


class TrlReward:
    """One reward in trl's signature: (prompts, completions, completion_ids, **columns) -> scores.
    trl names the reward after `__name__`, so metrics read rewards/<name>/mean."""

    def __init__(self, reward: Reward, log: CompletionLog | None = None):
        self.reward, self.log = reward, log
        self.__name__ = reward.name

    def __call__(self, prompts, completions, completion_ids=None, reference=None, **_):
        references = reference or [None] * len(completions)
        scores = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            row = json.loads(references[i]) if references[i] else {}
            tokens = len(completion_ids[i]) if completion_ids is not None else None
            scores.append(self.reward.score(prompt_text(prompt), completion_text(completion), row, tokens))
        if self.log is not None:
            self.log.add(self.reward.name, prompts, completions, scores)
        return scores


def trl_rewards(rewards: list[Reward], log: CompletionLog | None = None) -> tuple[list[TrlReward], list[float]]:
    """trl's reward_funcs and reward_weights for the recipe's rewards."""
    return [TrlReward(r, log) for r in rewards], [r.weight for r in rewards]
