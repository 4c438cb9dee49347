"""The workspace: the one folder where the studio keeps runs, datasets, exports and models.

`STUDIO_HOME` picks it; the default is `~/.tuning-studio`. A studio shared by several people
(several logins, a Space's visitors) gives each visitor a workspace of their own under
`STUDIO_HOME/visitors/<key>/`, sharing only the converted models: `workspace()` answers for the
visitor whose request is being served (the UI tells this module who that is through
`set_visitor_source`), for `as_visitor(key)` code, and in a visitor's worker processes through
`STUDIO_VISITOR`. The server's own folder (`server_root()`) keeps what all visitors share: the
training slot's lock and its turns. This module also guards paths a
user types: `inside()` refuses anything that resolves outside the workspace (or another
allowed root), so a hosted studio can't be walked out of. It owns the one atomic-write step
(write beside the target, rename over it when complete) that every writer in core uses. It
knows nothing about what is stored in the folders.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
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


VISITORS = "visitors"
VISITOR_ENV = "STUDIO_VISITOR"  # a visitor's worker processes carry their key here
_visitor: contextvars.ContextVar[str | None] = contextvars.ContextVar("studio_visitor", default=None)
_visitor_source: Callable[[], str | None] | None = None


def server_root() -> Path:
    """The folder named by STUDIO_HOME (read each call, so tests can point it elsewhere)."""
    return Path(os.environ.get("STUDIO_HOME") or str(Path.home() / ".tuning-studio")).expanduser().resolve()


def visitor_key(identity: str) -> str:
    """A visitor's folder name: readable, safe on any file system, distinct for distinct
    identities ('user:Ana' and 'user:ana' differ), and not guessable from the identity alone (it
    is keyed with this server's secret), so no one can name another visitor's files."""
    readable = re.sub(r"[^a-z0-9_.-]+", "-", identity.lower()).strip("-.")[:40] or "visitor"
    digest = hmac.new(_server_secret(), identity.encode(), hashlib.sha256).hexdigest()[:16]
    return f"{readable}-{digest}"


def _server_secret() -> bytes:
    return _secret_at(server_root() / ".visitor-secret")


@functools.lru_cache(maxsize=8)
def _secret_at(path: Path) -> bytes:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x") as handle:  # the first of two racing servers writes it
                handle.write(secrets.token_hex(32))
        except FileExistsError:
            pass
        path.chmod(0o600)
    return path.read_bytes().strip()


def set_visitor_source(source: Callable[[], str | None] | None) -> None:
    """Who is asking, for a server that serves several visitors: a function returning the current
    visitor's key (or None for the server's own workspace). The UI installs one that reads the
    request being served; nothing in core knows where it comes from."""
    global _visitor_source
    _visitor_source = source


@contextlib.contextmanager
def as_visitor(key: str | None) -> Iterator[Workspace]:
    """Run a block in `key`'s workspace (None: the server's own)."""
    token = _visitor.set(key or "")
    try:
        yield workspace()
    finally:
        _visitor.reset(token)


def current_visitor() -> str | None:
    """The key of the visitor being served, or None when this is the server's (or a single
    person's) own workspace."""
    chosen = _visitor.get()
    if chosen is not None:
        return chosen or None
    if _visitor_source is not None:
        key = _visitor_source()
        if key:
            return key
    return os.environ.get(VISITOR_ENV) or None


def visitor_root(key: str) -> Path:
    if not re.fullmatch(r"[a-z0-9_.-]+", key or "") or key.startswith("."):
        raise PathOutsideWorkspace(f"{key!r} is not a visitor's workspace name")
    return server_root() / VISITORS / key


def workspace() -> Workspace:
    """The workspace of whoever is being served: a visitor's own, or the server's."""
    key = current_visitor()
    if not key:
        return Workspace(server_root()).ensure()
    root = visitor_root(key)
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
    models = root / "models"
    if not models.exists() and not models.is_symlink():
        shared = Workspace(server_root()).ensure().models
        models.symlink_to(shared, target_is_directory=True)  # converted models are shared, read only
    return Workspace(root).ensure()


def all_workspaces() -> list[tuple[str | None, Workspace]]:
    """(visitor key or None, workspace) for the server's own and every visitor's: the training
    slot and its queue turns are shared by all of them."""
    found: list[tuple[str | None, Workspace]] = [(None, Workspace(server_root()).ensure())]
    folder = server_root() / VISITORS
    if folder.is_dir():
        found += [(path.name, Workspace(path)) for path in sorted(folder.iterdir())
                  if path.is_dir() and not path.name.startswith(".") and (path / "runs").is_dir()]
    return found


def owner_of(path: str | os.PathLike) -> str | None:
    """The visitor key whose workspace holds `path` (None: the server's own)."""
    resolved, visitors = Path(path).resolve(), server_root() / VISITORS
    if visitors in resolved.parents:
        return resolved.relative_to(visitors).parts[0]
    return None


class PathOutsideWorkspace(StudioError, ValueError):
    """A path a visitor sent that resolves outside the folders this studio may read."""


def inside(path: str | os.PathLike, *roots: Path) -> Path:
    """Resolve `path` and make sure it lies under one of `roots` (default: the workspace and
    the bundled assets/configs). Relative paths are taken from the first root."""
    here = workspace()
    allowed = [Path(r).resolve() for r in roots] or [here.root, here.models.resolve(), ASSETS, CONFIGS]
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
