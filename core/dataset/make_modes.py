"""Mode-tagged samples from raw records: a staged build, each stage writing its own file.

A raw record is one JSON object a line with a `type` and either a single `text` or an exchange
(`input`/`output`, `user`/`assistant`, or `messages` with a user turn then an assistant turn);
an optional `prompt` and `id`. The config (assets/modes_make.yaml) maps each type to a mode,
lists filler phrases to remove, gives the user prompt per type and the system line per mode,
and names the mode -> tags table (assets/modes.yaml, the contamination check's own table).

Stages, in OUT/:
    curated.jsonl    mode assigned, filler removed, the two parts each mode's tags will wrap
    formatted.jsonl  system / user / assistant samples, the reply wrapped in its mode's two tags
    schema.jsonl     each sample as the model family's training text (chat template or a schema file)
    final.jsonl      messages + text + mode: what training reads; checked by core.dataset.checks
    run-summary.json what each stage did, the dropped rows with reasons, the check's metrics
Exchange parts: the first tag wraps the input side, the second the output side. A single text is
split before its last sentence: the reasoning, then the conclusion. Contamination in the final
file fails the build, naming the rows. This module knows nothing about the UI.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.dataset import checks
from core.dataset.contamination import load_config, normalize_table
from core.dataset.make_qa import MakeError
from core.errors import BadInput
from core.workspace import ASSETS, write_json_atomic

DEFAULT_CONFIG = ASSETS / "modes_make.yaml"
STAGE_FILES = ("curated.jsonl", "formatted.jsonl", "schema.jsonl", "final.jsonl")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass
class ModesConfig:
    types: dict[str, str]
    tags: dict[str, list[str]]
    prompts: dict[str, str]
    systems: dict[str, str]
    fillers: list[str]
    source: str

    def filler_pattern(self) -> re.Pattern | None:
        if not self.fillers:
            return None
        words = "|".join(re.escape(f) for f in sorted(self.fillers, key=len, reverse=True))
        return re.compile(rf"(?<!\w)(?:{words})(?!\w)[\s,;:!.\-]*", re.IGNORECASE)


def load_modes_config(path: str | Path | None = None) -> ModesConfig:
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise MakeError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise MakeError(f"{path}: not valid YAML ({error})") from None
    types = data.get("types")
    if not isinstance(types, dict) or not types:
        raise MakeError(f"{path}: 'types' must map each record type to a mode, e.g. reflection: dual")
    tags_entry = data.get("tags", "modes.yaml")
    try:
        if isinstance(tags_entry, dict):
            tags = normalize_table(tags_entry, f"{path}: tags")
        else:  # a modes file, relative to this config (or the bundled assets)
            tags_file = path.parent / str(tags_entry)
            tags = load_config(tags_file if tags_file.is_file() else ASSETS / str(tags_entry))["modes"]
    except (ValueError, FileNotFoundError) as error:
        raise MakeError(f"{path}: tags: {error}") from None
    for kind, mode in types.items():
        if mode not in tags:
            raise MakeError(f"{path}: types.{kind}: mode '{mode}' has no tags (known: {', '.join(tags)})")
    for mode, mode_tags in tags.items():
        if len(mode_tags) != 2:
            raise MakeError(f"{path}: mode {mode}: a build wraps two parts, so it needs two tags, got {mode_tags}")
    fillers = data.get("filler_phrases", [])
    if not isinstance(fillers, list) or not all(isinstance(f, str) for f in fillers):
        raise MakeError(f"{path}: filler_phrases must be a list of phrases")
    return ModesConfig({str(k): str(v) for k, v in types.items()}, tags, dict(data.get("prompts") or {}),
                       dict(data.get("systems") or {}), [f.strip() for f in fillers if f.strip()], str(path))


class RecordError(BadInput):
    pass


def record_parts(record: dict) -> tuple[str | None, str, str]:
    """(the record's own prompt, first part, second part) from any documented shape."""
    if "messages" in record:
        turns = record["messages"]
        if not isinstance(turns, list):
            raise RecordError("'messages' must be a list of {role, content} turns")
        user = next((t.get("content") for t in turns if isinstance(t, dict) and t.get("role") == "user"), None)
        reply = next((t.get("content") for t in turns if isinstance(t, dict) and t.get("role") == "assistant"), None)
        pair = (user, reply)
    elif "input" in record or "output" in record:
        pair = (record.get("input"), record.get("output"))
    elif "user" in record or "assistant" in record:
        pair = (record.get("user"), record.get("assistant"))
    elif "text" in record:
        text = record["text"]
        if not isinstance(text, str) or not text.strip():
            raise RecordError("'text' is empty")
        sentences = _SENTENCE_END.split(text.strip())
        if len(sentences) < 2:
            raise RecordError("a single 'text' needs two sentences or more (the last becomes the second part); "
                              "or give the record as input/output")
        pair = (" ".join(sentences[:-1]), sentences[-1])
    else:
        raise RecordError("no content: give 'text', 'input'/'output', 'user'/'assistant' or 'messages'")
    if not all(isinstance(p, str) and p.strip() for p in pair):
        raise RecordError("both sides of the exchange must be non-empty text")
    prompt = record.get("prompt")
    return (prompt if isinstance(prompt, str) and prompt.strip() else None), pair[0].strip(), pair[1].strip()


def _clean(text: str, pattern: re.Pattern | None, fillers: tuple[str, ...] = ()) -> tuple[str, int]:
    if pattern is None:
        return text, 0
    if fillers:  # most texts hold no filler: a substring test is ~10x cheaper than the regex
        low = text.lower()
        if not any(f in low for f in fillers):
            return text, 0
    cleaned, removed = pattern.subn("", text)
    if not removed:
        return text, 0
    cleaned = " ".join(cleaned.split())
    return (cleaned[:1].upper() + cleaned[1:]) if cleaned else cleaned, removed


def build_modes(records: str | Path, out: str | Path, *, config: str | Path | None = None, only_mode: str | None = None,
                max_count: int | None = None, schema=None) -> dict:
    """Run every stage; returns the run summary (also written to OUT/run-summary.json).
    `schema` is a core.dataset.make_schema schema (default: none, `text` is left out)."""
    started = time.perf_counter()
    cfg = load_modes_config(config)
    records, out = Path(records), Path(out)
    if not records.is_file():
        raise MakeError(f"{records}: records file not found")
    if only_mode and only_mode not in cfg.tags:
        raise MakeError(f"--only-mode {only_mode}: not a mode of {cfg.source} (known: {', '.join(cfg.tags)})")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    summary = {"records": str(records), "out": str(out), "config": cfg.source, "only_mode": only_mode,
               "max_count": max_count, "stages": {}}
    curated, dropped = _curate(records, out / STAGE_FILES[0], cfg, only_mode, max_count, summary)
    timings["curated"] = time.perf_counter() - started
    _format_and_apply(curated, out, cfg, schema, summary)
    timings["formatted+schema+final"] = time.perf_counter() - started - timings["curated"]
    check_started = time.perf_counter()
    report = checks.check(out / STAGE_FILES[3], "modes", mode_tags=cfg.tags, workers=None)
    timings["check"] = time.perf_counter() - check_started
    summary["dropped"] = dropped
    summary["check"] = {"ok": report.ok, "problems": report.problems, "counts": report.counts,
                        "contamination": report.contamination[:200], "bad_rows": report.bad_rows[:50],
                        "metrics": report.metrics,
                        "warnings": report.warnings()}
    summary["ok"] = report.ok
    summary["schema"] = schema.describe() if schema is not None else None
    summary["seconds"] = {k: round(v, 3) for k, v in timings.items()} | {"total": round(time.perf_counter() - started, 3)}
    write_json_atomic(out / "run-summary.json", summary)
    return summary


def _curate(records: Path, target: Path, cfg: ModesConfig, only_mode, max_count, summary) -> tuple[list[dict], dict]:
    pattern = cfg.filler_pattern()
    lowered = tuple(f.lower() for f in cfg.fillers)
    kept: list[dict] = []
    reasons: Counter = Counter()
    listed: list[dict] = []
    removed_total = rows = 0
    with records.open(encoding="utf-8") as handle, target.open("w", encoding="utf-8") as sink:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            rows += 1
            reason = None
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise RecordError("not a JSON object")
                kind = record.get("type")
                if kind not in cfg.types:
                    raise RecordError(f"type {kind!r} is not in the type -> mode map ({', '.join(cfg.types)})")
                mode = cfg.types[kind]
                if only_mode and mode != only_mode:
                    continue
                if max_count is not None and len(kept) >= max_count:
                    break
                prompt, first, second = record_parts(record)
            except (json.JSONDecodeError, RecordError) as error:
                reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
            if reason is None:
                first, n1 = _clean(first, pattern, lowered)
                second, n2 = _clean(second, pattern, lowered)
                removed_total += n1 + n2
                if not first or not second:
                    reason = "nothing left after removing filler phrases"
            if reason is not None:
                reasons[reason.split(" (")[0]] += 1
                if len(listed) < 200:
                    listed.append({"line": line_number, "reason": reason})
                continue
            item = {"id": str(record.get("id") or f"rec-{line_number}"), "type": kind, "mode": mode,
                    "prompt": prompt or cfg.prompts.get(kind) or f"Write a {kind.replace('_', ' ')}.",
                    "first": first, "second": second, "line": line_number}
            kept.append(item)
            sink.write(json.dumps(item, ensure_ascii=False) + "\n")
    summary["stages"]["curated"] = {"file": str(target), "rows_in": rows, "rows_out": len(kept),
                                    "filler_removed": removed_total,
                                    "modes": dict(Counter(item["mode"] for item in kept))}
    return kept, {"count": sum(reasons.values()), "by_reason": dict(reasons), "rows": listed}


def _format_and_apply(curated: list[dict], out: Path, cfg: ModesConfig, schema, summary) -> None:
    """formatted, schema-applied and final files in one pass over the curated rows."""
    paths = [out / name for name in STAGE_FILES[1:]]
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    wraps = {mode: (f"{a}{{}}</{a[1:]}\n{b}{{}}</{b[1:]}") for mode, (a, b) in cfg.tags.items()}
    with paths[0].open("w", encoding="utf-8") as formatted, paths[1].open("w", encoding="utf-8") as applied, \
            paths[2].open("w", encoding="utf-8") as final:
        for item in curated:
            mode = item["mode"]
            messages = [{"role": "system", "content": cfg.systems.get(mode, f"{mode.capitalize()} mode.")},
                        {"role": "user", "content": item["prompt"]},
                        {"role": "assistant", "content": wraps[mode].format(item["first"], item["second"])}]
            # Each piece is encoded once and the three rows are joined from the pieces: the JSON
            # encoder is most of this stage's time.
            head = f'{{"id": {dumps(item["id"])}, "mode": {dumps(mode)}, '
            body = f'"messages": {dumps(messages)}'
            text = schema.render(messages) if schema is not None else None
            encoded = dumps(text)
            formatted.write(head + body + "}\n")
            applied.write(f'{head}"text": {encoded}}}\n')
            final.write(head + body + (f', "text": {encoded}' if text is not None else "") + "}\n")
    for name, path in zip(("formatted", "schema", "final"), paths):
        summary["stages"][name] = {"file": str(path), "rows_out": len(curated)}
