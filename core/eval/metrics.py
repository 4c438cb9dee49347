"""Evaluation: run a prompt set through the base model and tuned sides, score and tabulate.

A prompt set is JSONL, one prompt a line: `prompt` (or `messages`), optional `id`, `category`,
`keywords` (expected in the answer; "a|b" accepts either), `should_refuse` (true/false) and
`context` (retrieved text, put before the question). A broken line is reported with its line
number and skipped; the rest runs. Metrics come from the answer outside any <think> block:
keyword coverage, refusal vs expected, length, latency, and pattern rates from a YAML pattern
list (assets/patterns.yaml by default). A person's verdict from the Chat tab is kept too: the
preferred answer and the other one, appended as a preference example. This module knows nothing
about how answers are generated beyond `ChatEngine.generate_batch`, and nothing about gradio.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from core.chat.batching import plan_batches
from core.chat.engine import BASE, TUNED, ChatEngine, Sampling, split_think
from core.chat.tuned import tuned_source
from core.dataset.reader import BadRow
from core.workspace import ASSETS, workspace, write_atomic

PROMPT_SETS = ASSETS / "prompts"
DEFAULT_PATTERNS = ASSETS / "patterns.yaml"
PREFERENCES_FILE = "chat_preferences.jsonl"
CONTEXT_TEMPLATE = "Answer using only the context below. If it does not contain the answer, say so.\n\nContext:\n{context}\n\nQuestion: {prompt}"


@dataclass
class Prompt:
    id: str
    messages: list[dict]
    category: str = ""
    keywords: list[str] = field(default_factory=list)
    should_refuse: bool | None = None
    line: int | None = None

    @property
    def text(self) -> str:
        return self.messages[-1]["content"]


@dataclass
class Pattern:
    name: str
    label: str
    regexes: list[re.Pattern]
    prefer: str = "fewer"  # fewer | more: which direction is an improvement

    def matches(self, text: str) -> bool:
        return any(regex.search(text) for regex in self.regexes)


@dataclass
class PatternSet:
    patterns: list[Pattern]
    refusal: Pattern


# ---- loading -------------------------------------------------------------------------------

def bundled_prompt_sets() -> list[Path]:
    return sorted(PROMPT_SETS.glob("*.jsonl"))


def load_prompt_set(path: str | Path) -> tuple[list[Prompt], list[BadRow]]:
    """Prompts from a JSONL file, and the lines that could not be used (with line numbers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such prompt set (a JSONL file, one prompt a line)")
    prompts, bad, seen = [], [], set()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                prompt = _prompt_from(json.loads(raw.strip()), number)
            except json.JSONDecodeError as error:
                bad.append(BadRow(str(path), number, f"not valid JSON ({error.msg} at column {error.colno})"))
                continue
            except ValueError as error:
                bad.append(BadRow(str(path), number, str(error)))
                continue
            if prompt.id in seen:
                prompt.id = f"{prompt.id}-line{number}"
            seen.add(prompt.id)
            prompts.append(prompt)
    return prompts, bad


def _prompt_from(row: object, number: int) -> Prompt:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    messages = row.get("messages")
    if messages is None:
        text = row.get("prompt", row.get("question"))
        if not isinstance(text, str) or not text.strip():
            raise ValueError("no 'prompt' (a non-empty string) or 'messages' (a list of chat turns)")
        context = row.get("context")
        if isinstance(context, list):
            context = "\n\n".join(str(part) for part in context)
        messages = [{"role": "user", "content": CONTEXT_TEMPLATE.format(context=context, prompt=text) if context else text}]
    elif not (isinstance(messages, list) and messages and all(isinstance(m, dict) and "role" in m and "content" in m for m in messages)):
        raise ValueError("'messages' must be a non-empty list of {role, content} objects")
    elif messages[-1]["role"] != "user":
        raise ValueError(f"'messages' must end with a user turn (it ends with {messages[-1]['role']!r})")
    keywords = row.get("keywords", row.get("expected_keywords", []))
    if isinstance(keywords, str):
        keywords = [keywords]
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise ValueError("'keywords' must be a list of strings")
    refuse = row.get("should_refuse")
    if refuse is not None and not isinstance(refuse, bool):
        raise ValueError(f"'should_refuse' must be true or false, got {refuse!r}")
    return Prompt(str(row.get("id") or f"line{number}"), messages, str(row.get("category") or ""), keywords, refuse, number)


def load_patterns(path: str | Path | None = None) -> PatternSet:
    """The pattern list: `refusal:` regexes and `patterns:` entries (name, label, regex, prefer)."""
    import yaml

    path = Path(path or DEFAULT_PATTERNS)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        refusal = Pattern("refusal", "Refusal", _compile(data.get("refusal", []), f"{path}: refusal"))
        patterns = [Pattern(str(entry["name"]), str(entry.get("label", entry["name"])),
                            _compile(entry.get("regex", []), f"{path}: patterns.{entry['name']}"),
                            str(entry.get("prefer", "fewer")))
                    for entry in data.get("patterns", [])]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: each entry under 'patterns' needs a name and a regex list ({error})") from error
    return PatternSet(patterns, refusal)


def _compile(regexes, where: str) -> list[re.Pattern]:
    regexes = [regexes] if isinstance(regexes, str) else list(regexes)
    compiled = []
    for text in regexes:
        try:
            compiled.append(re.compile(text, re.IGNORECASE | re.MULTILINE))
        except re.error as error:
            raise ValueError(f"{where}: bad regular expression {text!r} ({error})") from error
    return compiled


# ---- scoring -------------------------------------------------------------------------------

def keyword_coverage(answer: str, keywords: list[str]) -> float | None:
    """Share of expected keywords found (case-insensitive; "a|b" accepts either); None without any."""
    if not keywords:
        return None
    lowered = answer.lower()
    found = sum(1 for keyword in keywords if any(alt.strip().lower() in lowered for alt in keyword.split("|")))
    return found / len(keywords)


def score(prompt: Prompt, side: str, reply, patterns: PatternSet) -> dict:
    """One result row: the answer, its timing and every metric."""
    split = split_think(reply.text)
    answer = split.answer
    refused = patterns.refusal.matches(answer)
    row = {
        "prompt_id": prompt.id, "category": prompt.category, "side": side, "prompt": prompt.text,
        "answer": reply.text, "error": reply.error or "",
        "words": len(answer.split()), "think_chars": len(split.think or ""),
        "tokens": reply.tokens, "latency_s": round(reply.seconds, 3),
        "ttft_s": round(reply.ttft_s, 3) if reply.ttft_s is not None else None,
        "tokens_per_s": round(reply.tokens_per_s, 2),
        "keyword_coverage": keyword_coverage(answer, prompt.keywords),
        "refused": refused, "should_refuse": prompt.should_refuse,
        "refusal_correct": None if prompt.should_refuse is None else refused == prompt.should_refuse,
    }
    for pattern in patterns.patterns:
        row[pattern.name] = pattern.matches(answer)
    return row


# ---- running -------------------------------------------------------------------------------

@dataclass
class Progress:
    side: str
    done: int  # results finished so far, all sides together
    total: int
    row: dict


def run_prompt_set(engine: ChatEngine, prompts: list[Prompt], sampling: Sampling, sides: dict[str, str | None],
                   patterns: PatternSet | None = None) -> Iterator[Progress]:
    """Every prompt through every side. The sides that share the base model (the base and
    adapters) answer in the same left-padded batches, each batch holding every side's answers to
    a few prompts of similar length, so latencies compare like for like; a full-model side answers
    in batches of its own while it alone is in memory. `sides` maps a side name to the tuned path
    it needs (None for the base); results are labelled by side name."""
    patterns = patterns or load_patterns()
    total, done = len(prompts) * len(sides), 0
    shared, full_models = {}, {}
    for label, path in sides.items():
        if path is None or tuned_source(path).kind == "adapter":
            shared[label] = engine.attach(path) if path is not None else BASE
        else:
            full_models[label] = path
    passes = [shared] if shared else []
    for labels in passes + [{label: path} for label, path in full_models.items()]:
        if labels is not shared:
            labels = {label: engine.attach(path) for label, path in labels.items()}
        for label, index, reply in _answers(engine, prompts, sampling, labels):
            done += 1
            yield Progress(label, done, total, score(prompts[index], label, reply, patterns))
        if labels is not shared:
            for side in labels.values():
                engine.detach(side)


def _answers(engine: ChatEngine, prompts: list[Prompt], sampling: Sampling, labels: dict[str, str]):
    """(label, prompt index, reply) for every prompt through the engine sides named in `labels`."""
    lengths = [len(engine.prompt_ids(prompt.messages, sampling)) for prompt in prompts]
    batches = plan_batches(lengths, rows_per_item=len(labels), max_new_tokens=sampling.max_new_tokens,
                           **engine.batch_budget())
    for batch in batches:
        rows = [(side, prompts[index].messages) for side in labels.values() for index in batch]
        replies = iter(engine.generate_batch(rows, sampling))
        for label in labels:
            for index in batch:
                yield label, index, next(replies)


def sides_for(tuned: str | Path | None, *, all_checkpoints: bool = False) -> dict[str, str | None]:
    """The sides of an A/B run: the base, plus the tuned path, or with `all_checkpoints` and a
    run folder every result of that run (best, final, each checkpoint) to pick the best one."""
    if not tuned:
        return {BASE: None}
    folder = Path(tuned).expanduser()
    if all_checkpoints:
        from core.train import runs

        artifacts = runs.model_artifacts(folder)
        if not artifacts:
            raise ValueError(f"{folder}: no best/, adapter/, model/ or checkpoints/checkpoint-N to compare "
                             "(--all-checkpoints needs a run folder)")
        return {BASE: None, **{label: str(path) for label, path in artifacts}}
    return {BASE: None, TUNED: str(folder)}


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(sum(values) / len(values), 3) if values else None


def aggregate(rows: list[dict], patterns: PatternSet | None = None) -> list[dict]:
    """One row per side, in the order sides first appear: means and rates over its answers."""
    patterns = patterns or load_patterns()
    table = []
    for side in dict.fromkeys(row["side"] for row in rows):
        mine = [row for row in rows if row["side"] == side]
        expected_refusal = [row for row in mine if row["should_refuse"] is True]
        expected_answer = [row for row in mine if row["should_refuse"] is False]
        summary = {
            "side": side, "prompts": len(mine),
            "keyword_coverage": _mean(row["keyword_coverage"] for row in mine),
            "refusal_rate": _mean(row["refused"] for row in mine),
            "refusal_accuracy": _mean(row["refusal_correct"] for row in mine),
            "refused_when_expected": _mean(row["refused"] for row in expected_refusal),
            "refused_when_not_expected": _mean(row["refused"] for row in expected_answer),
            "avg_words": _mean(row["words"] for row in mine),
            "avg_latency_s": _mean(row["latency_s"] for row in mine),
            "avg_ttft_s": _mean(row["ttft_s"] for row in mine),
            "avg_tokens_per_s": _mean(row["tokens_per_s"] for row in mine),
            "errors": sum(1 for row in mine if row["error"]),
        }
        for pattern in patterns.patterns:
            summary[f"{pattern.name}_rate"] = _mean(row.get(pattern.name) for row in mine)
        table.append(summary)
    return table


def per_prompt_table(rows: list[dict], patterns: PatternSet | None = None) -> list[dict]:
    """One row per prompt: every side's answer beside a short note (latency, keywords found,
    flagged patterns), so a reader compares answers across, not down."""
    patterns = patterns or load_patterns()
    table: dict[str, dict] = {}
    for row in rows:
        entry = table.setdefault(row["prompt_id"], {"prompt_id": row["prompt_id"], "category": row["category"], "prompt": row["prompt"]})
        flags = [p.name for p in patterns.patterns if row.get(p.name)] + (["refused"] if row["refused"] else [])
        notes = [f"{row['latency_s']:.1f} s"]
        if row["keyword_coverage"] is not None:
            notes.append(f"keywords {row['keyword_coverage']:.0%}")
        entry[f"{row['side']}: answer"] = row["answer"]
        entry[f"{row['side']}: notes"] = " · ".join(notes + flags + ([f"error: {row['error']}"] if row["error"] else []))
    return list(table.values())


# ---- export --------------------------------------------------------------------------------

def export(rows: list[dict], path: str | Path) -> Path:
    """Write result rows as CSV (by extension .csv) or JSONL (anything else)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        import io

        buffer = io.StringIO()
        columns = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(path, buffer.getvalue())
    else:
        write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def run_folder_of(path: str | Path | None) -> Path | None:
    """The run folder (STUDIO_HOME/runs/<id>) a tuned path lives in, or None for anything else."""
    if not path:
        return None
    runs_root = workspace().runs.resolve()
    try:
        relative = Path(path).expanduser().resolve().relative_to(runs_root)
    except ValueError:
        return None
    return runs_root / relative.parts[0] if relative.parts else None


def save_results(rows: list[dict], tuned: str | Path | None = None) -> list[Path]:
    """Keep an A/B run: exports/ab-<time>.csv and .jsonl for download, and, when the tuned side
    is a run's adapter or checkpoint, runs/<id>/ab/ab-<time>.jsonl, which the run's model card
    reports on export."""
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S")
    saved = [export(rows, workspace().exports / f"ab-{stamp}{suffix}") for suffix in (".csv", ".jsonl")]
    run = run_folder_of(tuned)
    if run is not None and run.is_dir():
        saved.append(export(rows, run / "ab" / f"ab-{stamp}.jsonl"))
    return saved


def format_aggregate(table: list[dict]) -> str:
    """The aggregate as plain text for a terminal: one line per metric, one column per side."""
    if not table:
        return "(no results)"
    metrics = [key for key in table[0] if key != "side"]
    header = ["metric"] + [str(row["side"]) for row in table]
    lines = [header] + [[metric] + [_cell(row.get(metric)) for row in table] for metric in metrics]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in lines)


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


# ---- human preferences from the Chat tab ---------------------------------------------------

def save_preference(prompt: list[dict], chosen: str, rejected: str, path: Path | None = None) -> Path:
    """Append one conversational preference example (the Dataset tab opens it as preference data)."""
    if not chosen.strip() or not rejected.strip():
        raise ValueError("both panes need an answer before the exchange can be saved as a preference")
    if chosen.strip() == rejected.strip():
        raise ValueError("both answers are identical: a preference pair needs two different answers")
    path = path or workspace().datasets / PREFERENCES_FILE
    record = {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
              "rejected": [{"role": "assistant", "content": rejected}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:  # one write per line: concurrent appends don't interleave
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
