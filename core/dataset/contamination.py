"""Contamination: does a mode-tagged sample use only its own mode's tags, all of them, balanced?

A mode -> tags table (default in assets/modes.yaml, editable, or a recipe's `data.mode_tags`)
says which tags belong to which cognitive mode. A sample of one mode that contains another
mode's tags, lacks its own, or leaves a tag unclosed is a finding with the row, the mode and
the offending tags. Only assistant text is scanned: system prompts often *name* the tags.
This module knows nothing about files or the other quality checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from core.dataset.reader import Example
from core.dataset.rendered import assistant_part
from core.dataset.tags import mode_tag_pattern, tag_owner
from core.errors import BadInput
from core.schema import yaml_error_text
from core.workspace import ASSETS


class ModesError(BadInput):
    """A modes file or table that can't be read as mode -> tags; the message names the file and key."""


DEFAULT_MODES_FILE = ASSETS / "modes.yaml"
BUILTIN_MODES = {"dual": ["<thought>", "<world>"], "emulation": ["<user>", "<assistant>"], "agent": ["<instruction>", "<action>"]}


def load_config(path: str | Path | None = None) -> dict:
    """The modes YAML as {"modes": {mode: [tags]}, "filler_phrases": [...]}; a plain
    {mode: [tags]} mapping is accepted too. Errors name the file and the key."""
    path = Path(path) if path else DEFAULT_MODES_FILE
    if not path.is_file():
        if path == DEFAULT_MODES_FILE:
            return {"modes": dict(BUILTIN_MODES), "filler_phrases": []}
        raise FileNotFoundError(f"{path}: modes file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ModesError(yaml_error_text(path, error)) from None
    if not isinstance(data, dict):
        raise ModesError(f"{path}: expected a mapping with a 'modes' section")
    modes = data.get("modes", {k: v for k, v in data.items() if k != "filler_phrases"})
    return {"modes": normalize_table(modes, str(path)), "filler_phrases": [str(p).lower() for p in data.get("filler_phrases", [])]}


def normalize_table(modes, where: str = "modes") -> dict[str, list[str]]:
    """{mode: ["<tag>", ...]} with tags written with or without angle brackets."""
    if not isinstance(modes, dict) or not modes:
        raise ModesError(f"{where}: expected a mapping of mode name -> list of tags, e.g. dual: ['<thought>', '<world>']")
    table = {}
    for mode, tags in modes.items():
        if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip("<>/ ") for t in tags):
            raise ModesError(f"{where}.{mode}: expected a list of tags like ['<thought>', '<world>'], got {tags!r}")
        table[str(mode)] = [f"<{t.strip('<>/ ')}>" for t in tags]
    return table


@dataclass
class Finding:
    reason: str  # foreign tags | missing tags | unbalanced tags | unknown mode | no mode
    tags: list[str]
    detail: str

    def to_dict(self) -> dict:
        return {"reason": self.reason, "tags": self.tags, "detail": self.detail}


class ContaminationCheck:
    """Checks one example at a time against a mode table."""

    def __init__(self, table: dict[str, list[str]] | None = None):
        self.table = normalize_table(table or BUILTIN_MODES)
        self.owner = tag_owner(self.table)
        self.pattern = mode_tag_pattern(self.owner)
        self._verdicts: dict[tuple, tuple[Finding, ...]] = {}

    def check(self, example: Example, texts: list[str] | None = None) -> list[Finding]:
        """Findings for one example; `texts` defaults to its assistant replies."""
        if texts is None:
            texts = assistant_texts(example)
        mode = example.mode
        if mode is None:
            return [Finding("no mode", [], "the row has no mode field, so its tags can't be checked")]
        if mode not in self.table:
            known = ", ".join(self.table)
            return [Finding("unknown mode", [], f"mode '{mode}' is not in the mode table ({known}); add it or fix the label")]
        # The verdict depends only on the mode and the tags in each text, in order, and a big
        # dataset repeats a few tag sequences: judge each sequence once.
        key = (mode, tuple(tuple(self.pattern.findall(text)) if "<" in text and self.pattern else () for text in texts))
        found = self._verdicts.get(key)
        if found is None:
            found = self._judge(mode, key[1])
            if len(self._verdicts) < 10_000:
                self._verdicts[key] = found
        return list(found)

    def _judge(self, mode: str, sequences: tuple) -> tuple[Finding, ...]:
        findings, seen = [], set()
        for tags in sequences:
            seen |= self._balance(tags, findings)
        own = [tag for tag in self.table[mode] if tag[1:-1] not in seen]
        if own:
            findings.append(Finding("missing tags", own, f"a sample of mode {mode} must contain {', '.join(self.table[mode])}"))
        foreign = sorted({f"<{name}>" for name in seen if self.owner[name] != mode})
        if foreign:
            whose = ", ".join(sorted({self.owner[t[1:-1]] for t in foreign}))
            findings.append(Finding("foreign tags", foreign, f"a sample of mode {mode} contains tags of mode {whose}"))
        return tuple(findings)

    @staticmethod
    def _balance(tags: tuple, findings: list[Finding]) -> set[str]:
        """The tag names in one text's sequence of ('/' or '', name) tags; a finding when they don't balance."""
        open_count: dict[str, int] = {}
        seen, bad = set(), set()
        for slash, name in tags:
            closing = bool(slash)
            seen.add(name)
            if closing:
                if open_count.get(name, 0) == 0:
                    bad.add(f"</{name}>")
                else:
                    open_count[name] -= 1
            else:
                open_count[name] = open_count.get(name, 0) + 1
        bad |= {f"<{name}>" for name, count in open_count.items() if count}
        if bad:
            findings.append(Finding("unbalanced tags", sorted(bad), "every opening tag needs its closing tag, in order"))
        return seen


def assistant_texts(example: Example) -> list[str]:
    """What the model learns to write: assistant turns (of a rendered chat, its assistant part)
    and a pair's two replies."""
    texts = [assistant_part(m["content"]) for m in example.messages if m["role"] == "assistant"]
    if example.is_preference:
        texts += [example.chosen or "", example.rejected or ""]
    return texts
