"""Model-family schemas: turn a chat (system / user / assistant) into the one training string a
model family expects.

The default is the tokenizer's own chat template. Rendering a Jinja template costs about as much
as everything else in a mode build together, so `ChatTemplateSchema` renders it once with
sentinel texts, keeps the pieces around them as a prefix/suffix table, and checks that table
against `apply_chat_template` on sampled rows: any difference and every row is rendered by the
template itself. Families without a template use a prefix/suffix YAML file (see
assets/make/schema_plain.yaml). This module knows nothing about modes, records or files of rows.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from core.chat_template import render
from core.errors import BadInput

ROLES = ("system", "user", "assistant")
_SENTINEL = {role: f"\x00{role.upper()}-SENTINEL\x00" for role in ROLES}


class SchemaError(BadInput):
    """A schema file or template that can't be used; the message names the file and the key."""


class PrefixSuffixSchema:
    """`begin` + for each turn: its role's prefix, the text, its role's suffix + `end`."""

    def __init__(self, table: dict, *, begin: str = "", end: str = "", where: str = "schema"):
        for role in ROLES:
            entry = table.get(role)
            if not isinstance(entry, dict) or not all(isinstance(entry.get(k, ""), str) for k in ("prefix", "suffix")):
                raise SchemaError(f"{where}: '{role}' needs a mapping with 'prefix' and 'suffix' strings")
        self.table = {role: (table[role].get("prefix", ""), table[role].get("suffix", "")) for role in ROLES}
        self.begin, self.end, self.name = begin, end, where

    def render(self, messages: list[dict]) -> str:
        parts = [self.begin]
        for message in messages:
            prefix, suffix = self.table[message["role"]]
            parts += (prefix, message["content"], suffix)
        parts.append(self.end)
        return "".join(parts)

    def describe(self) -> dict:
        return {"schema": "prefix/suffix", "source": self.name}


def load_schema_file(path: str | Path) -> PrefixSuffixSchema:
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: schema file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SchemaError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: expected a mapping with system / user / assistant prefix and suffix")
    return PrefixSuffixSchema(data, begin=str(data.get("begin", "")), end=str(data.get("end", "")), where=str(path))


class ChatTemplateSchema:
    """The tokenizer's chat template, with a verified fast path for system/user/assistant chats."""

    VERIFY_ROWS = 64  # rows checked against apply_chat_template before the fast path is trusted

    def __init__(self, tokenizer, model_name: str = ""):
        if not getattr(tokenizer, "chat_template", None):
            raise SchemaError(f"{model_name or 'the tokenizer'} has no chat template; pass a prefix/suffix schema "
                              "file instead (see assets/make/schema_plain.yaml)")
        self.tokenizer, self.model_name = tokenizer, model_name
        self.fast = self._compile()
        self.checked = self.rendered = 0
        self.mismatch: str | None = None

    def _compile(self) -> PrefixSuffixSchema | None:
        chat = [{"role": role, "content": _SENTINEL[role]} for role in ROLES]
        try:
            text = render(self.tokenizer, chat)
        except Exception:  # noqa: BLE001  (any template error: render every row by the template instead)
            return None
        # The text before a turn is its prefix (the first one's includes the template's opening);
        # what follows the last turn is its suffix.
        table, position = {}, 0
        for role in ROLES:
            at = text.find(_SENTINEL[role], position)
            if at < 0:
                return None
            table[role] = {"prefix": text[position:at], "suffix": ""}
            position = at + len(_SENTINEL[role])
        table[ROLES[-1]]["suffix"] = text[position:]
        return PrefixSuffixSchema(table, where="chat template")

    def render(self, messages: list[dict]) -> str:
        """The chat as one string. The first VERIFY_ROWS rows and every 997th row after them are
        rendered by the template and compared with the fast path."""
        self.rendered += 1
        verify = self.rendered <= self.VERIFY_ROWS or self.rendered % 997 == 0
        if self.fast is not None and not verify:
            return self.fast.render(messages)
        exact = render(self.tokenizer, messages)
        if self.fast is not None:
            self.checked += 1
            if [m["role"] for m in messages] != list(ROLES) or self.fast.render(messages) != exact:
                self.mismatch = f"row {self.rendered}: the template renders it differently from a fixed prefix/suffix"
                self.fast = None
        return exact

    def describe(self) -> dict:
        return {"schema": "chat template", "model": self.model_name,
                "fast_path": self.fast is not None, "verified_rows": self.checked, "fast_path_off": self.mismatch}
