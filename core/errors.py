"""The studio's error family: every error core raises for a person to read derives from
`StudioError`, so a client (the web UI, the CLI) catches the studio's own failures narrowly and
lets a real bug surface as one. `BadInput` is for values a person typed or chose (a sampling
setting, a prompt-set row, a review status); it is also a ValueError, as it always was.
This module knows nothing about which errors exist; each room declares its own.
"""

from __future__ import annotations


class StudioError(Exception):
    """A failure the message explains to a person: what was wrong, where, and what to do."""


class BadInput(StudioError, ValueError):
    """A value a person gave (typed, uploaded, chosen) that can't be used as it is."""
