"""The clients of the servers the studio talks to, built in one place: the official `ollama`
client (one default address, one timeout rule: a short wait to connect, a per-use wait for the
answer) and the Hugging Face Hub's `HfApi` (the endpoint as it is now, the token rule). Which
servers a browser may name is core.hosting's policy; what is asked of them is each caller's.
"""

from __future__ import annotations

import os

from core.workspace import current_visitor

DEFAULT_OLLAMA = "http://127.0.0.1:11434"
LOCAL_OLLAMA = (DEFAULT_OLLAMA, "http://localhost:11434")  # the default server, as either spelling
DEFAULT_HUB = "https://huggingface.co"
CONNECT_S = 5.0  # a server that is there answers a connection at once; waiting longer only delays the error

# How long an answer may take, by use (seconds): creating a model uploads a GGUF of gigabytes;
# a data-making reply may think for minutes; a judge's or grader's reply is a few tokens.
OLLAMA_TIMEOUTS = {"create": 600.0, "make": 300.0, "judge": 120.0, "reward": 60.0}


def ollama_host(host: str | None = None) -> str:
    """The Ollama server to call: the one given, else OLLAMA_HOST, else the local default."""
    return (host or "").strip() or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA


def ollama_client(host: str | None = None, *, use: str = "judge", timeout_s: float | None = None):
    """An `ollama.Client` for `host` (see ollama_host) with the answer timeout of `use`."""
    import httpx
    import ollama

    read = timeout_s if timeout_s is not None else OLLAMA_TIMEOUTS[use]
    return ollama.Client(host=ollama_host(host), timeout=httpx.Timeout(read, connect=CONNECT_S))


SHARE_SERVER_TOKEN = "STUDIO_SHARE_SERVER_TOKEN"  # an operator's opt-in: visitors may push and run Jobs on HF_TOKEN


def resolve_token(token: str | None) -> str | None:
    """The Hub token to use: the one given (a browser's box, a visitor's Hugging Face sign-in, an
    argument), else HF_TOKEN, except for a visitor of a shared studio: their pushes and Jobs go on
    their own token, never the server's, unless the operator opts in (STUDIO_SHARE_SERVER_TOKEN=1)."""
    given = (token or "").strip()
    if given:
        return given
    if current_visitor() and not server_token_shared():
        return None
    return os.environ.get("HF_TOKEN") or None


def server_token_shared() -> bool:
    return os.environ.get(SHARE_SERVER_TOKEN, "").strip().lower() in ("1", "true", "yes")


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub to talk to: the caller's, else HF_ENDPOINT as it is now (huggingface_hub reads it once)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HUB).rstrip("/")


def hub_api(token: str | None = None, endpoint: str | None = None):
    """`HfApi` for the endpoint (hub_endpoint) with exactly this token: None or '' sends none
    (never a token cached on the machine by `hf auth login`, which may be someone else's)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint(endpoint), token=token or False)
