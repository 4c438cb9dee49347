"""Running a Q&A plan: an append-only output file, a manifest beside it, and resume.

Layout for `--out made.jsonl`:
    made.jsonl                kept samples, one JSON object a line, appended and flushed one by one
    made.make/manifest.json   settings, the plan's key, progress (done / kept / given up, pairs/min,
                              ETA), state (running|stopped|completed|failed), pid, the last error
    made.make/rejected.log    one JSON object a line per invalid reply: slot, attempt, reason, raw text
    made.make/stop            present = please stop after the current pair (the UI's Stop button)
A run resumes by reading which slots the output already holds: the plan is the same for the same
documents and settings, so nothing is made twice and nothing kept is ever rewritten. Invalid
replies are retried alone; valid rows never wait on them. This module knows nothing about HTTP,
models or the UI; the backend is any object with `generate(messages, schema) -> Reply`.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from core.dataset import make_docs
from core.dataset.make_backends import (
    PAIR_SCHEMA,
    BackendUnavailable,
    BadReply,
    parse_reply,
)
from core.dataset.make_qa import (
    MakeError,
    QASettings,
    generation_messages,
    make_plan,
    sample_row,
    validate_pair,
)
from core.workspace import read_json, write_json_atomic


def sidecar(out: Path) -> Path:
    return out.parent / f"{out.stem}.make"


def read_manifest(out: str | Path) -> dict | None:
    return read_json(sidecar(Path(out)) / "manifest.json") or None


def request_stop(out: str | Path) -> None:
    folder = sidecar(Path(out))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stop").write_text("stop\n")


def kept_slots(out: Path) -> set[int]:
    """Slots the output already holds. A last line cut off by a crash is removed (it was never a
    whole row); every complete line stays as it is."""
    if not out.is_file():
        return set()
    with out.open("rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)
            data = data[: data.rfind(b"\n") + 1]
    slots = set()
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                slots.add(int(json.loads(line)["slot"]))
            except (ValueError, KeyError, TypeError):
                raise MakeError(f"{out}:{number}: not a row this studio made (no 'slot'); pick a new --out file") from None
    return slots


class _Progress:
    def __init__(self, total: int, done: int):
        self.total, self.start_done, self.started = total, done, time.monotonic()
        self.kept_now = 0

    def numbers(self, done: int) -> dict:
        minutes = max(time.monotonic() - self.started, 1e-9) / 60
        per_min = (done - self.start_done) / minutes
        rate = self.kept_now / minutes
        eta = (self.total - done) / per_min * 60 if per_min > 0 else None
        return {"pairs_per_min": round(rate, 2), "eta_s": round(eta, 1) if eta is not None else None,
                "elapsed_s": round(minutes * 60, 2)}


def run_qa(documents: str | Path, out: str | Path, settings: QASettings, backend, *, restart: bool = False,
           should_stop: Callable[[], bool] | None = None, on_progress: Callable[[dict], None] | None = None) -> dict:
    """Make (or resume making) the dataset; returns the final manifest. MakeError for bad input."""
    settings.check()
    out = Path(out)
    if out.suffix.lower() not in (".jsonl", ".ndjson"):
        raise MakeError(f"--out {out}: the output is JSON Lines; name it *.jsonl")
    docs = make_docs.load_documents(documents)
    chunks = make_docs.chunk_documents(docs, settings.chunk_size, settings.chunk_overlap)
    plan = make_plan(chunks, settings)
    folder = sidecar(out)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:  # one writer per output; the lock goes with the process
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MakeError(f"{out}: another generation is writing this file; stop it first or pick a new --out") from None
        return _run_locked(documents, out, folder, docs, chunks, plan, settings, backend, restart, should_stop, on_progress)


def _run_locked(documents, out, folder, docs, chunks, plan, settings, backend, restart, should_stop, on_progress):
    key = {"documents": make_docs.fingerprint(docs), **settings.plan_key()}
    old = read_manifest(out)
    if restart:
        out.unlink(missing_ok=True)
        (folder / "rejected.log").unlink(missing_ok=True)
        old = None
    elif out.exists() and old is None:
        raise MakeError(f"{out}: exists and was not made here (no {folder.name}/manifest.json); pick a new --out")
    if old and old.get("plan_key") != key:
        changed = sorted(k for k in key if old.get("plan_key", {}).get(k) != key[k])
        raise MakeError(f"{out} was made from other documents or settings ({', '.join(changed)} changed); resume with "
                        "the same ones, pick a new --out, or start over with --restart")
    (folder / "stop").unlink(missing_ok=True)
    kept = kept_slots(out)
    gave_up = set(old.get("gave_up", [])) if old else set()
    manifest = {
        "documents": str(documents), "out": str(out), "plan_key": key, "settings": asdict(settings),
        "backend": backend.describe(), "chunks": len(chunks), "document_titles": [d.title for d in docs][:200],
        "total": len(plan), "kept": len(kept), "gave_up": sorted(gave_up),
        "rejected": old.get("rejected", 0) if old else 0, "from_thinking": old.get("from_thinking", 0) if old else 0,
        "by_kind": _by_kind(plan, kept), "state": "running", "pid": os.getpid(), "error": None,
        "sessions": (old.get("sessions", 0) if old else 0) + 1, "started_at": time.time(),
    }
    progress = _Progress(len(plan), len(kept) + len(gave_up))
    stop = should_stop or (lambda: False)
    stop_file = folder / "stop"

    def publish(state: str | None = None) -> None:
        manifest.update(progress.numbers(manifest["kept"] + len(manifest["gave_up"])), updated_at=time.time(),
                        done=manifest["kept"] + len(manifest["gave_up"]))
        if state:
            manifest["state"] = state
        write_json_atomic(folder / "manifest.json", manifest)
        if on_progress:
            on_progress(manifest)

    publish()
    todo = [s for s in plan if s.index not in kept and s.index not in gave_up]
    try:
        with out.open("a", encoding="utf-8") as sink, (folder / "rejected.log").open("a", encoding="utf-8") as rejects:
            for slot in todo:
                if stop() or stop_file.exists():
                    publish("stopped")
                    return manifest
                row = _make_one(slot, chunks, settings, backend, rejects, manifest)
                if row is None:
                    manifest["gave_up"].append(slot.index)
                else:
                    sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                    sink.flush()  # a kill after this line loses nothing that was kept
                    manifest["kept"] += 1
                    manifest["by_kind"][slot.kind] += 1
                    progress.kept_now += 1
                manifest["backend"] = backend.describe()  # e.g. thinking turned off after a spent budget
                publish()
    except BackendUnavailable as error:
        manifest["error"] = str(error)
        publish("failed")
        raise MakeError(str(error)) from None
    except KeyboardInterrupt:
        publish("stopped")
        raise
    publish("completed")
    return manifest


def _by_kind(plan, kept: set[int]) -> dict[str, int]:
    counts = {"grounded": 0, "synthesis": 0, "refusal": 0}
    for slot in plan:
        if slot.index in kept:
            counts[slot.kind] += 1
    return counts


def _make_one(slot, chunks, settings: QASettings, backend, rejects, manifest: dict) -> dict | None:
    """One slot: up to 1 + retries tries; each invalid reply is logged with its reason."""
    messages = generation_messages(slot, chunks)
    for attempt in range(1 + settings.retries):
        raw = ""
        try:
            reply = backend.generate(messages, PAIR_SCHEMA)
            raw = reply.content or reply.thinking
            pair, where = parse_reply(reply, getattr(backend, "num_predict", None))
            problems = validate_pair(pair, slot, chunks)
        except BadReply as error:
            problems = [str(error)]
        if not problems:
            manifest["from_thinking"] += where == "thinking"
            return sample_row(slot, chunks, pair, settings)
        manifest["rejected"] += 1
        rejects.write(json.dumps({"slot": slot.index, "kind": slot.kind, "attempt": attempt + 1,
                                  "reasons": problems, "raw": raw[:2000]}, ensure_ascii=False) + "\n")
        rejects.flush()
    return None
