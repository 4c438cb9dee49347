"""Data: read a dataset file, detect its format, and normalize every row to an `Example`.

(Loaders and format detection are being written; the Example contract below is fixed.)
This module knows nothing about tokenizers or models: rendering to tokens lives in
core.samples, checks in core.checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Example:
    """One normalized row. `messages` is the chat; for preference data `chosen`/`rejected` are
    the two assistant replies that follow `messages` (the shared prompt)."""

    id: str
    messages: list[dict]
    mode: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    category: str | None = None
    source: dict = field(default_factory=dict)
    line: int | None = None

    @property
    def is_preference(self) -> bool:
        return self.chosen is not None and self.rejected is not None


@dataclass
class BadRow:
    """A row that could not be used, with where it is and why."""

    file: str
    line: int | None
    reason: str
    row: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"
