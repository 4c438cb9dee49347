"""What a browser may name: every dataset, model, recipe, run or server a visitor sends (event data,
dropdown values, typed text) becomes a path here or in core.train.run_dir.run_path, through
core.workspace.inside, the one path guard. Handlers in the tabs call these and show the
refusal as a message. Knows nothing about widgets; the policy (demo mode, extra model
folders) is core.hosting's."""

from __future__ import annotations

from pathlib import Path

from core import hosting, models
from core.dataset import reader
from core.workspace import ASSETS, CONFIGS, PathOutsideWorkspace, inside, workspace

# What a handler catches when a visitor names something it may not open.
Refused = (PathOutsideWorkspace, hosting.DemoRefusal, hosting.HostNotAllowed)


def dataset(text: str) -> str:
    """A dataset a browser named (a path or a Hub name) as the path or Hub name to open. In demo
    mode only a bundled sample; otherwise a file in the workspace or the bundled assets (relative
    paths start at the workspace), or a Hub name when no such file exists there."""
    text = str(text or "").strip()
    if hosting.demo_mode():
        try:
            bundled = inside(text, ASSETS)
        except PathOutsideWorkspace:
            bundled = None
        if bundled is None or not bundled.is_file():  # never a Hub name, never a workspace file
            raise hosting.DemoRefusal(f"{text}: {hosting.DEMO_DATA}")
        return str(bundled)
    checked = inside(text, workspace().root, ASSETS, CONFIGS)
    if not checked.exists() and reader.is_hub_dataset(text, workspace().root):
        return text  # a Hub dataset name: nothing of that name in the workspace, and no file suffix
    return str(checked)


def model(name: str) -> str:
    """A model a browser named, as the name core.models resolves: 'embedded', a Hub id, or a local
    folder inside the workspace, the bundled assets or STUDIO_MODEL_DIRS, made absolute so it never
    depends on the server's working folder. In demo mode only the embedded model."""
    name = str(name or "").strip()
    if not name or models.is_embedded(name):
        return name or "embedded"
    if hosting.demo_mode():
        raise hosting.DemoRefusal(f"{name}: {hosting.DEMO_MODEL}")
    local = Path(name).expanduser()
    if models.HUB_ID.match(name) and not local.exists() and not (workspace().root / name).exists():
        return name  # a Hub id: no folder of that name here or in the server's working folder
    return str(inside(name, workspace().root, ASSETS, CONFIGS, *hosting.model_folders()))


def ollama_host(text: str) -> str | None:
    """An Ollama server address a browser typed: empty means the server's own default (OLLAMA_HOST);
    anything else must be one core.hosting.ollama_hosts allows."""
    host = hosting.normal_host(text)
    if not host:
        return None
    allowed = hosting.ollama_hosts()
    if host not in allowed:
        raise hosting.HostNotAllowed(
            f"{str(text).strip()[:120]}: this studio calls only the Ollama servers its operator allows "
            f"({', '.join(allowed)}); whoever runs it can add one with STUDIO_OLLAMA_HOSTS.")
    return host


def recipe_file(path: str, saved: Path) -> Path:
    """A recipe picked in the Train tab: a bundled one or one saved in the workspace."""
    return inside(path, CONFIGS, saved)
