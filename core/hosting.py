"""Hosting policy: what a shared or demo deployment allows (a free CPU Space, a team server).

Demo mode (STUDIO_DEMO=1, or automatically on a Hugging Face Space, which sets SPACE_ID)
keeps visitors on the embedded model and bundled data with tight step limits, so one
visitor's run can't occupy the machine for long. This module only decides; the trainer, the UI and the CLI ask it. It knows
nothing about gradio.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.clients import LOCAL_OLLAMA
from core.errors import BadInput
from core.models import is_embedded
from core.recipes import Recipe, RecipeError
from core.workspace import ASSETS, PathOutsideWorkspace, inside

DEMO_MAX_STEPS = 60
DEMO_MAX_LENGTH = 512
MAX_UPLOAD = "50mb"


def demo_mode() -> bool:
    flag = os.environ.get("STUDIO_DEMO")
    if flag is not None:
        return flag.strip().lower() not in ("", "0", "false", "no")
    return bool(os.environ.get("SPACE_ID"))


def auth_from_env() -> list[tuple[str, str]] | None:
    """STUDIO_AUTH=user:password turns the login on; several people are comma-separated
    (`ana:pw1,bob:pw2`; a password may hold ':' but not ','). Each of several users gets a
    workspace of their own (see shared_workspaces)."""
    raw = os.environ.get("STUDIO_AUTH", "").strip()
    if not raw:
        return None
    pairs = []
    for n, item in enumerate(raw.split(","), 1):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError(f"STUDIO_AUTH must look like USER:PASSWORD[,USER:PASSWORD...]; entry {n} does not")
        pairs.append((user, password))
    if len({user for user, _ in pairs}) != len(pairs):
        raise ValueError("STUDIO_AUTH names a user twice")
    return pairs


def admins() -> set[str]:
    """STUDIO_ADMINS=ana,bob: people (login or Hub names) who see every visitor's runs, read only."""
    return {name.strip() for name in os.environ.get("STUDIO_ADMINS", "").split(",") if name.strip()}


def oauth_enabled() -> bool:
    """Sign in with Hugging Face: a Space whose README says `hf_oauth: true` gets OAUTH_CLIENT_ID."""
    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID"))


def shared_workspaces() -> bool:
    """Does each visitor get a workspace of their own? Yes on a hosted demo (a Space: signed-in
    visitors by their Hub name, the others for their session), and with several logins. One
    person's studio (no login, or one) keeps the one workspace."""
    users = auth_from_env() or []
    return demo_mode() or oauth_enabled() or len(users) > 1


class DemoRefusal(BadInput):
    """Something demo mode does not offer (another model, a workspace or Hub dataset, an upload)."""


DEMO_DATA = "this demo studio opens only its bundled sample datasets; run the studio yourself for your own data"
DEMO_MODEL = "this demo studio uses only the embedded model; run the studio yourself for other models"


def model_folders() -> list[Path]:
    """Folders outside the workspace that hold local models a visitor may name, set by whoever
    runs the studio: STUDIO_MODEL_DIRS, separated like PATH (e.g. /srv/models on a team machine)."""
    raw = os.environ.get("STUDIO_MODEL_DIRS", "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


class HostNotAllowed(BadInput):
    """A browser named a server this studio may not call."""




def ollama_hosts() -> list[str]:
    """The Ollama servers a browser may have the studio call: the default local one, OLLAMA_HOST,
    and STUDIO_OLLAMA_HOSTS (comma-separated, set by whoever runs the studio). A typed address
    outside these would let any visitor make the server send requests wherever it can reach."""
    raw = [*LOCAL_OLLAMA, os.environ.get("OLLAMA_HOST", "")]
    raw += os.environ.get("STUDIO_OLLAMA_HOSTS", "").split(",")
    hosts: list[str] = []
    for item in raw:
        host = normal_host(item)
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def normal_host(text: str) -> str:
    """'127.0.0.1:11434/' -> 'http://127.0.0.1:11434': one spelling per server, for comparing."""
    text = str(text or "").strip().rstrip("/")
    if not text:
        return ""
    if "://" not in text:
        text = "http://" + text
    scheme, _, rest = text.partition("://")
    return f"{scheme.lower()}://{rest.lower()}"


def enforce_demo_limits(recipe: Recipe) -> Recipe:
    """In demo mode: embedded model and bundled data only, at most DEMO_MAX_STEPS steps and
    DEMO_MAX_LENGTH tokens, no remote code. Outside demo mode the recipe is returned untouched.
    The dry run and every start call this before a model or dataset path is looked at."""
    if not demo_mode():
        return recipe

    if not is_embedded(recipe.model.name):
        raise RecipeError("model.name: this demo studio trains only the embedded model; run the studio yourself for other models")
    try:
        inside(recipe.dataset_path(), ASSETS)
    except PathOutsideWorkspace:
        raise RecipeError(f"data.path: {DEMO_DATA} (in {ASSETS})") from None
    if recipe.training.tuning == "qlora":
        raise RecipeError("training.tuning: QLoRA needs a GPU, which this demo studio does not have; use lora")
    steps = recipe.training.max_steps
    recipe.training.max_steps = DEMO_MAX_STEPS if steps <= 0 else min(steps, DEMO_MAX_STEPS)
    recipe.data.max_length = min(recipe.data.max_length, DEMO_MAX_LENGTH)
    recipe.model.trust_remote_code = False
    return recipe
