"""The workspace: the one folder where the studio keeps runs, datasets, exports and models.

`STUDIO_HOME` picks it; the default is `~/.tuning-studio`. This module also guards paths a
user types: `inside()` refuses anything that resolves outside the workspace (or another
allowed root), so a hosted studio can't be walked out of. It knows nothing about what is
stored in the folders.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS = PROJECT_ROOT / "assets"
CONFIGS = PROJECT_ROOT / "configs"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def ensure(self) -> "Workspace":
        for folder in (self.runs, self.datasets, self.exports, self.models):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def workspace() -> Workspace:
    """The workspace named by STUDIO_HOME (read each call, so tests can point it elsewhere)."""
    root = os.environ.get("STUDIO_HOME") or str(Path.home() / ".tuning-studio")
    return Workspace(Path(root).expanduser().resolve()).ensure()


class PathOutsideWorkspace(ValueError):
    pass


def inside(path: str | os.PathLike, *roots: Path) -> Path:
    """Resolve `path` and make sure it lies under one of `roots` (default: the workspace and
    the bundled assets/configs). Relative paths are taken from the first root."""
    allowed = [Path(r).resolve() for r in roots] or [workspace().root, ASSETS, CONFIGS]
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = allowed[0] / candidate
    resolved = candidate.resolve()
    for root in allowed:
        if resolved == root or root in resolved.parents:
            return resolved
    names = ", ".join(str(r) for r in allowed)
    raise PathOutsideWorkspace(f"{path}: outside the folders this studio may read ({names})")


def write_atomic(path: Path, text: str) -> None:
    """Write text so a crash leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: object) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
