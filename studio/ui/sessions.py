"""Who is visiting, on a studio shared by several people: each visitor works in a workspace of
their own (core.workspace). The visitor is read from the request gradio is serving: a login's
user name (STUDIO_AUTH with several users), a Hugging Face sign-in on a Space (OAuth), or else
the page's session (an anonymous visitor of a hosted demo, whose workspace goes when the session
ends: `leave`). One person's studio (no login or one) keeps the one workspace.
"""

from __future__ import annotations

from core.clients import server_token_shared
from core.hosting import admins, oauth_enabled, shared_workspaces
from core.train import visits
from core.workspace import set_visitor_source, visitor_key


def identity(request) -> str | None:
    """'user:ana' (a login), 'hf:ana' (signed in with Hugging Face), 'anon:<session>', or None."""
    if request is None:
        return None
    user = getattr(request, "username", None)
    if user:
        return f"user:{user}"
    hub_name = hub_user(request)
    if hub_name:
        return f"hf:{hub_name}"
    session = getattr(request, "session_hash", None)
    return f"anon:{session}" if session else None


def hub_user(request) -> str | None:
    """The Hub name of a visitor signed in with Hugging Face (gradio keeps it in the session)."""
    info = _oauth_info(request)
    return (info.get("userinfo") or {}).get("preferred_username") if info else None


def hub_token(request) -> str | None:
    """The signed-in visitor's own OAuth token, for their Hub pushes and Jobs."""
    info = _oauth_info(request)
    return info.get("access_token") if info else None


def empty_token_means() -> str:
    """What an empty Hub token box stands for here (core.clients.resolve_token's rule, in words)."""
    if not shared_workspaces():
        return "the server's HF_TOKEN"
    if server_token_shared():
        return "this studio's own token, as its operator allows"
    return "your Hugging Face sign-in's token (sign in at the top)" if oauth_enabled() else "nothing: paste your own token"


def _oauth_info(request) -> dict | None:
    raw = getattr(request, "request", None)
    try:
        session = raw.session if raw is not None else None  # starlette asserts without a session middleware
    except (AssertionError, AttributeError):
        return None
    info = session.get("oauth_info") if session else None
    return info if isinstance(info, dict) else None


def current_key() -> str | None:
    """The key of the visitor whose event is being served (None: the server's one workspace)."""
    if not shared_workspaces():
        return None
    from gradio.context import LocalContext

    who = identity(LocalContext.request.get(None))
    return visitor_key(who) if who else None


def is_admin() -> bool:
    """Is the visitor being served one the operator lets see every workspace (STUDIO_ADMINS)?"""
    if not shared_workspaces():
        return False
    from gradio.context import LocalContext

    who = identity(LocalContext.request.get(None)) or ""
    kind, _, name = who.partition(":")
    return kind in ("user", "hf") and name in admins()


def install() -> list[str]:
    """Serve each visitor from their own workspace; remove anonymous workspaces an earlier server
    left (their sessions are gone). Returns the keys removed."""
    set_visitor_source(current_key)
    return visits.sweep_anonymous() if shared_workspaces() else []


def leave() -> None:
    """The page's session ended (gradio's unload): an anonymous visitor's work stops and their
    workspace goes; a signed-in visitor's stays for their return."""
    key = current_key()
    if key:
        visits.end_visit(key)
