"""What an export made, as files a person can download from the browser: the GGUF and its
Modelfile as they are, and the merged model folder as one zip when it is small enough to move
through a browser (stored, not compressed: safetensors weights hardly compress, and storing is as
fast as copying). The zip is written beside the folder, atomically, and reused while the folder
is unchanged. Knows nothing about widgets; core.export.pipeline's summary says where things are."""

from __future__ import annotations

import zipfile
from pathlib import Path

from core.export.pipeline import folder_size, human_size
from core.workspace import atomic_path

ZIP_LIMIT = 2 * 1024**3  # a merged model above this is pointed at, not zipped (a browser download of it is impractical)


def downloads(summary: dict, *, zip_limit: int = ZIP_LIMIT) -> tuple[list[Path], list[str]]:
    """(files to offer, notes about what is not offered and where it is instead)."""
    steps = (summary or {}).get("steps", {})
    files: list[Path] = []
    notes: list[str] = []
    gguf = _done(steps, "gguf")
    if gguf is not None and gguf.is_file():
        files.append(gguf)
        if (gguf.parent / "Modelfile").is_file():
            files.append(gguf.parent / "Modelfile")
    merged = _done(steps, "merge")
    if merged is not None and merged.is_dir():
        size = folder_size(merged)
        if size <= zip_limit:
            files.append(zip_folder(merged))
        else:
            notes.append(f"The merged model ({human_size(size)}) is too large to download through the browser; "
                         f"it is in the workspace at {merged}.")
    return files, notes


def _done(steps: dict, step: str) -> Path | None:
    entry = steps.get(step) or {}
    return Path(entry["path"]) if entry.get("state") == "done" and entry.get("path") else None


def zip_folder(folder: Path) -> Path:
    """`<folder>.zip` holding the folder's files under the folder's name; made again only when a
    file in the folder is newer than the zip."""
    folder = Path(folder)
    target = folder.with_name(f"{folder.name}.zip")
    members = sorted(p for p in folder.rglob("*") if p.is_file())
    newest = max((p.stat().st_mtime for p in members), default=0.0)
    if target.is_file() and target.stat().st_mtime >= newest:
        return target
    with atomic_path(target) as partial, zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
        for member in members:
            archive.write(member, Path(folder.name) / member.relative_to(folder))
    return target
