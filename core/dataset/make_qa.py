"""Grounded Q&A from documents: the settings, the mix plan, the prompts and row validation.

A plan is a fixed list of slots drawn from the chunks with a seed: grounded (one chunk as
context, a cited answer), synthesis (chunks of two documents, a comparative answer) and refusal
(context from one document, a question about another, a polite refusal that says why). The same
settings and documents always give the same plan, which is what lets an interrupted run resume.
Every generated pair is validated against its slot before it is kept. This module knows nothing
about files, servers or models (core.dataset.make_run runs a plan through a backend).
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import asdict, dataclass, fields

from core.dataset.make_docs import Chunk
from core.dataset.patterns import Pattern, load_patterns
from core.errors import BadInput

RAG_SYSTEM = ("You answer questions using only the context provided in the user's message. Cite the title of "
              "the document you use. If the context does not contain the answer, say so, say why, and do not guess.")
KINDS = ("grounded", "synthesis", "refusal")
REASON_WORDS = ("context", "passage", "provided", "document", "text", "source")
MIN_QUOTE_WORDS = 3


class MakeError(BadInput):
    """Settings or inputs that can't make a dataset; the message names the setting and the fix."""


@dataclass
class QASettings:
    count: int = 2000
    """How many pairs to make (the reference run made 1,997 from 132 papers)."""
    grounded: float = 0.6
    """Share of grounded pairs: one document's chunk as context, a cited prose answer."""
    synthesis: float = 0.2
    """Share of synthesis pairs: chunks of two documents, a comparative answer citing both."""
    refusal: float = 0.2
    """Share of refusal pairs: an irrelevant context and a polite refusal that says why."""
    chunk_size: int = 1200
    """Characters per chunk (cuts fall on paragraph, sentence or word boundaries)."""
    chunk_overlap: int = 200
    """Characters each chunk repeats from the end of the one before."""
    seed: int = 0
    """Seed of the plan: which chunks each pair uses, and the order of the mix."""
    retries: int = 3
    """Extra tries for a pair whose reply is invalid; the pair is given up after that."""
    system_prompt: str = RAG_SYSTEM
    """The system turn of every sample: the RAG rules the tuned model learns."""

    def check(self) -> QASettings:
        if self.count < 1:
            raise MakeError(f"count: at least 1, got {self.count}")
        for name in KINDS:
            share = getattr(self, name)
            if not 0 <= share <= 1:
                raise MakeError(f"{name}: a share between 0 and 1, got {share}")
        total = self.grounded + self.synthesis + self.refusal
        if abs(total - 1) > 0.001:
            raise MakeError(f"grounded + synthesis + refusal must add up to 1, got {total:g}")
        if self.chunk_size < 100:
            raise MakeError(f"chunk_size: at least 100 characters, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size // 2:
            raise MakeError(f"chunk_overlap: between 0 and half the chunk size ({self.chunk_size // 2}), got {self.chunk_overlap}")
        if self.retries < 0:
            raise MakeError(f"retries: 0 or more, got {self.retries}")
        return self

    def plan_key(self) -> dict:
        """The settings a plan depends on: a resume must use the same."""
        return {k: v for k, v in asdict(self).items() if k not in ("retries",)}

    @staticmethod
    def help(name: str) -> str:
        """A field's docstring, for CLI and UI help."""
        import inspect

        source = inspect.getsource(QASettings)
        match = re.search(rf"\n    {name}: [^\n]*\n\s+\"\"\"(.*?)\"\"\"", source, re.DOTALL)
        return match.group(1).strip() if match else ""


FIELD_NAMES = tuple(f.name for f in fields(QASettings))


@dataclass(frozen=True)
class Slot:
    index: int
    kind: str
    context: tuple[int, ...]  # chunk numbers shown to the model and kept in the sample
    topic: int | None = None  # refusal only: the chunk the question is about (not in the context)


def kind_counts(settings: QASettings) -> dict[str, int]:
    """Largest-remainder rounding, so the counts add up to `count` exactly.

    >>> kind_counts(QASettings(count=7))
    {'grounded': 4, 'synthesis': 2, 'refusal': 1}
    """
    exact = {k: getattr(settings, k) * settings.count for k in KINDS}
    counts = {k: int(v) for k, v in exact.items()}
    for kind in sorted(KINDS, key=lambda k: (counts[k] - exact[k], KINDS.index(k)))[: settings.count - sum(counts.values())]:
        counts[kind] += 1
    return counts


def make_plan(chunks: list[Chunk], settings: QASettings) -> list[Slot]:
    """The slots, in a seeded order that interleaves the kinds."""
    settings.check()
    if not chunks:
        raise MakeError("the documents gave no chunks of text")
    counts = kind_counts(settings)
    docs = sorted({c.doc for c in chunks})
    if (counts["synthesis"] or counts["refusal"]) and len(docs) < 2:
        raise MakeError("synthesis and refusal pairs need at least two documents; add documents or set "
                        "synthesis and refusal to 0 (and grounded to 1)")
    rng = random.Random(settings.seed)
    by_doc = {d: [i for i, c in enumerate(chunks) if c.doc == d] for d in docs}
    cycle = _Cycle(list(range(len(chunks))), rng)
    kinds = [k for k in KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    slots = []
    for index, kind in enumerate(kinds):
        first = cycle.next()
        if kind == "grounded":
            slots.append(Slot(index, kind, (first,)))
            continue
        other_doc = rng.choice([d for d in docs if d != chunks[first].doc])
        second = rng.choice(by_doc[other_doc])
        if kind == "synthesis":
            slots.append(Slot(index, kind, (first, second)))
        else:
            slots.append(Slot(index, kind, (first,), topic=second))
    return slots


class _Cycle:
    """Every chunk once, in a shuffled order, before any chunk again: even coverage."""

    def __init__(self, items: list[int], rng: random.Random):
        self.items, self.rng, self.queue = items, rng, []

    def next(self) -> int:
        if not self.queue:
            self.queue = self.items[:]
            self.rng.shuffle(self.queue)
        return self.queue.pop()


# ---------------------------------------------------------------- prompts


def context_block(slot: Slot, chunks: list[Chunk]) -> str:
    parts = [f"[{n}] {chunks[c].title}\n{chunks[c].text}" for n, c in enumerate(slot.context, 1)]
    return "Context:\n" + "\n\n".join(parts)


def generation_messages(slot: Slot, chunks: list[Chunk]) -> list[dict]:
    """What the generating model is asked, for one slot."""
    titles = [chunks[c].title for c in slot.context]
    shape = ('Reply with one JSON object: {"question": ..., "answer": ..., "cited_titles": [...], '
             '"evidence_quotes": [...]}.')
    if slot.kind == "grounded":
        task = (f"Write one question that a reader could ask and that this passage answers. Answer it in two or three "
                f"sentences using only the passage, naming the source (\"According to {titles[0]}, ...\"). "
                f"cited_titles: [\"{titles[0]}\"]. evidence_quotes: one sentence copied exactly from the passage "
                "that supports the answer.")
    elif slot.kind == "synthesis":
        task = ("Write one question that needs BOTH passages to answer, such as a comparison. Answer it in three or four "
                f"sentences that name both sources (\"{titles[0]}\" and \"{titles[1]}\"). cited_titles: both titles. "
                "evidence_quotes: one sentence copied exactly from each passage.")
    else:
        topic = chunks[slot.topic]
        task = (f"Here is an unrelated passage that is NOT part of the context, titled \"{topic.title}\":\n"
                f"{topic.text}\n\nWrite one question about that unrelated passage which the context does not answer. "
                f"The answer must politely refuse: say that the provided context ({titles[0]}) does not contain this "
                "information and why, and must not answer from the unrelated passage. cited_titles: []. "
                "evidence_quotes: [].")
    return [{"role": "system", "content": "You write training data for a question-answering assistant. " + shape},
            {"role": "user", "content": f"{context_block(slot, chunks)}\n\n{task}"}]


def sample_row(slot: Slot, chunks: list[Chunk], pair: dict, settings: QASettings) -> dict:
    """The kept training sample: system (the RAG rules) / user (context + question) / assistant."""
    user = f"{context_block(slot, chunks)}\n\nQuestion: {pair['question'].strip()}"
    row = {"id": f"qa-{slot.index + 1:05d}", "category": slot.kind, "slot": slot.index,
           "messages": [{"role": "system", "content": settings.system_prompt}, {"role": "user", "content": user},
                        {"role": "assistant", "content": pair["answer"].strip()}],
           "sources": [chunks[c].title for c in slot.context], "evidence_quotes": pair["evidence_quotes"]}
    if slot.topic is not None:
        row["question_about"] = chunks[slot.topic].title
    return row


# ---------------------------------------------------------------- validation


@functools.cache
def _refusal() -> Pattern:
    """The refusal regexes of assets/patterns.yaml: a made refusal row must read as a refusal to the
    evaluation too, so both use the one list."""
    return load_patterns().refusal


def _squash(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    return " ".join(text.split()).casefold()


def validate_pair(pair: dict, slot: Slot, chunks: list[Chunk]) -> list[str]:
    """Why this pair can't be kept; an empty list when it can."""
    problems = []
    for key, kind in (("question", str), ("answer", str), ("cited_titles", list), ("evidence_quotes", list)):
        if not isinstance(pair.get(key), kind):
            problems.append(f"schema: '{key}' must be a {'string' if kind is str else 'list'}")
    if problems:
        return problems
    if not all(isinstance(x, str) for x in pair["cited_titles"] + pair["evidence_quotes"]):
        return ["schema: cited_titles and evidence_quotes must hold strings"]
    question, answer = pair["question"].strip(), pair["answer"].strip()
    if not question:
        problems.append("empty question")
    if not answer:
        problems.append("empty answer")
    if problems:
        return problems
    titles = {_squash(chunks[c].title): chunks[c].title for c in slot.context}
    refuses = _refusal().matches(_squash(answer))
    if slot.kind == "refusal":
        if not refuses:
            problems.append("refusal row does not refuse (no phrase like 'the context does not contain')")
        elif not any(word in _squash(answer) for word in REASON_WORDS):
            problems.append("refusal row does not say why (mention that the provided context lacks it)")
        return problems
    if refuses:
        problems.append(f"{slot.kind} row refuses although its context answers it")
    cited = [_squash(t) for t in pair["cited_titles"]]
    unknown = [t for t, s in zip(pair["cited_titles"], cited) if s not in titles]
    if not cited:
        problems.append("no cited title")
    if unknown:
        problems.append(f"cited title(s) not in the context: {', '.join(map(repr, unknown))}")
    if slot.kind == "synthesis" and set(titles) - set(cited):
        problems.append("synthesis row must cite both context titles")
    if not any(t in _squash(answer) for t in titles):
        problems.append("the answer names none of the context's titles")
    problems.extend(_quote_problems(pair["evidence_quotes"], slot, chunks))
    return problems


def _quote_problems(quotes: list[str], slot: Slot, chunks: list[Chunk]) -> list[str]:
    passages = [_squash(chunks[c].text) for c in slot.context]
    problems, covered = [], set()
    if not quotes:
        return ["no evidence quote"]
    for quote in quotes:
        squashed = _squash(quote).strip(" \"'.…")
        if len(squashed.split()) < MIN_QUOTE_WORDS:
            problems.append(f"evidence quote too short to prove anything: {quote!r}")
            continue
        hits = [n for n, passage in enumerate(passages) if squashed in passage]
        if not hits:
            problems.append(f"evidence quote not found in the context: {quote[:80]!r}")
        covered.update(hits)
    if slot.kind == "synthesis" and not problems and len(covered) < len(passages):
        problems.append("synthesis row needs an evidence quote from each passage")
    return problems
