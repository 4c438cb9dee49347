"""Patterns: the pattern list (assets/patterns.yaml by default), one owner for everyone who reads
it. `refusal:` regexes say an answer refuses; `patterns:` entries (name, label, regex, prefer) are
habits whose rates the A/B metrics compare (markdown, hedging, ...). The evaluation metrics and the
GRPO refusal reward both read the list here, with the same flags. Knows nothing about answers,
models or reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadInput
from core.schema import yaml_error_text
from core.workspace import ASSETS

DEFAULT_PATTERNS = ASSETS / "patterns.yaml"


class PatternError(BadInput):
    """A pattern list that can't be used; the message names the file and the entry."""


@dataclass
class Pattern:
    name: str
    label: str
    regexes: list[re.Pattern]
    prefer: str = "fewer"  # fewer | more: which direction is an improvement

    def matches(self, text: str) -> bool:
        return any(regex.search(text) for regex in self.regexes)


@dataclass
class PatternSet:
    patterns: list[Pattern]
    refusal: Pattern


def load_patterns(path: str | Path | None = None) -> PatternSet:
    """The pattern list: `refusal:` regexes and `patterns:` entries (name, label, regex, prefer)."""
    import yaml

    path = Path(path or DEFAULT_PATTERNS)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise PatternError(yaml_error_text(path, error)) from None
    try:
        refusal = Pattern("refusal", "Refusal", _compile(data.get("refusal", []), f"{path}: refusal"))
        patterns = [Pattern(str(entry["name"]), str(entry.get("label", entry["name"])),
                            _compile(entry.get("regex", []), f"{path}: patterns.{entry['name']}"),
                            str(entry.get("prefer", "fewer")))
                    for entry in data.get("patterns", [])]
    except (KeyError, TypeError) as error:
        raise PatternError(f"{path}: each entry under 'patterns' needs a name and a regex list ({error})") from error
    return PatternSet(patterns, refusal)


def _compile(regexes, where: str) -> list[re.Pattern]:
    regexes = [regexes] if isinstance(regexes, str) else list(regexes)
    compiled = []
    for text in regexes:
        try:
            compiled.append(re.compile(text, re.IGNORECASE | re.MULTILINE))
        except re.error as error:
            raise PatternError(f"{where}: bad regular expression {text!r} ({error})") from error
    return compiled
