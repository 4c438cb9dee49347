"""Content parts: a chat turn whose `content` is a list of typed parts, as the common tools write
it, turned into what the studio trains on.

Shapes read: OpenAI chat (`{"type": "text", "text": ...}`), LLaMA-Factory v1 (`{"type": "text",
"value": ...}`, `reasoning`, `tool_call` with a JSON value), the OpenAI Responses API
(`input_text`, `output_text`, `refusal`, `reasoning` with a summary), Anthropic (`thinking`,
`tool_use`) and bare strings. Text parts are joined in order. Reasoning parts become one
`<think>…</think>` block before the text, the studio's one way of carrying reasoning (friction
records use it too): a template with a think block (Qwen3, DeepSeek-R1) renders it there, other
templates train it as written. Tool-call parts become the turn's `tool_calls`. A part the studio
can't use (an image, audio, a file) is left out and named, so the row can report it.
This module knows nothing about rows, formats or files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from core.errors import BadInput

TEXT = frozenset(("text", "input_text", "output_text", "refusal", "summary_text"))
REASONING = frozenset(("reasoning", "thinking", "reasoning_text"))
TOOL_CALL = frozenset(("tool_call", "tool_use", "function_call"))
_VALUE_KEYS = ("text", "value", "content", "summary")
THINK = "<think>{reasoning}</think>{text}"  # the friction records' default template, same shape


class PartError(BadInput):
    """A part that is malformed (not an object, a tool call that is not JSON); names where."""


@dataclass
class Content:
    text: str = ""
    reasoning: str = ""
    tool_calls: list = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "messages[1].content[0] (image_url)"

    def as_text(self) -> str:
        """The turn's text, with its reasoning in a <think> block in front."""
        return THINK.format(reasoning=self.reasoning, text=self.text) if self.reasoning else self.text


def read(parts: list, where: str) -> Content:
    """One turn's list of content parts; PartError (naming the part) when one is malformed."""
    content = Content()
    texts, thoughts = [], []
    for index, part in enumerate(parts):
        here = f"{where}[{index}]"
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise PartError(f"{here}: expected a content part object or text, got {type(part).__name__}")
        kind = part.get("type") or ("text" if any(k in part for k in ("text", "value")) else None)
        if kind in TEXT:
            texts.append(_value(part, kind, here))
        elif kind in REASONING:
            thoughts.append(_value(part, kind, here))
        elif kind in TOOL_CALL:
            content.tool_calls.append(_tool_call(part, here))
        else:
            content.left_out.append(f"{here} ({kind or 'a part with no type'})")
    content.text, content.reasoning = "".join(texts), "\n\n".join(t for t in thoughts if t.strip())
    return content


def _value(part: dict, kind: str, where: str) -> str:
    for key in (kind, *_VALUE_KEYS):
        value = part.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):  # a Responses-API summary: a list of summary_text parts
            return "\n\n".join(_value(p, "text", where) if isinstance(p, dict) else str(p) for p in value)
    return ""


def _tool_call(part: dict, where: str) -> dict:
    """The chat-template shape, {"type": "function", "function": {"name", "arguments"}}."""
    call = part.get("value", part)
    if isinstance(call, str):
        try:
            call = json.loads(call)
        except (json.JSONDecodeError, RecursionError):
            raise PartError(f"{where}: the tool call is not JSON ({call[:60]!r})") from None
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        call = call["function"]
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise PartError(f"{where}: a tool call needs a name and arguments")
    arguments = call.get("arguments", call.get("input", {}))
    return {"type": "function", "function": {"name": call["name"], "arguments": arguments}}
