"""The chat template: the one place a conversation becomes a prompt, and where the template a
run trained with is kept with its weights.

Every prompt the studio renders (training text, the label mask, chat panes, A/B and evaluation
answers, reward previews, the judge, dataset making, Modelfile and GGUF checks) goes through
`render`, which is the tokenizer's own `apply_chat_template` with the template to use. A recipe
may name its own template (`model.chat_template`); `adopt` puts it on the tokenizer the trainer
saves, so the adapter, best/ and every checkpoint carry it in their tokenizer files, and
`saved_template` reads it back from any of those folders for chat, evaluation and export.
Knows nothing about models, runs or recipes beyond the template text.
"""

from __future__ import annotations

import json
from pathlib import Path


def render(tokenizer, messages: list[dict], *, template: str | None = None, add_generation_prompt: bool = False,
           tokenize: bool = False, **options):
    """`tokenizer.apply_chat_template` with `template` (None: the tokenizer's own). `options` are
    passed on (return_tensors, return_dict, ...)."""
    return tokenizer.apply_chat_template(messages, tokenize=tokenize, add_generation_prompt=add_generation_prompt,
                                         chat_template=template, **options)


def adopt(tokenizer, template: str | None):
    """Make `template` the tokenizer's own (when given), so every `save_pretrained` of it, by the
    trainer's checkpoints, best/ and the final adapter, writes it beside the weights."""
    if template:
        tokenizer.chat_template = template
    return tokenizer


def saved_template(folder: str | Path) -> str | None:
    """The chat template saved in an artifact folder (chat_template.jinja, or the chat_template of
    tokenizer_config.json); None when the folder holds no tokenizer files (the base model's then)."""
    folder = Path(folder)
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if config.is_file():
        try:
            template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        except (OSError, json.JSONDecodeError):
            return None
        if isinstance(template, list):  # named templates: the default one is what a chat renders
            template = next((t.get("template") for t in template if t.get("name") == "default"), None)
        return template if isinstance(template, str) and template else None
    return None
