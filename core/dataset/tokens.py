"""Tokens: how a dataset looks to a model's tokenizer: lengths against max_length, the share of
tokens that are trained, and the label mask of one record for a person to read.

Rendering and masking come from core.dataset.samples (the tokenizer's own chat template); this module
only counts and caches. Tokenizers are loaded lazily through core.models and kept, because the
Dataset tab asks for the same one on every page. It knows nothing about files or the UI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache

from core import models
from core.dataset.reader import Example
from core.dataset.samples import IGNORE, TemplateError, mask_segments, stack_messages, tokenize_example, tokenize_messages


@lru_cache(maxsize=4)
def tokenizer_for(model: str = "embedded"):
    """The tokenizer of a model name (embedded, a folder or a Hub id), loaded once per process."""
    return models.load_tokenizer(model)


def as_conversation(example: Example) -> Example:
    """A preference pair as the conversation it trains: prompt + chosen reply."""
    if not example.is_preference:
        return example
    return replace(example, messages=example.messages + [{"role": "assistant", "content": example.chosen}],
                   chosen=None, rejected=None)


def token_stats(examples: Iterable[Example], tokenizer, *, max_length: int, limit: int | None = None,
                chat_template: str | None = None) -> dict:
    """Min / max / mean tokens, how many would be truncated, and the trained share, over at
    most `limit` examples (in file order)."""
    lengths, trained, total, failed = [], 0, 0, []
    for example in examples:
        if limit is not None and len(lengths) >= limit:
            break
        try:
            sample = tokenize_example(tokenizer, as_conversation(example), max_length=10**9, chat_template=chat_template)
        except (TemplateError, ValueError, TypeError) as error:
            failed.append({"id": example.id, "reason": str(error)[:200]})
            continue
        lengths.append(sample.full_length)
        kept = sample.labels[:max_length]
        trained += sum(1 for label in kept if label != IGNORE)
        total += min(sample.full_length, max_length)
    if not lengths:
        return {"counted": 0, "max_length": max_length, "failed": failed[:50]}
    return {
        "counted": len(lengths), "max_length": max_length, "min": min(lengths), "max": max(lengths),
        "mean": round(sum(lengths) / len(lengths), 1), "truncated": sum(1 for n in lengths if n > max_length),
        "trained_share": round(trained / total, 4) if total else 0.0, "lengths": lengths, "failed": failed[:50],
    }


def mask_view(examples: Example | list[Example], tokenizer, *, max_length: int, chat_template: str | None = None) -> dict:
    """The exact training text of one record (or of several stacked into one sample, as a
    recipe's `data.stack` does) and (token text, trained?) pairs for display."""
    group = [examples] if isinstance(examples, Example) else list(examples)
    conversations = [as_conversation(e) for e in group]
    messages = stack_messages(conversations) if len(conversations) > 1 else conversations[0].messages
    sample = tokenize_messages(tokenizer, messages, max_length=max_length, chat_template=chat_template,
                               example_ids=[e.id for e in group])
    return {"text": sample.text, "segments": mask_segments(tokenizer, sample), "tokens": len(sample.input_ids),
            "full_length": sample.full_length, "truncated": sample.truncated, "trained": sample.trained_tokens,
            "ids": sample.example_ids}
