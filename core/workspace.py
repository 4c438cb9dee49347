"""The workspace: the one folder where the studio keeps runs, datasets, exports and models.

`STUDIO_HOME` picks it; the default is `~/.tuning-studio`. This module also guards paths a
user types: `inside()` refuses anything that resolves outside the workspace (or another
allowed root), so a hosted studio can't be walked out of. It owns the one atomic-write step
(write beside the target, rename over it when complete) that every writer in core uses. It
knows nothing about what is stored in the folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import StudioError

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

    def ensure(self) -> Workspace:
        for folder in (self.runs, self.datasets, self.exports, self.models):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def workspace() -> Workspace:
    """The workspace named by STUDIO_HOME (read each call, so tests can point it elsewhere)."""
    root = os.environ.get("STUDIO_HOME") or str(Path.home() / ".tuning-studio")
    return Workspace(Path(root).expanduser().resolve()).ensure()


class PathOutsideWorkspace(StudioError, ValueError):
    """A path a visitor sent that resolves outside the folders this studio may read."""


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


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write text (or bytes) so a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike, default=None, *, kind: type = dict):
    """A JSON file's content when it exists, parses and is a `kind` (a dict by default); otherwise
    `default` ({} for a dict, [] for a list when not given). For state files that may not exist
    yet or may be cut off by a crash: the caller decides what a missing one means."""
    if default is None:
        default = kind()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: JSONDecodeError and undecodable bytes
        return default
    return data if isinstance(data, kind) else default


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a JSONL file the studio wrote (metrics, A/B rows, picks); a line being
    written while we read, or anything that is not an object, is skipped. A missing file is empty."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """One JSON line onto a JSONL file, in one write and flushed at once for the readers (appends
    from several processes then never interleave inside a line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()


def write_json_atomic(path: Path, data: object) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """`<target>.partial` to write a file or a whole folder into (streamed, by a library's
    `save_pretrained`, by a converter); when the block ends it replaces `target`, and when the
    block fails it is removed, so a crash or a full disk never leaves half an artifact behind.
    >>> with atomic_path(folder / "model") as partial:  # doctest: +SKIP
    ...     model.save_pretrained(partial)
    """
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    _remove(partial)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield partial
        if partial.is_dir():
            _remove(target)  # a folder can't be renamed over a non-empty folder
        os.replace(partial, target)
    except BaseException:
        _remove(partial)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
