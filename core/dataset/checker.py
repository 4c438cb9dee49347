"""Checker: the row-by-row accumulator behind a dataset check, and its report.

Row-level problems (the exit status of `studio check` depends on these): bad rows, mode
contamination, empty turns, role-order errors, exact duplicates, broken preference pairs.
Quality metrics with targets (reply length, short/long shares, filler phrases, mode balance,
near duplicates) are indicators shown as good / warn / bad. Token statistics for a chosen
tokenizer come from core.dataset.samples (`token_stats`). Everything is accumulated row by row in
compact arrays, so a million-row file is checked without holding its rows.
This module knows nothing about the UI or review state.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field

from core.dataset import privacy
from core.dataset.balance import balance
from core.dataset.contamination import ContaminationCheck, assistant_texts
from core.dataset.leakage import LeakIndex, asked
from core.dataset.reader import BadRow, Example
from core.dataset.tags import without_think

LIST_CAP = 1000  # findings listed per kind in a report; counts are always complete
NEAR_THRESHOLD = 0.7  # estimated Jaccard similarity of word 3-shingles from which records are near duplicates


@dataclass
class CheckReport:
    path: str
    format: str
    evidence: str
    rows: int = 0
    examples: int = 0
    bad_rows: list[dict] = field(default_factory=list)
    contamination: list[dict] = field(default_factory=list)
    empty_turns: list[dict] = field(default_factory=list)
    role_order: list[dict] = field(default_factory=list)
    left_out: list[dict] = field(default_factory=list)  # content parts (images ...) a usable row lost
    personal_data: list[dict] = field(default_factory=list)  # personal data and secrets (core.dataset.privacy)
    eval_leaks: list[dict] = field(default_factory=list)  # evaluation prompts held by training text (core.dataset.leakage)
    duplicates: dict = field(default_factory=lambda: {"exact": [], "near": []})
    preference: dict | None = None
    labels: dict | None = None  # replies labelled good / bad (KTO) and their balance (core.dataset.balance)
    metrics: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    tokens: dict | None = None
    targets: dict = field(default_factory=dict)  # the quality targets graded against: name, label, why (apply_targets)
    elapsed_s: float = 0.0
    # Per-record arrays for the Dataset tab (position = order in the file, bad rows included).
    words: array = field(default_factory=lambda: array("I"), repr=False)
    modes: array = field(default_factory=lambda: array("b"), repr=False)
    mode_names: list[str] = field(default_factory=list, repr=False)
    lines: array = field(default_factory=lambda: array("I"), repr=False)
    findings: dict[int, list[str]] = field(default_factory=dict, repr=False)
    finding_kinds: dict[int, set[str]] = field(default_factory=dict, repr=False)  # position -> kinds (counts' keys)
    preference_findings: list[dict] = field(default_factory=list, repr=False)

    @property
    def problems(self) -> int:
        c = self.counts
        return sum(c.get(k, 0) for k in ("bad_rows", "contamination", "empty_turns", "role_order", "exact_duplicates",
                                         "identical_pairs", "empty_sides", "left_out_parts", "personal_data", "secrets",
                                         "eval_leaks"))

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def warnings(self) -> list[str]:
        return [f"{m['label']}: {m['display']} (target {m['target']})" for m in self.metrics.values() if m["status"] != "good"]

    def to_json(self) -> dict:
        return {
            "path": self.path, "format": self.format, "evidence": self.evidence, "rows": self.rows,
            "examples": self.examples, "ok": self.ok, "problems": self.problems, "counts": self.counts,
            "bad_rows": self.bad_rows, "contamination": self.contamination, "empty_turns": self.empty_turns,
            "role_order": self.role_order, "left_out": self.left_out, "personal_data": self.personal_data,
            "eval_leaks": self.eval_leaks,
            "duplicates": self.duplicates, "preference": self.preference, "labels": self.labels,
            "metrics": {k: {x: v for x, v in m.items() if x != "display"} for k, m in self.metrics.items()},
            "warnings": self.warnings(), "targets": self.targets, "tokens": self.tokens, "elapsed_s": round(self.elapsed_s, 3),
        }


def visible_words(text: str) -> int:
    """Words a reader sees in a reply: <think> blocks left out. Tags glued to words (the usual
    way they are written) do not add words, so no regex pass is needed."""
    return len(without_think(text).split())


class Checker:
    """Accumulates every check over a stream of Examples and BadRows; `finish()` gives the report."""

    def __init__(self, report: CheckReport, *, mode_table: dict | None = None, filler_phrases: list[str] | None = None,
                 leaks: LeakIndex | None = None, hygiene: bool = True, near_threshold: float = NEAR_THRESHOLD):
        self.report = report
        self.leaks = (leaks or None) if hygiene else None
        self.hygiene = hygiene  # off: no personal-data, leakage or near-duplicate checks (the plain check, for benchmarks)
        self.near_threshold = near_threshold
        self.signer = None
        if hygiene:
            from core.dataset import near_dups  # numpy: loaded when a check runs, not by every importer

            self.signer = near_dups.Signer()
        self.near_parts: list = []  # signatures computed elsewhere (check_pool's workers), in row order
        self.contamination = ContaminationCheck(mode_table) if mode_table is not False else None
        self.fillers_list = tuple(filler_phrases or ())
        self.mode_codes: dict[str, int] = {}
        self.exact_hashes = array("q")  # 0 marks a bad row: it has no content to compare
        self.replies = self.short = self.long = self.fillers = self.total_words = 0
        self.mode_counts: Counter = Counter()
        self.categories: Counter = Counter()
        self.pairs = self.identical = self.empty_sides = 0
        self.labels: Counter = Counter()  # replies labelled good (True) and bad (False), for KTO
        self.counts: Counter = Counter()
        self.any_mode = False

    def _flag(self, position: int, kind: str, entry: dict | None, message: str, listing: list | None) -> None:
        self.counts[kind] += 1
        if listing is not None and len(listing) < LIST_CAP:
            listing.append(entry)
        self.report.findings.setdefault(position, []).append(message)
        self.report.finding_kinds.setdefault(position, set()).add(kind)

    def add(self, item: Example | BadRow, position: int) -> None:
        r = self.report
        r.rows += 1
        if isinstance(item, BadRow):
            r.words.append(0)
            r.modes.append(-1)
            r.lines.append(item.line or 0)
            self.exact_hashes.append(0)
            if self.signer:
                self.signer.add("")  # no words: takes part in no near-duplicate cluster
            where = {"file": item.file, "line": item.line, "row": item.row, "reason": item.reason}
            self._flag(position, "bad_rows", where, f"bad row: {item.reason}", r.bad_rows)
            return
        r.examples += 1
        r.lines.append(item.line or 0)
        where = {"id": item.id, "row": item.row, "line": item.line}
        texts = assistant_texts(item)
        if item.left_out:
            self._flag(position, "left_out_parts", {**where, "parts": item.left_out},
                       f"left out {len(item.left_out)} part(s) the studio can't train on: {', '.join(item.left_out)[:200]}",
                       r.left_out)
        self._quality(item, texts, position)
        self._structure(item, position, where)
        if self.hygiene:
            self._privacy(item, position, where)
        if self.leaks:
            self._leaks(item, position, where)
        self._duplicates(item)
        if item.is_preference:
            self._preference(item, position, where)
        if item.label is not None:
            self.labels[item.label] += 1
        if item.mode is not None or (self.contamination and r.format == "modes"):
            self._contamination(item, texts, position, where)

    def _quality(self, item: Example, texts: list[str], position: int) -> None:
        replies = [item.chosen or ""] if item.is_preference else texts
        graded = item.label is not False  # a reply labelled bad shows what not to write: its fillers are the point
        longest = 0
        for text in replies:
            words = visible_words(text)
            longest = max(longest, words)
            if not graded:
                continue
            self.replies += 1
            self.total_words += words
            self.short += words <= 40
            self.long += words > 100
            if self.fillers_list:
                lower = text.lower()
                for phrase in self.fillers_list:  # a plain loop: 3x faster than any() or a regex here
                    if phrase in lower:
                        self.fillers += 1
                        break
        self.report.words.append(min(longest, 2**32 - 1))
        if item.mode is not None:
            self.any_mode = True
            self.mode_counts[item.mode] += 1
            code = self.mode_codes.setdefault(item.mode, len(self.mode_codes))
            self.report.modes.append(min(code, 127))
        else:
            self.report.modes.append(-1)

    def _structure(self, item: Example, position: int, where: dict) -> None:
        r = self.report
        for index, message in enumerate(item.messages):
            if not message["content"].strip() and not message.get("tool_calls"):
                self._flag(position, "empty_turns", {**where, "turn": index + 1, "role": message["role"]},
                           f"empty {message['role']} turn (turn {index + 1})", r.empty_turns)
        problem = role_order_problem(item)
        if problem:
            self._flag(position, "role_order", {**where, "reason": problem}, f"role order: {problem}", r.role_order)

    def _privacy(self, item: Example, position: int, where: dict) -> None:
        """Personal data and secrets in any field a run trains on, each named by field and span,
        shown masked."""
        fields = [(f"messages[{index}].content", message["content"]) for index, message in enumerate(item.messages)]
        if item.is_preference:
            fields += [("chosen", item.chosen or ""), ("rejected", item.rejected or "")]
        if not privacy.might_hold("\n".join(text for _, text in fields)):  # most records: one quick look
            return
        for name, text in fields:
            everything = privacy.scan(text)
            for found in everything:
                kind = "secrets" if found.secret else "personal_data"
                shown = privacy.excerpt(text, found, everything)
                entry = {**where, "field": name, "kind": found.kind, "label": found.label, "start": found.start,
                         "end": found.end, "excerpt": shown, "secret": found.secret}
                what = "secret" if found.secret else "personal data"
                self._flag(position, kind, entry, f"{what}: {found.label} in {name}: {shown}", self.report.personal_data)

    def _leaks(self, item: Example, position: int, where: dict) -> None:
        """Evaluation prompts in what the record asks (its system and user turns, a pair's prompt)."""
        for set_name, prompt_id in self.leaks.find(asked(item.messages)):
            self._flag(position, "eval_leaks", {**where, "set": set_name, "prompt": prompt_id},
                       f"evaluation leak: holds prompt {prompt_id} of {set_name}", self.report.eval_leaks)

    def _duplicates(self, item: Example) -> None:
        """A hash and a MinHash signature only; pairs are matched in `_match_duplicates` with
        numpy, so a million rows cost 72 bytes each instead of million-entry dicts. Near
        duplicates compare what the turns say, system turns left out (a shared system prompt is
        meant to repeat)."""
        contents = [m["content"] for m in item.messages]
        if item.is_preference:
            contents += [item.chosen, item.rejected]
        self.exact_hashes.append(hash("\x1f".join(contents)) or 1)
        if self.signer:
            self.signer.add(said(item))

    def _match_duplicates(self) -> None:
        import numpy as np

        from core.dataset import near_dups

        r = self.report
        exact = np.frombuffer(self.exact_hashes, dtype=np.int64)
        exact_first = _first_of_equal(exact)
        for position in np.nonzero(exact_first >= 0)[0].tolist():
            first = int(exact_first[position])
            entry = {"row": position + 1, "line": r.lines[position] or None, "same_as_row": first + 1,
                     "same_as_line": r.lines[first] or None}
            self._flag(position, "exact_duplicates", entry, f"exact duplicate of record {first + 1}", r.duplicates["exact"])
        if self.signer is None and not self.near_parts:
            return
        if self.signer:
            self.near_parts.append(self.signer.result())
        signed = near_dups.Signed.concat(self.near_parts)
        self.near_parts = []
        words = np.frombuffer(r.words, dtype=np.uint32)
        found = near_dups.clusters(signed, self.near_threshold, lengths=words)
        r.duplicates["clusters"] = []
        r.duplicates["threshold"] = self.near_threshold
        for cluster in found:
            if len(r.duplicates["clusters"]) < LIST_CAP:
                r.duplicates["clusters"].append({"keep": cluster.keep + 1, "rows": [p + 1 for p in cluster.rows],
                                                 "lines": [r.lines[p] or None for p in cluster.rows],
                                                 "similarity": cluster.similarity})
            for position in cluster.rows:
                if position == cluster.keep or exact_first[position] >= 0:
                    continue  # the record to keep; exact copies are reported as such
                entry = {"row": position + 1, "line": r.lines[position] or None, "same_as_row": cluster.keep + 1,
                         "same_as_line": r.lines[cluster.keep] or None, "cluster_size": len(cluster.rows)}
                self._flag(position, "near_duplicates", entry,
                           f"near duplicate: says nearly what record {cluster.keep + 1} says "
                           f"(a group of {len(cluster.rows)}; keep record {cluster.keep + 1})", r.duplicates["near"])

    def _preference(self, item: Example, position: int, where: dict) -> None:
        self.pairs += 1
        if item.category is not None:
            self.categories[item.category] += 1
        listing = self.report.preference_findings
        if not item.chosen.strip() or not item.rejected.strip():
            side = "chosen" if not item.chosen.strip() else "rejected"
            self.empty_sides += 1
            self._flag(position, "empty_sides", {**where, "reason": f"empty {side} reply"}, f"empty {side} reply", listing)
        elif item.chosen.strip() == item.rejected.strip():
            self.identical += 1
            self._flag(position, "identical_pairs", {**where, "reason": "chosen and rejected are identical"},
                       "chosen and rejected are identical: the pair teaches nothing", listing)

    def _contamination(self, item: Example, texts: list[str], position: int, where: dict) -> None:
        if self.contamination is None:
            return
        for finding in self.contamination.check(item, texts):
            entry = {**where, "mode": item.mode, **finding.to_dict()}
            tags = f" {' '.join(finding.tags)}" if finding.tags else ""
            self._flag(position, "contamination", entry, f"{finding.reason}{tags}: {finding.detail}", self.report.contamination)

    def finish(self) -> CheckReport:
        r = self.report
        self._match_duplicates()
        r.counts = {k: self.counts.get(k, 0) for k in ("bad_rows", "contamination", "empty_turns", "role_order",
                                                       "exact_duplicates", "near_duplicates", "identical_pairs", "empty_sides",
                                                       "left_out_parts", "personal_data", "secrets", "eval_leaks")}
        r.mode_names = [name for name, _ in sorted(self.mode_codes.items(), key=lambda kv: kv[1])]
        if self.labels:
            r.labels = balance(self.labels[True], self.labels[False])
        r.metrics = quality_metrics(self)
        apply_targets(r)
        if self.pairs:
            r.preference = {"pairs": self.pairs, "identical": self.identical, "empty_sides": self.empty_sides,
                            "categories": dict(self.categories.most_common()), "findings": r.preference_findings}
        return r



def _first_of_equal(values):
    """For each position, the first earlier position holding the same non-zero value, else -1."""
    import numpy as np

    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.ones(len(values), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    group_first = order[np.maximum.accumulate(np.where(starts, np.arange(len(values)), 0))]
    first = np.full(len(values), -1, dtype=np.int64)
    repeat = ~starts & (ordered != 0)
    first[order[repeat]] = group_first[repeat]
    return first


def said(item: Example) -> str:
    """What a record's turns say, for near-duplicate matching: system turns left out (a shared
    system prompt is meant to repeat), a pair's two replies in."""
    turns = [m["content"] for m in item.messages if m["role"] != "system"]
    if item.is_preference:
        turns += [item.chosen or "", item.rejected or ""]
    return "\n".join(turns)


def role_order_problem(item: Example) -> str | None:
    """What is wrong with the order of turns, or None."""
    roles = [m["role"] for m in item.messages]
    if "system" in roles[1:]:
        return f"a system message at turn {roles.index('system', 1) + 1}; it belongs first"
    for index in range(1, len(roles)):
        if roles[index] == roles[index - 1] and roles[index] in ("user", "assistant"):
            return f"two {roles[index]} turns in a row (turns {index} and {index + 1})"
    if item.is_preference:
        if not roles or roles[-1] != "user":
            return "the prompt must end with a user turn before the chosen/rejected replies"
    elif "assistant" not in roles:
        return "no assistant turn: nothing to train on"
    return None


def _metric(label: str, value: float, display: str, target: str, status: str) -> dict:
    return {"label": label, "value": round(value, 4), "display": display, "target": target, "status": status}


def _band(value: float, good: tuple[float, float], warn: tuple[float, float]) -> str:
    if good[0] <= value <= good[1]:
        return "good"
    return "warn" if warn[0] <= value <= warn[1] else "bad"


# Quality targets by the kind of data: the reply-length targets of one style are wrong for another
# (the short conversational style of the friction seed would mark every good Q&A answer too long).
# (good band, warn band) per metric; None: shown, not graded. "auto" picks by the data.
TARGETS = {
    "short-replies": {"label": "short conversational replies", "avg_words": ((25, 40), (18, 55)),
                      "short_share": ((0.8, 1), (0.6, 1)), "long_share": ((0.05, 0.10), (0, 0.2)),
                      "filler_share": ((0, 0.02), (0, 0.05))},
    "general": {"label": "instructions and Q&A (answers of any length)", "avg_words": ((8, 400), (3, 800)),
                "short_share": None, "long_share": ((0, 0.6), (0, 0.85)), "filler_share": ((0, 0.02), (0, 0.05))},
}
TARGET_NAMES = ("auto", *TARGETS)


def auto_targets(report: CheckReport, any_mode: bool) -> tuple[str, str]:
    """(targets name, why): the short style for friction records and mode-tagged data (the seeds
    that style comes from), general targets for everything else."""
    if report.format == "friction" or any_mode:
        return "short-replies", "mode-tagged or friction records: the short conversational style they were written in"
    return "general", f"{report.format} rows: answers of any length are normal"


def apply_targets(report: CheckReport, name: str = "auto") -> CheckReport:
    """Grade the report's reply metrics against a kind's targets (the values stay as measured)."""
    if name not in TARGET_NAMES:
        raise ValueError(f"quality targets {name!r}: use one of {', '.join(TARGET_NAMES)}")
    if name == "auto":
        name, why = auto_targets(report, bool(report.mode_names))
    else:
        why = "chosen"
    table = TARGETS[name]
    for key, metric in report.metrics.items():
        if key not in table:
            continue
        bands = table[key]
        if bands is None:
            metric.update(target="any for this kind", status="good")  # reads "target any for this kind"
            continue
        (low, high), warn = bands
        unit_pct = key != "avg_words"
        shown = (lambda v: f"{v:.0%}") if unit_pct else (lambda v: f"{v:g}")
        target = f"{shown(low)}-{shown(high)}" + ("" if unit_pct else " words")
        metric.update(target=target, status=_band(metric["value"], (low, high), warn))
    report.targets = {"name": name, "label": table["label"], "why": why}
    return report


def quality_metrics(c: Checker) -> dict:
    """Graded indicators; none when no row was usable (there is nothing to grade)."""
    if c.report.examples == 0:
        return {}
    replies = max(c.replies, 1)
    avg = c.total_words / replies
    short, long, filler = c.short / replies, c.long / replies, c.fillers / replies
    metrics = {
        "avg_words": _metric("Average reply length", avg, f"{avg:.1f} words", "25-40 words", _band(avg, (25, 40), (18, 55))),
        "short_share": _metric("Short replies (40 words or fewer)", short, f"{short:.0%}", "over 80%", _band(short, (0.8, 1), (0.6, 1))),
        "long_share": _metric("Long replies (over 100 words)", long, f"{long:.0%}", "5-10%", _band(long, (0.05, 0.10), (0, 0.2))),
        "filler_share": _metric("Replies with filler phrases", filler, f"{filler:.1%}", "under 2%", _band(filler, (0, 0.02), (0, 0.05))),
    }
    examples = max(c.report.examples, 1)
    if c.any_mode:
        shares = {mode: n / examples for mode, n in c.mode_counts.most_common()}
        low = min(shares.values())
        status = "good" if low > 0.10 else "bad" if low < 0.05 else "warn"
        shown = ", ".join(f"{m} {s:.0%}" for m, s in shares.items())
        metrics["mode_balance"] = {**_metric("Mode distribution", low, shown, "each mode over 10%", status), "shares": shares}
    if c.report.labels:
        b = c.report.labels
        metrics["label_balance"] = {**_metric("Good and bad replies (KTO)", b["ratio"] or 0, f"{b['good']} good, {b['bad']} bad",
                                              "1 to 1.33 good per bad, or weights that make it so", b["status"]),
                                    "advice": b["advice"]}
    for key, label, bad in (("empty_turns", "Empty turns", True), ("role_order", "Role-order errors", True),
                            ("exact_duplicates", "Exact duplicates", True), ("near_duplicates", "Near duplicates", False)):
        n = c.counts.get(key, 0)
        metrics[key] = _metric(label, n, str(n), "0", "good" if n == 0 else "bad" if bad else "warn")
    return metrics
