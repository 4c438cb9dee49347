"""Retrieval mode: BM25 (the `bm25s` library) over a prompt set's document folder.

Each .md/.txt file in the folder is one document; its source name is the file name, and a
first line `# Title` is an accepted spelling too. Prompts asked without a context get the top
`k` documents as their context, each headed by its source, so both sides answer over exactly
the same passages. How well retrieval itself did (MRR and hit@k of the expected source) does not
depend on the model, so it is measured once per set and reported once. This module knows
nothing about models or answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import BadInput
from core.eval.metrics import source_names
from core.eval.prompts import Prompt

DOCUMENT_SUFFIXES = (".md", ".txt")
DEFAULT_K = 2


@dataclass(frozen=True)
class Document:
    source: str  # the file name
    title: str
    text: str

    def names(self) -> set[str]:
        return set(source_names(self.source)) | set(source_names(self.title))


@dataclass
class Retrieval:
    """What retrieval found for each prompt, and how good that was."""

    k: int
    documents: int
    ranked: dict[str, list[str]] = field(default_factory=dict)  # prompt id -> sources, best first
    ranks: dict[str, int | None] = field(default_factory=dict)  # prompt id -> rank of the expected source

    @property
    def n(self) -> int:
        return len(self.ranks)

    @property
    def mrr(self) -> float | None:
        return round(sum(1 / r if r else 0.0 for r in self.ranks.values()) / self.n, 4) if self.n else None

    @property
    def hit_at_k(self) -> float | None:
        return round(sum(1 for r in self.ranks.values() if r and r <= self.k) / self.n, 4) if self.n else None

    def to_dict(self) -> dict:
        return {"k": self.k, "documents": self.documents, "n": self.n, "mrr": self.mrr, "hit_at_k": self.hit_at_k,
                "ranks": self.ranks, "ranked": self.ranked}


def read_documents(folder: str | Path) -> list[Document]:
    folder = Path(folder)
    documents = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES and p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        first = text.splitlines()[0] if text else ""
        title = first.lstrip("#").strip() if first.startswith("#") else path.stem
        documents.append(Document(path.name, title, text))
    if not documents:
        raise BadInput(f"{folder}: no documents to retrieve from (.md or .txt files)")
    return documents


class Index:
    """A BM25 index over documents (English stop words dropped)."""

    def __init__(self, documents: list[Document]):
        import bm25s

        self.documents = documents
        self._bm25 = bm25s.BM25()
        self._bm25.index(bm25s.tokenize([d.text for d in documents], stopwords="en", show_progress=False),
                         show_progress=False)

    def search(self, query: str, k: int) -> list[Document]:
        """The best `k` documents for `query`, best first (all of them when k >= the folder's size)."""
        import bm25s

        k = min(k, len(self.documents))
        found, _ = self._bm25.retrieve(bm25s.tokenize([query], stopwords="en", show_progress=False), k=k,
                                       show_progress=False)
        return [self.documents[int(i)] for i in found[0]]


def rank_of(expected: list[str], ranked: list[Document]) -> int | None:
    """1-based rank of the first document that is one of the expected sources; None if absent."""
    wanted = {name for source in expected for name in source_names(source)}
    return next((rank for rank, doc in enumerate(ranked, start=1) if doc.names() & wanted), None)


def context_of(documents: list[Document]) -> str:
    return "\n\n".join(f"[source: {doc.source}]\n{doc.text}" for doc in documents)


def retrieve(prompts: list[Prompt], folder: str | Path, k: int = DEFAULT_K) -> tuple[list[Prompt], Retrieval]:
    """Prompts that need a context get the top-k documents; MRR and hit@k are measured over the
    prompts that expect a source (ranked over the whole folder, so MRR sees ranks beyond k)."""
    documents = read_documents(folder)
    index = Index(documents)
    report = Retrieval(k=k, documents=len(documents))
    asked = []
    for prompt in prompts:
        if not prompt.needs_context:
            asked.append(prompt)
            continue
        ranked = index.search(prompt.question, len(documents))
        report.ranked[prompt.id] = [doc.source for doc in ranked[:k]]
        if prompt.sources:
            report.ranks[prompt.id] = rank_of(prompt.sources, ranked)
        asked.append(prompt.with_context(context_of(ranked[:k])))
    return asked, report
