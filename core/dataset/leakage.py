"""Evaluation leakage: training text that holds an evaluation prompt, which makes every verdict
on that prompt a measure of memory instead of learning. Overlap is judged the way
lm-evaluation-harness decontaminates: lower-cased words, 13-word n-grams of each prompt (a prompt
shorter than that counts as one n-gram, whole), any shared n-gram is a leak.

The index is built from prompt texts by the caller (reading a prompt set belongs to core.eval);
each n-gram is filed under its first word, so a training text costs one dictionary look-up a
word. Knows nothing about files, records or reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

N = 13  # lm-evaluation-harness's decontamination n-gram length
_WORD = re.compile(r"\w+")


def asked(messages: list[dict]) -> str:
    """What a conversation asks (its system and user turns): where a leaked prompt would sit."""
    return "\n".join(message["content"] for message in messages if message["role"] in ("system", "user"))


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class LeakIndex:
    """N-grams of evaluation prompts, each naming the set and prompt it came from."""
    by_first: dict[str, list[tuple[tuple[str, ...], str, str]]] = field(default_factory=dict)
    sets: list[str] = field(default_factory=list)

    def add(self, set_name: str, prompt_id: str, text: str) -> None:
        found = words(text)
        if not found:
            return
        grams = [tuple(found)] if len(found) < N else {tuple(found[i:i + N]) for i in range(len(found) - N + 1)}
        for gram in grams:
            self.by_first.setdefault(gram[0], []).append((gram, set_name, prompt_id))
        if set_name not in self.sets:
            self.sets.append(set_name)

    def __bool__(self) -> bool:
        return bool(self.by_first)

    def find(self, text: str) -> list[tuple[str, str]]:
        """(set, prompt id) of every evaluation prompt `text` holds, in order of first appearance."""
        found = words(text)
        hits: dict[tuple[str, str], None] = {}
        for index, word in enumerate(found):
            for gram, set_name, prompt_id in self.by_first.get(word, ()):
                if (set_name, prompt_id) not in hits and tuple(found[index:index + len(gram)]) == gram:
                    hits[(set_name, prompt_id)] = None
        return list(hits)
