"""Prompt sets: JSONL files of prompts with what a good answer holds, loaded into `Prompt`s.

One prompt a line: `prompt` (or `question`, or `messages`), optional `id`, `category` (the topic
in per-topic tables), `keywords` (expected in the answer; "a|b" accepts either), `should_refuse`
(true/false), `context` (fixed retrieved text, put before the question), `source`/`sources` (the
document a grounded answer should name), `mode` (a cognitive-mode tag; results split by it) and
`min_words` (shortest substantive answer, default 2). A line holding only `{"documents": "DIR"}`
points the set at a document folder (relative to the set's file): prompts without a `context`
then get theirs retrieved with BM25 (core.eval.retrieval). A broken line is reported with its
line number and skipped. This module knows nothing about models, metrics or retrieval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from core import recipes
from core.dataset.leakage import LeakIndex, asked
from core.dataset.reader import BadRow, DatasetError, Example, stream
from core.errors import BadInput
from core.recipe_eval import prompts_path
from core.train.preflight import dataset_summary
from core.workspace import ASSETS


class PromptSetError(BadInput):
    """A prompt-set row, pattern list or rubric that can't be used; the message names the field or file."""

PROMPT_SETS = ASSETS / "prompts"
DEFAULT_MIN_WORDS = 2
CONTEXT_TEMPLATE = ("Answer using only the context below and name the source you used. If the context does not "
                    "contain the answer, say so.\n\nContext:\n{context}\n\nQuestion: {prompt}")


@dataclass
class Prompt:
    id: str
    messages: list[dict]
    category: str = ""
    keywords: list[str] = field(default_factory=list)
    should_refuse: bool | None = None
    line: int | None = None
    sources: list[str] = field(default_factory=list)
    mode: str | None = None
    question: str = ""  # the bare question (what retrieval searches with)
    min_words: int = DEFAULT_MIN_WORDS

    @property
    def text(self) -> str:
        return self.messages[-1]["content"]

    def with_context(self, context: str) -> Prompt:
        """The same prompt asked over `context` (retrieved passages)."""
        asked = CONTEXT_TEMPLATE.format(context=context, prompt=self.question)
        return replace(self, messages=self.messages[:-1] + [{"role": "user", "content": asked}])

    @property
    def needs_context(self) -> bool:
        """True for a single-turn prompt asked without context: retrieval mode fills it in."""
        return len(self.messages) == 1 and self.text == self.question


@dataclass
class PromptSet:
    path: Path
    prompts: list[Prompt]
    bad: list[BadRow]
    documents: Path | None = None  # the document folder for retrieval mode, when the set names one


def bundled_prompt_sets() -> list[Path]:
    return sorted(PROMPT_SETS.glob("*.jsonl"))


def leak_index(paths=()) -> LeakIndex:
    """The evaluation prompts a training set must not hold: the bundled prompt sets and `paths`
    (what each prompt asks: its user turns; a shared system prompt is not a leak)."""
    index = LeakIndex()
    for path in [*bundled_prompt_sets(), *map(Path, paths)]:
        for prompt in read_prompt_set(path).prompts:
            index.add(path.name, prompt.id, "\n".join(m["content"] for m in prompt.messages if m["role"] == "user"))
    return index


def recipe_leak_index(recipe) -> LeakIndex:
    """The prompts a run's data must not hold: the bundled sets and the recipe's own `eval.prompts`."""
    own = prompts_path(recipe.eval, recipe.source)
    return leak_index([own] if own and own.is_file() and own.parent != PROMPT_SETS else [])


def leak_warnings(recipe) -> list[str]:
    """Before a run, in plain words: the records of its dataset that hold an evaluation prompt."""
    return dataset_summary(recipe, leaks=recipe_leak_index(recipe))["leak_warnings"]


def leaked_prompts(recipe: dict | None, prompts: list[Prompt]) -> list[str] | None:
    """The ids of `prompts` that the training data of a run's `recipe` holds (the evaluation would
    grade memory on them), in the set's order; None when that data can't be read here (a Hub
    dataset, a file since moved)."""
    if not recipe or not prompts:
        return None
    index = LeakIndex()
    for prompt in prompts:
        index.add("eval", prompt.id, "\n".join(m["content"] for m in prompt.messages if m["role"] == "user"))
    try:
        loaded = recipes.from_dict(recipe)
        data = loaded.data
        held = set()
        for item in stream(loaded.dataset_path(), data.format, format_template=data.format_template,
                           system_prompt=data.system_prompt):
            if isinstance(item, Example):
                held.update(prompt_id for _, prompt_id in index.find(asked(item.messages)))
    except (BadInput, DatasetError, OSError, ValueError):
        return None
    return [prompt.id for prompt in prompts if prompt.id in held]


def load_prompt_set(path: str | Path) -> tuple[list[Prompt], list[BadRow]]:
    """Prompts from a JSONL file, and the lines that could not be used (with line numbers)."""
    loaded = read_prompt_set(path)
    return loaded.prompts, loaded.bad


def read_prompt_set(path: str | Path) -> PromptSet:
    """The whole set: prompts, bad lines, and the document folder when a line names one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such prompt set (a JSONL file, one prompt a line)")
    loaded = PromptSet(path, [], [])
    seen = set()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.strip())
                if isinstance(row, dict) and set(row) == {"documents"}:
                    loaded.documents = _documents(path, row["documents"])
                    continue
                prompt = _prompt_from(row, number)
            except json.JSONDecodeError as error:
                loaded.bad.append(BadRow(str(path), number, f"not valid JSON ({error.msg} at column {error.colno})"))
                continue
            except ValueError as error:
                loaded.bad.append(BadRow(str(path), number, str(error)))
                continue
            if prompt.id in seen:
                prompt.id = f"{prompt.id}-line{number}"
            seen.add(prompt.id)
            loaded.prompts.append(prompt)
    return loaded


def _documents(path: Path, value) -> Path:
    folder = (path.parent / str(value)).resolve()
    if not isinstance(value, str) or not folder.is_dir():
        raise PromptSetError(f"'documents' must name a folder next to the prompt set; {folder} is not one")
    return folder


def _strings(row: dict, *keys: str) -> list[str]:
    for key in keys:
        value = row.get(key)
        if value is None:
            continue
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PromptSetError(f"'{key}' must be a string or a list of strings")
        return value
    return []


def _prompt_from(row: object, number: int) -> Prompt:
    if not isinstance(row, dict):
        raise PromptSetError(f"expected a JSON object, got {type(row).__name__}")
    messages = row.get("messages")
    question = ""
    if messages is None:
        question = row.get("prompt", row.get("question"))
        if not isinstance(question, str) or not question.strip():
            raise PromptSetError("no 'prompt' (a non-empty string) or 'messages' (a list of chat turns)")
        context = row.get("context")
        if isinstance(context, list):
            context = "\n\n".join(str(part) for part in context)
        messages = [{"role": "user", "content": question}]
    elif not (isinstance(messages, list) and messages and all(isinstance(m, dict) and "role" in m and "content" in m for m in messages)):
        raise PromptSetError("'messages' must be a non-empty list of {role, content} objects")
    elif messages[-1]["role"] != "user":
        raise PromptSetError(f"'messages' must end with a user turn (it ends with {messages[-1]['role']!r})")
    refuse = row.get("should_refuse")
    if refuse is not None and not isinstance(refuse, bool):
        raise PromptSetError(f"'should_refuse' must be true or false, got {refuse!r}")
    min_words = row.get("min_words", DEFAULT_MIN_WORDS)
    if not isinstance(min_words, int) or isinstance(min_words, bool) or min_words < 0:
        raise PromptSetError(f"'min_words' must be a whole number of 0 or more, got {min_words!r}")
    prompt = Prompt(str(row.get("id") or f"line{number}"), messages, str(row.get("category") or ""),
                    _strings(row, "keywords", "expected_keywords"), refuse, number, _strings(row, "sources", "source"),
                    str(row["mode"]) if row.get("mode") else None, question or messages[-1]["content"], min_words)
    if question and context:
        sources = ", ".join(prompt.sources)
        prompt = prompt.with_context(f"[source: {sources}]\n{context}" if sources else str(context))
    return prompt
