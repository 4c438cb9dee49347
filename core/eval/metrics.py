"""Metrics: pure scoring of one answer, and means over many. No model, no files but the pattern list.

Every metric reads the answer outside any <think> block (core.dataset.tags.split_think owns that
parsing): keyword coverage, refusal vs expected, source hit (lenient: case, punctuation, quotes),
pattern rates from a YAML pattern list (assets/patterns.yaml), and whether the answer is
*substantive*: an answer exists after the <think> block, it was not cut off by the token limit,
it is not a refusal where an answer was expected, and it has at least `min_words` words. An
answer whose <think> block used the whole token budget is counted on its own
(`cut_off_in_think`): it is the commonest way a tuned reasoning model gets worse. This module
knows nothing about how answers are generated, prompt files, or gradio.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from core.dataset.patterns import DEFAULT_PATTERNS, Pattern, PatternSet, load_patterns  # noqa: F401  (re-exported)
from core.dataset.tags import split_think
from core.eval.prompts import Prompt

OUTCOMES = ("substantive", "cut_off_in_think", "cut_off", "no_answer", "refused", "too_short", "error")


@dataclass(frozen=True)
class Metric:
    """One evaluation metric. `key` is the result row's field and the metric's one name
    everywhere: the aggregate (the mean of that field per side), the report's paired change,
    `studio eval --fail-on`, the charts and the Hub card. Adding a metric is a row here and its
    field in `score`."""

    key: str
    label: str
    unit: str  # "%" (a rate or share), "s", "/s" or "" (a count)
    prefer: str | None  # which direction is better: "more" | "fewer" | None
    in_report: bool = True  # a paired base-vs-tuned line in the evaluation report
    per_topic: bool = False  # also per topic and mode, and charted per topic
    headline: bool = False  # the verdict weighs it

    def show(self, value) -> str:
        if value is None:
            return "—"
        return {"%": f"{value:.0%}", "s": f"{value:.2f} s", "/s": f"{value:.1f}/s"}.get(self.unit, f"{value:.1f}")


METRICS = (
    Metric("keyword_coverage", "keyword coverage", "%", "more", per_topic=True, headline=True),
    Metric("substantive", "substantive rate", "%", "more", per_topic=True, headline=True),
    Metric("cut_off_in_think", "ran out of tokens inside <think>", "%", "fewer"),
    Metric("source_hit", "source hit rate", "%", "more", per_topic=True, headline=True),
    Metric("refused", "refused", "%", None, in_report=False),
    Metric("refusal_correct", "refused exactly when it should", "%", "more"),
    Metric("refused_when_refusal_expected", "refused, of the prompts it should refuse", "%", "more", in_report=False),
    Metric("refused_when_answer_expected", "refused where an answer was expected", "%", "fewer"),
    Metric("words", "words per answer", "", None),
    Metric("latency_s", "average latency", "s", "fewer"),
    Metric("ttft_s", "time to first token", "s", "fewer", in_report=False),
    Metric("tokens_per_s", "tokens per second", "/s", "more", in_report=False),
)


def metric_table(patterns: PatternSet | None = None) -> tuple[Metric, ...]:
    """METRICS and one rate per flagged pattern (core.dataset.patterns), in that order."""
    patterns = patterns or load_patterns()
    return METRICS + tuple(Metric(p.name, p.label, "%", p.prefer) for p in patterns.patterns)


def find_metric(key: str, patterns: PatternSet | None = None) -> Metric | None:
    return next((metric for metric in metric_table(patterns) if metric.key == key), None)


# ---- one answer ----------------------------------------------------------------------------

def keyword_coverage(answer: str, keywords: list[str]) -> float | None:
    """Share of expected keywords found (case-insensitive; "a|b" accepts either); None without any.
    >>> keyword_coverage("It lasts 12 hours.", ["12 hours", "USB-C|USB C"])
    0.5
    """
    if not keywords:
        return None
    lowered = answer.lower()
    found = sum(1 for keyword in keywords if any(alt.strip().lower() in lowered for alt in keyword.split("|")))
    return found / len(keywords)


def normalize(text: str) -> str:
    """Lower case, accents, quotes and punctuation folded to single spaces (for lenient matching).
    >>> normalize('The “Lumen-X2” Sheet.md')
    'the lumen x2 sheet md'
    """
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def source_names(source: str) -> list[str]:
    """The spellings of a source that count as naming it: as written, and without a file suffix."""
    names = {normalize(source)}
    stem = re.sub(r"\.(md|txt|markdown|rst|html?|pdf)$", "", source.strip(), flags=re.IGNORECASE)
    names.add(normalize(stem))
    return [name for name in names if name]


def source_hit(answer: str, sources: list[str]) -> bool | None:
    """Does the answer name any expected source? None when the prompt expects none.
    >>> source_hit('According to "lumen-x2 sheet", 12 hours.', ["Lumen X2 sheet.md"])
    True
    """
    if not sources:
        return None
    text = f" {normalize(answer)} "
    return any(f" {name} " in text for source in sources for name in source_names(source))


def outcome(reply_text: str, *, tokens: int, max_new_tokens: int | None, refused: bool,
            should_refuse: bool | None, min_words: int, error: str | None = None) -> str:
    """Why an answer is or is not substantive: one of OUTCOMES.
    >>> outcome("<think>hmm, let me", tokens=64, max_new_tokens=64, refused=False, should_refuse=None, min_words=2)
    'cut_off_in_think'
    """
    if error:
        return "error"
    split = split_think(reply_text)
    cut = max_new_tokens is not None and tokens >= max_new_tokens  # the budget ran out (no end-of-turn token)
    if split.think is not None and not split.closed:
        return "cut_off_in_think"
    if not split.answer:
        return "no_answer"
    if cut:
        return "cut_off"
    if refused and should_refuse is not True:
        return "refused"
    if refused and should_refuse is True:
        return "substantive"  # declining is the answer asked for
    return "too_short" if len(split.answer.split()) < min_words else "substantive"


def score(prompt: Prompt, side: str, reply, patterns: PatternSet, max_new_tokens: int | None = None) -> dict:
    """One result row: the answer, its timing and every metric. `reply` is anything with text,
    tokens, seconds, ttft_s, tokens_per_s and error (core.chat.engine.PaneState)."""
    split = split_think(reply.text)
    answer = split.answer
    refused = patterns.refusal.matches(answer)
    result = outcome(reply.text, tokens=reply.tokens, max_new_tokens=max_new_tokens, refused=refused,
                     should_refuse=prompt.should_refuse, min_words=prompt.min_words, error=reply.error)
    row = {
        "prompt_id": prompt.id, "category": prompt.category, "mode": prompt.mode, "side": side, "prompt": prompt.text,
        "answer": reply.text, "error": reply.error or "",
        "words": len(answer.split()), "think_chars": len(split.think or ""),
        "tokens": reply.tokens, "latency_s": round(reply.seconds, 3),
        "ttft_s": round(reply.ttft_s, 3) if reply.ttft_s is not None else None,
        "tokens_per_s": round(reply.tokens_per_s, 2),
        "keyword_coverage": keyword_coverage(answer, prompt.keywords),
        "source_hit": source_hit(answer, prompt.sources),
        "substantive": result == "substantive", "outcome": result,
        "cut_off_in_think": result == "cut_off_in_think",
        "refused": refused, "should_refuse": prompt.should_refuse,
        "refusal_correct": None if prompt.should_refuse is None else refused == prompt.should_refuse,
        "refused_when_refusal_expected": refused if prompt.should_refuse is True else None,
        "refused_when_answer_expected": refused if prompt.should_refuse is False else None,
    }
    for pattern in patterns.patterns:
        row[pattern.name] = pattern.matches(answer)
    return row


# ---- many answers --------------------------------------------------------------------------

def mean(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(sum(values) / len(values), 3) if values else None


def aggregate(rows: list[dict], patterns: PatternSet | None = None) -> list[dict]:
    """One row per side, in the order sides first appear: the prompts, the errors, and the mean
    of every metric in metric_table (None where no answer has a value for it)."""
    table = []
    metrics = metric_table(patterns)
    for side in dict.fromkeys(row["side"] for row in rows):
        mine = [row for row in rows if row["side"] == side]
        summary = {"side": side, "prompts": len(mine), "errors": sum(1 for row in mine if row.get("error"))}
        summary.update({metric.key: mean(row.get(metric.key) for row in mine) for metric in metrics})
        table.append(summary)
    return table


def per_prompt_table(rows: list[dict], patterns: PatternSet | None = None) -> list[dict]:
    """One row per prompt: every side's answer beside a short note (latency, keywords found,
    outcome, flagged patterns), so a reader compares answers across, not down."""
    patterns = patterns or load_patterns()
    table: dict[str, dict] = {}
    for row in rows:
        entry = table.setdefault(row["prompt_id"], {"prompt_id": row["prompt_id"], "category": row["category"], "prompt": row["prompt"]})
        flags = [p.name for p in patterns.patterns if row.get(p.name)] + (["refused"] if row["refused"] else [])
        notes = [f"{row['latency_s']:.1f} s"]
        if row["keyword_coverage"] is not None:
            notes.append(f"keywords {row['keyword_coverage']:.0%}")
        if row.get("outcome") and row["outcome"] != "substantive":
            notes.append(row["outcome"].replace("_", " "))
        if row.get("source_hit") is not None:
            notes.append("source named" if row["source_hit"] else "source missing")
        entry[f"{row['side']}: answer"] = row["answer"]
        entry[f"{row['side']}: notes"] = " · ".join(notes + flags + ([f"error: {row['error']}"] if row["error"] else []))
    return list(table.values())
