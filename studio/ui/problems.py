"""How the UI tells a failure. The studio's own errors (core's `StudioError` family) and file
errors (`OSError`) are expected: their message is written for a person and goes on the page as
it is. Anything else is a bug or a library's surprise: the page gets one line, never a
traceback, and the server log gets the traceback, so it is seen and fixed rather than hidden.
"""

from __future__ import annotations

import logging

from core.errors import StudioError

EXPECTED = (StudioError, OSError)
log = logging.getLogger("studio")


def unexpected(error: BaseException, doing: str) -> str:
    """One line for the page about an error nobody wrote a message for; the traceback is logged."""
    log.error("unexpected error while %s", doing, exc_info=error)
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return f"{doing[:1].upper()}{doing[1:]} failed: {type(error).__name__}: {first} (the server log has the details)"
