"""Samples: render Examples with a tokenizer's own chat template into token ids and labels.

The label mask (which tokens are trained) comes from the template itself: each assistant
turn's span is the text the template adds between "prompt up to this turn, with the
generation prompt" and "conversation through this turn". Tokens whose characters fall in
those spans are trained; the rest get label -100. This module knows nothing about files or
trainers: it takes Examples and a tokenizer and returns plain lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.chat_template import render
from core.dataset.reader import Example
from core.errors import StudioError

IGNORE = -100


class TemplateError(StudioError, ValueError):
    """The chat template can't be split into prompt and reply spans for this conversation."""


@dataclass
class Sample:
    example_ids: list[str]
    text: str
    input_ids: list[int]
    labels: list[int]
    truncated: bool
    full_length: int  # tokens before truncation

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def render_text(tokenizer, messages: list[dict], *, chat_template: str | None = None, add_generation_prompt: bool = False) -> str:
    """The exact training text for a conversation: the tokenizer's template, untokenized."""
    return render(tokenizer, messages, template=chat_template, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict], *, chat_template: str | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the (start, end) character spans of every assistant reply,
    including the end-of-turn marker the template writes after it (the model must learn to stop)."""
    full = render_text(tokenizer, messages, chat_template=chat_template)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render_text(tokenizer, messages[:index], chat_template=chat_template, add_generation_prompt=True)
        through = render_text(tokenizer, messages[: index + 1], chat_template=chat_template)
        if not full.startswith(through) or not through.startswith(prompt):
            # Templates that rewrite earlier turns (e.g. dropping old <think> blocks) break the
            # prefix property; we can't tell which tokens belong to which turn.
            raise TemplateError(
                f"the chat template re-renders earlier turns (assistant turn {index + 1}); "
                "train on the final reply only or set model.chat_template"
            )
        end = len(through.rstrip("\n")) if through.endswith("\n") else len(through)
        spans.append((len(prompt), end))
    return full, spans


def tokenize_messages(tokenizer, messages: list[dict], *, max_length: int, response_only: bool = True,
                      chat_template: str | None = None, example_ids: list[str] | None = None) -> Sample:
    """Token ids and labels for one conversation; labels mask everything but assistant spans
    when `response_only`, and only padding otherwise."""
    text, spans = assistant_spans(tokenizer, messages, chat_template=chat_template)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    if response_only:
        labels = [tok if _in_spans(start, end, spans) else IGNORE for tok, (start, end) in zip(ids, offsets)]
    else:
        labels = list(ids)
    full_length = len(ids)
    return Sample(example_ids or [], text, ids[:max_length], labels[:max_length], full_length > max_length, full_length)


def _in_spans(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return end > start and any(start < span_end and end > span_start for span_start, span_end in spans)


def tokenize_example(tokenizer, example: Example, *, max_length: int, response_only: bool = True,
                     chat_template: str | None = None) -> Sample:
    return tokenize_messages(tokenizer, example.messages, max_length=max_length, response_only=response_only,
                             chat_template=chat_template, example_ids=[example.id])


def stack_messages(examples: list[Example]) -> list[dict]:
    """Several conversations as one: the first system message, then every other turn in order."""
    system = next((m for ex in examples for m in ex.messages if m["role"] == "system"), None)
    turns = [m for ex in examples for m in ex.messages if m["role"] != "system"]
    return ([system] if system else []) + turns


def build_samples(tokenizer, examples: list[Example], *, max_length: int, stack: int = 1, response_only: bool = True,
                  chat_template: str | None = None) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Tokenize examples, stacking up to `stack` consecutive conversations while they fit in
    max_length. Returns the samples and (example id, reason) for examples that could not be used."""
    samples, skipped, group = [], [], []

    def flush():
        if group:
            samples.append(_tokenize_group(tokenizer, group, max_length, response_only, chat_template))
            group.clear()

    for example in examples:
        try:
            alone = tokenize_example(tokenizer, example, max_length=max_length, response_only=response_only,
                                     chat_template=chat_template)
        except (TemplateError, ValueError, TypeError) as error:  # jinja raises TemplateError/ValueError subclasses
            skipped.append((example.id, str(error)))
            continue
        if alone.trained_tokens == 0 and response_only:
            skipped.append((example.id, "no assistant tokens to train on (after truncation)"))
            continue
        if stack > 1 and group:
            trial = _tokenize_group(tokenizer, group + [example], max_length, response_only, chat_template)
            if trial.full_length > max_length or len(group) >= stack:
                flush()
        group.append(example)
        if stack == 1:
            flush()
    flush()
    return samples, skipped


def _tokenize_group(tokenizer, group, max_length, response_only, chat_template) -> Sample:
    return tokenize_messages(tokenizer, stack_messages(group), max_length=max_length, response_only=response_only,
                             chat_template=chat_template, example_ids=[ex.id for ex in group])


def mask_segments(tokenizer, sample: Sample) -> list[tuple[str, bool]]:
    """(token text, trained?) pairs for showing the label mask to a person."""
    return [(tokenizer.decode([tok]), label != IGNORE) for tok, label in zip(sample.input_ids, sample.labels)]
