"""Tags inside text: `<think>` reasoning blocks and cognitive-mode tags (`<thought>`, `<world>`...).

The one owner of both patterns: the checks count words outside `<think>`, the chat and the A/B
metrics split the reasoning from the answer, the contamination check and the Dataset tab's
renderer find mode tags, and they all ask here. `escape` lets a renderer match the same tags in
HTML-escaped text. This module knows nothing about files, modes tables' sources or rendering.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def _same(text: str) -> str:
    return text


def think_pattern(escape: Callable[[str], str] = _same) -> re.Pattern:
    """A `<think>` block, closed or still open at the end: group 1 the reasoning, group 2 the
    closing tag ('' while unclosed). With `escape`, the pattern for escaped text (e.g. HTML)."""
    return re.compile(rf"{re.escape(escape(THINK_OPEN))}(.*?)({re.escape(escape(THINK_CLOSE))}|$)", re.DOTALL)


THINK = think_pattern()


@dataclass(frozen=True)
class ThinkSplit:
    think: str | None  # the reasoning, None when the text has no <think> block
    answer: str  # the text outside the block
    closed: bool  # False while the block is still being written


def split_think(text: str) -> ThinkSplit:
    """Separate a leading or embedded <think>…</think> block from the answer.
    >>> split_think("<think>hm</think>Paris.")
    ThinkSplit(think='hm', answer='Paris.', closed=True)
    """
    match = THINK.search(text)
    if not match:
        return ThinkSplit(None, text.strip(), True)
    answer = (text[: match.start()] + text[match.end():]).strip()
    return ThinkSplit(match.group(1).strip(), answer, bool(match.group(2)))


def think_title(split: ThinkSplit) -> str:
    words = len(split.think.split()) if split.think else 0
    state = "thinking…" if not split.closed else "thought"
    return f"{state.capitalize()} · {words} words, {len(split.think or '')} characters"


def without_think(text: str) -> str:
    """The text a reader sees: every <think> block left out (an unclosed one runs to the end).
    Plain string partitions, no regex: the checks call this on every reply of a million rows.
    >>> without_think("<think>a</think>B <think>c</think>D")
    ' B  D'
    """
    while THINK_OPEN in text:
        head, _, rest = text.partition(THINK_OPEN)
        text = head + " " + rest.partition(THINK_CLOSE)[2]
    return text


def tag_owner(table: dict[str, Iterable[str]]) -> dict[str, str]:
    """{tag name without brackets: mode} for a mode -> tags table."""
    return {tag.strip("<>/ "): mode for mode, tags in table.items() for tag in tags}


def mode_tag_pattern(names: Iterable[str], escape: Callable[[str], str] = _same) -> re.Pattern | None:
    """An opening or closing mode tag: group 1 is '/' for a closing tag, group 2 the tag's name.
    Longer names are tried first, so `<thought>` never matches as `<thou...`. None for no names."""
    names = sorted(set(names), key=len, reverse=True)
    if not names:
        return None
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf"{re.escape(escape('<'))}(/?)({alternatives}){re.escape(escape('>'))}")
