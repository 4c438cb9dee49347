"""Rendered chat text: a row whose `text` is a whole conversation written out with a model
family's template (a mode build's schema.jsonl, a dataset exported for plain-text training).
Checks judge what the model learns to write, so they read its assistant part, as they read a
chat row's assistant turns: the system line of a mode build names the tags in words, and is not
a sample mixing modes. Knows nothing about datasets or checks: text in, text out.
"""

from __future__ import annotations

import re

# (a marker every such text holds, the pattern of one assistant turn), by template family.
_FAMILIES = (
    ("<|im_start|>", re.compile(r"<\|im_start\|>assistant[^\n]*\n(.*?)(?:<\|im_end\|>|\Z)", re.S)),  # ChatML: Qwen, SmolLM
    ("<|start_header_id|>", re.compile(r"<\|start_header_id\|>assistant<\|end_header_id\|>\s*(.*?)(?:<\|eot_id\|>|\Z)", re.S)),  # Llama 3
    ("<start_of_turn>", re.compile(r"<start_of_turn>model\s*\n(.*?)(?:<end_of_turn>|\Z)", re.S)),  # Gemma
    ("<|assistant|>", re.compile(r"<\|assistant\|>\s*(.*?)(?:<\|end\|>|</s>|<\|user\|>|<\|system\|>|\Z)", re.S)),  # Zephyr, Phi-3
    ("[/INST]", re.compile(r"\[/INST\]\s*(.*?)(?:</s>|\[INST\]|\Z)", re.S)),  # Llama 2, Mistral
)


def assistant_part(text: str) -> str:
    """The assistant turns of a rendered chat, joined by a line break; any other text as it is."""
    for marker, pattern in _FAMILIES:
        if marker in text:
            turns = pattern.findall(text)
            if turns:
                return "\n".join(turn.strip() for turn in turns)
    return text
