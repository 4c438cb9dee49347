"""The normalized row: `Example` (one usable row) and `BadRow` (one unusable row, with where and
why), and the chat roles a row may use. Every reader produces these; this module knows nothing
about files, formats or tokenizers."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant", "tool")


@dataclass(slots=True)
class Example:
    """One normalized row. `messages` is the chat; for preference data `chosen`/`rejected` are
    the two assistant replies that follow `messages` (the shared prompt). `label` marks a chat's
    last reply good (True) or bad (False) for KTO: unpaired preference data."""

    id: str
    messages: list[dict]
    mode: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    category: str | None = None
    source: dict = field(default_factory=dict)
    line: int | None = None
    row: int | None = None  # 1-based position among the file's records (blank lines not counted)
    left_out: list[str] = field(default_factory=list)  # content parts the studio can't use (images ...), by place
    label: bool | None = None  # the last reply is good (True) or bad (False): KTO's unpaired preference

    @property
    def is_preference(self) -> bool:
        return self.chosen is not None and self.rejected is not None


@dataclass(slots=True)
class BadRow:
    """A row that could not be used, with where it is and why."""

    file: str
    line: int | None
    reason: str
    row: int | None = None
    raw: str | None = field(default=None, repr=False, compare=False)  # the line as it is in the file (JSONL), to show and fix

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else f"{self.file} row {self.row}" if self.row else self.file
        return f"{where}: {self.reason}"
