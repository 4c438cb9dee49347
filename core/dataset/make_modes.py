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
split before its last sentence: the reasoning, then the conclusion; a one-sentence text at its
last clause break (`single_sentence` in the config). Curation drops exact copies and near
duplicates of an earlier record (`near_duplicates`), each with its reason; the summary gives each
mode's share against its target (`mode_shares`). Contamination in the final file fails the build,
naming the rows. This module knows nothing about the UI.
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
from core.dataset.checker import NEAR_THRESHOLD
from core.dataset.contamination import load_config, normalize_table
from core.dataset.make_qa import MakeError
from core.errors import BadInput
from core.workspace import ASSETS, write_json_atomic

DEFAULT_CONFIG = ASSETS / "modes_make.yaml"
STAGE_FILES = ("curated.jsonl", "formatted.jsonl", "schema.jsonl", "final.jsonl")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


SINGLE_SENTENCE = ("clause", "drop")  # how a one-sentence `text` becomes the two parts (see modes_make.yaml)


@dataclass
class ModesConfig:
    types: dict[str, str]
    tags: dict[str, list[str]]
    prompts: dict[str, str]
    systems: dict[str, str]
    fillers: list[str]
    source: str
    single_sentence: str = "clause"
    near_threshold: float = NEAR_THRESHOLD  # records at least this alike are dropped at curation (1: exact copies only)
    shares: dict[str, float] | None = None  # each mode's target share of the samples (default: equal)

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
    single = data.get("single_sentence", "clause")
    if single not in SINGLE_SENTENCE:
        raise MakeError(f"{path}: single_sentence: {single!r}: use one of {', '.join(SINGLE_SENTENCE)}")
    near = data.get("near_duplicates", NEAR_THRESHOLD)
    if isinstance(near, bool) or not isinstance(near, (int, float)) or not 0 < near <= 1:
        raise MakeError(f"{path}: near_duplicates: {near!r}: a similarity above 0 and at most 1 (1 drops exact copies only)")
    shares = data.get("mode_shares")
    if shares is not None:
        if not isinstance(shares, dict) or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in shares.values()):
            raise MakeError(f"{path}: mode_shares must map each mode to a share between 0 and 1, e.g. dual: 0.4")
        unknown = [mode for mode in shares if mode not in tags]
        if unknown:
            raise MakeError(f"{path}: mode_shares: {', '.join(map(str, unknown))} is not a mode (known: {', '.join(tags)})")
    return ModesConfig({str(k): str(v) for k, v in types.items()}, tags, dict(data.get("prompts") or {}),
                       dict(data.get("systems") or {}), [f.strip() for f in fillers if f.strip()], str(path), single,
                       float(near), {str(k): float(v) for k, v in shares.items()} if shares else None)


class RecordError(BadInput):
    pass


_CLAUSE_BREAK = re.compile(r"[,;:]\s+|\s+[—–-]\s+|\s+(?=(?:but|so|because|although|though|yet|while|and then)\s)", re.I)


def split_sentence(sentence: str) -> tuple[str, str] | None:
    """One sentence as two parts, at its last clause break (a comma, semicolon, colon or dash, or
    before but / so / because / although / though / yet / while / and then) that leaves three words
    or more on each side; None when it has no such break."""
    for found in reversed(list(_CLAUSE_BREAK.finditer(sentence))):
        first, second = sentence[:found.start()].strip(), sentence[found.end():].strip()
        if len(first.split()) >= 3 and len(second.split()) >= 3:
            return (first if first[-1:] in ".!?…" else first + "…"), second[:1].upper() + second[1:]
    return None


def record_parts(record: dict, single_sentence: str = "clause") -> tuple[str | None, str, str]:
    """(the record's own prompt, first part, second part) from any documented shape.
    `single_sentence`: how a one-sentence `text` is split ("clause", or "drop" it)."""
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
        if len(sentences) >= 2:
            pair = (" ".join(sentences[:-1]), sentences[-1])
        else:
            split = split_sentence(sentences[0]) if single_sentence == "clause" else None
            if split is None:
                raise RecordError("one sentence without a clause break to split it at (single_sentence: "
                                  f"{single_sentence}); write it as two sentences, or give the record as input/output")
            pair = split
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
    summary["dropped"] = dropped
    if curated:
        report = checks.check(out / STAGE_FILES[3], "modes", mode_tags=cfg.tags, workers=None)
        summary["check"] = {"ok": report.ok, "problems": report.problems, "counts": report.counts,
                            "contamination": report.contamination[:200], "bad_rows": report.bad_rows[:50],
                            "metrics": report.metrics, "warnings": report.warnings()}
    else:  # nothing to check: the build made nothing, and says why in the dropped rows
        summary["check"] = {"ok": False, "problems": 0, "counts": {}, "contamination": [], "bad_rows": [], "metrics": {},
                            "warnings": ["no record was left to build: see why each was dropped"]}
    timings["check"] = time.perf_counter() - check_started
    summary["ok"] = summary["check"]["ok"]
    summary["mode_shares"] = mode_shares(summary["stages"]["curated"]["modes"], cfg, only_mode)
    summary["schema"] = schema.describe() if schema is not None else None
    summary["seconds"] = {k: round(v, 3) for k, v in timings.items()} | {"total": round(time.perf_counter() - started, 3)}
    write_json_atomic(out / "run-summary.json", summary)
    return summary


SHARE_TOLERANCE = 0.10  # a mode's share may miss its target by this much (10 points) and still be on target


def mode_shares(counts: dict[str, int], cfg: ModesConfig, only_mode: str | None = None) -> list[dict]:
    """Each mode's share of the built samples against its target (mode_shares in the config, else
    an equal share of the modes the type map builds), with `on target` or `off target`."""
    modes = [only_mode] if only_mode else list(dict.fromkeys(cfg.types.values()))
    targets = cfg.shares or {mode: 1 / len(modes) for mode in modes}
    total = sum(counts.values()) or 1
    rows = []
    for mode in list(dict.fromkeys([*modes, *counts])):
        share, target = counts.get(mode, 0) / total, (1.0 if only_mode else targets.get(mode, 0.0))
        rows.append({"mode": mode, "count": counts.get(mode, 0), "share": round(share, 4), "target": round(target, 4),
                     "status": "on target" if abs(share - target) <= SHARE_TOLERANCE else "off target"})
    return rows


def _curate(records: Path, target: Path, cfg: ModesConfig, only_mode, max_count, summary) -> tuple[list[dict], dict]:
    pattern = cfg.filler_pattern()
    lowered = tuple(f.lower() for f in cfg.fillers)
    kept: list[dict] = []
    reasons: Counter = Counter()
    listed: list[dict] = []
    removed_total = rows = 0
    with records.open(encoding="utf-8") as handle:
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
                prompt, first, second = record_parts(record, cfg.single_sentence)
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
    kept, repeats = _without_repeats(kept, cfg.near_threshold)
    for item, reason in repeats:
        reasons[reason.split(" of line")[0]] += 1
        if len(listed) < 200:
            listed.append({"line": item["line"], "reason": reason})
    listed.sort(key=lambda row: row["line"])
    with target.open("w", encoding="utf-8") as sink:
        sink.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in kept)
    summary["stages"]["curated"] = {"file": str(target), "rows_in": rows, "rows_out": len(kept),
                                    "filler_removed": removed_total, "repeats_dropped": len(repeats),
                                    "modes": dict(Counter(item["mode"] for item in kept))}
    return kept, {"count": sum(reasons.values()), "by_reason": dict(reasons), "rows": listed}


def _without_repeats(items: list[dict], threshold: float) -> tuple[list[dict], list[tuple[dict, str]]]:
    """The curated items without exact copies and near duplicates (MinHash, core.dataset.near_dups)
    of an earlier one, and each one dropped with its reason."""
    from core.dataset import near_dups  # numpy: loaded when a build runs

    dropped: dict[int, str] = {}
    seen: dict[tuple, int] = {}
    for index, item in enumerate(items):
        key = (item["mode"], " ".join(item["first"].lower().split()), " ".join(item["second"].lower().split()))
        if key in seen:
            dropped[index] = f"exact duplicate of line {items[seen[key]]['line']}"
        else:
            seen[key] = index
    if threshold < 1:
        signer = near_dups.Signer()
        for index, item in enumerate(items):
            signer.add("" if index in dropped else f"{item['first']}\n{item['second']}")
        for group in near_dups.clusters(signer.result(), threshold):
            first = group.rows[0]  # the earliest record of each group stays
            for index in group.rows[1:]:
                if items[index]["mode"] == items[first]["mode"]:
                    dropped[index] = f"near duplicate of line {items[first]['line']} (at least {group.similarity:.0%} alike)"
    return ([item for index, item in enumerate(items) if index not in dropped],
            [(items[index], reason) for index, reason in sorted(dropped.items())])


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
