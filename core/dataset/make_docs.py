"""Documents for making Q&A: read .txt / .md / .pdf / .jsonl files into titled texts, and cut
them into overlapping chunks.

A title comes from the document itself where it has one (a Markdown `# heading`, a PDF's
metadata title, a JSONL row's `title`) and from the file name otherwise. PDF text comes from
pypdf. This module knows nothing about models, prompts or the mix of questions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadInput

DOC_SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".jsonl")


class DocumentError(BadInput):
    """A document that can't be read; the message names the file (and line) and the fix."""


@dataclass(frozen=True)
class Document:
    title: str
    text: str
    source: str  # file, or file:line for a JSONL row


@dataclass(frozen=True)
class Chunk:
    title: str
    text: str
    doc: int  # index of its document
    index: int  # position among its document's chunks


def load_documents(path: str | Path) -> list[Document]:
    """Every document in a file or a folder (searched recursively), in name order."""
    path = Path(path)
    if not path.exists():
        raise DocumentError(f"{path}: no such file or folder")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and
                                                 p.suffix.lower() in DOC_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DocumentError(f"{path}: holds no {', '.join(DOC_SUFFIXES)} documents")
    documents: list[Document] = []
    for file in files:
        suffix = file.suffix.lower()
        if suffix not in DOC_SUFFIXES:
            raise DocumentError(f"{file}: unsupported document type '{suffix}'; use {', '.join(DOC_SUFFIXES)}")
        if suffix == ".jsonl":
            documents.extend(_jsonl_documents(file))
        elif suffix == ".pdf":
            documents.append(_pdf_document(file))
        else:
            documents.append(_text_document(file))
    documents = [d for d in documents if d.text.strip()]
    if not documents:
        raise DocumentError(f"{path}: every document is empty")
    return documents


def _title_from_name(file: Path) -> str:
    return file.stem.replace("_", " ").replace("-", " ").strip().capitalize() or file.name


def _text_document(file: Path) -> Document:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DocumentError(f"{file}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    title = _title_from_name(file)
    lines = text.lstrip().splitlines()
    if lines and lines[0].startswith("# "):  # a Markdown title heading
        title = lines[0][2:].strip() or title
        text = "\n".join(lines[1:])
    return Document(title, text.strip(), str(file))


def _pdf_document(file: Path) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        pdf = PdfReader(file)
        text = "\n\n".join((page.extract_text() or "").strip() for page in pdf.pages)
        meta_title = (pdf.metadata.title if pdf.metadata else None) or ""
    except (PdfReadError, OSError, ValueError) as error:
        raise DocumentError(f"{file}: not a readable PDF ({error})") from None
    if not text.strip():
        raise DocumentError(f"{file}: the PDF has no extractable text (a scan? run OCR on it first)")
    return Document(str(meta_title).strip() or _title_from_name(file), text.strip(), str(file))


def _jsonl_documents(file: Path) -> list[Document]:
    documents = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DocumentError(f"{file}:{number}: not valid JSON ({error.msg})") from None
            text = row.get("text", row.get("content", row.get("body"))) if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise DocumentError(f"{file}:{number}: expected an object with 'title' and 'text' (or 'content')")
            title = str(row.get("title") or f"{_title_from_name(file)} {number}")
            documents.append(Document(title.strip(), text.strip(), f"{file}:{number}"))
    return documents


def chunk_text(text: str, size: int, overlap: int) -> list[str]:
    """Pieces of about `size` characters, each starting `overlap` characters before the previous
    one ended; cuts fall on a paragraph, sentence or word boundary where one is near.

    >>> chunk_text("one two three four five six", 12, 4)
    ['one two', 'two three', 'three four', 'four five', 'five six']
    """
    if size < 10:
        raise ValueError(f"chunk size: at least 10 characters, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"chunk overlap: must be at least 0 and below the chunk size ({size}), got {overlap}")
    text = text.strip()
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            end = _boundary(text, start, end)
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        if end >= len(text):
            break
        next_start = max(end - overlap, start + 1)
        sentence = text.find(". ", next_start - 1, end - 1)  # start the overlap on a sentence where one begins
        if overlap and sentence != -1:
            next_start = sentence + 2
        elif not text[next_start - 1].isspace():  # start on a word, not inside one: a little more overlap
            back = max(text.rfind(" ", start + 1, next_start), text.rfind("\n", start + 1, next_start))
            next_start = back + 1 if back > start else next_start
        start = next_start
    return pieces


def _boundary(text: str, start: int, end: int) -> int:
    """The best cut at or before `end`: a paragraph, then a sentence end, then a space, not
    earlier than half-way into the piece."""
    floor = start + (end - start) // 2
    for mark in ("\n\n", ". ", "\n", " "):
        cut = text.rfind(mark, floor, end)
        if cut > floor:
            return cut + (len(mark) if mark != " " else 0)
    return end


def chunk_documents(documents: list[Document], size: int = 1200, overlap: int = 200) -> list[Chunk]:
    chunks = []
    for number, document in enumerate(documents):
        for index, text in enumerate(chunk_text(document.text, size, overlap)):
            chunks.append(Chunk(document.title, text, number, index))
    return chunks


def fingerprint(documents: list[Document]) -> str:
    """Changes when any title or text changes, so a resume can tell the corpus is the same."""
    digest = hashlib.sha256()
    for document in documents:
        digest.update(document.title.encode() + b"\0" + document.text.encode() + b"\1")
    return digest.hexdigest()[:16]
