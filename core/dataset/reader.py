"""Data: read a dataset (JSONL, JSON, CSV, Parquet, a folder of them, or a Hub dataset name),
detect its format, and normalize every row to an `Example`.

Reading streams: `stream()` yields Examples and BadRows one at a time, so a million-row
JSONL is never held as Python dicts; `load()` collects them for callers that want lists.
A bad row never sinks the file: it becomes a `BadRow` naming the file, line and reason.
This module knows nothing about tokenizers or models (core.dataset.samples renders tokens), checks
(core.dataset.checks) or review state (core.dataset.review). Row shapes live in core.dataset.formats;
what a Hub id looks like comes from core.models (HUB_DATASET_REF), its one owner.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:  # orjson parses a JSONL line about three times faster; json is the fallback
    import orjson

    _loads = orjson.loads
    _JSONError: tuple = (orjson.JSONDecodeError,)
except ImportError:  # pragma: no cover
    _loads = json.loads
    _JSONError = (json.JSONDecodeError,)

from core.dataset import csv_rows, formats
from core.dataset.example import ROLES, BadRow, Example  # noqa: F401  (re-exported: readers hand these out)
from core.errors import StudioError
from core.models import HUB_DATASET_REF

SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
DETECT_SAMPLE = 200


class DatasetError(StudioError, ValueError):
    """The dataset as a whole can't be read (missing, wrong kind of file, unreachable Hub)."""


@dataclass(slots=True)
class LoadResult:
    path: Path
    format: str
    evidence: str
    examples: list[Example]
    bad_rows: list[BadRow]


# ---------------------------------------------------------------- raw records


def files_of(path: Path) -> list[Path]:
    """The data files behind a path: the file itself, or a folder's supported files in name order."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
        if not found:
            raise DatasetError(f"{path}: the folder holds no {', '.join(SUFFIXES)} files")
        return found
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.suffix.lower() not in SUFFIXES:
        raise DatasetError(f"{path}: unsupported file type '{path.suffix}'; use {', '.join(SUFFIXES)}")
    return [path]


def parse_line(raw: bytes, line: int) -> dict | str:
    """One JSONL line as a dict, or the reason it isn't one."""
    if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte-order mark, written by some Windows editors
    try:
        row = _loads(raw)
    except _JSONError as error:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"not UTF-8 text (byte 0x{raw[bad.start]:02x} at column {bad.start + 1}); re-save the file as UTF-8"
        return f"not valid JSON ({str(error).splitlines()[0][:120]})"
    if isinstance(row, list):
        return "expected a JSON object per line, got list (a file holding one JSON array is a .json file)"
    if not isinstance(row, dict):
        return f"expected a JSON object per line, got {type(row).__name__}"
    return row


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict | str]]:
    with open(path, "rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if raw.strip():
                yield line, parse_line(raw, line)


def _json_records(path: Path) -> Iterator[tuple[None, dict | str]]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except RecursionError:
        raise DatasetError(f"{path}: nested too deeply to be a dataset (over {sys.getrecursionlimit()} levels)") from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text (byte {error.start}); re-save the file as UTF-8") from None
    except json.JSONDecodeError as error:
        if path.stat().st_size and _looks_like_jsonl(path):
            yield from _jsonl_records(path)
            return
        raise DatasetError(f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if len(lists) == 1 and all(isinstance(r, dict) for r in next(iter(lists.values()))):
            data = next(iter(lists.values()))  # {"data": [...]} wrapper
        elif lists and len({len(v) for v in lists.values()}) == 1:
            data = [dict(zip(lists, values)) for values in zip(*lists.values())]  # columns
        else:
            raise DatasetError(f"{path}: a JSON object must hold one list of rows or equal-length columns")
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON array of rows, got {type(data).__name__}")
    for row in data:
        yield None, row if isinstance(row, dict) else f"expected an object per row, got {type(row).__name__}"


def _looks_like_jsonl(path: Path) -> bool:
    with open(path, "rb") as handle:
        first = handle.readline().strip().lstrip(b"\xef\xbb\xbf")
    return first.startswith(b"{") and first.endswith(b"}")


def _csv_records(path: Path) -> Iterator[tuple[int, dict | str]]:
    try:
        yield from csv_rows.records(path)
    except csv_rows.CSVHeaderError as error:
        raise DatasetError(f"{path}: {error}") from None


def _parquet_records(path: Path) -> Iterator[tuple[None, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises its own ArrowInvalid family
        raise DatasetError(f"{path}: not a readable Parquet file ({error})") from None
    for batch in table.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            yield None, row


def _hub_records(name: str) -> Iterator[tuple[None, dict]]:
    repo, _, split = name.partition(":")
    try:
        import datasets

        data = datasets.load_dataset(repo, split=split or "train", streaming=True)
        for row in data:
            yield None, dict(row)
    except Exception as error:  # offline, gated, missing: all end the same way for a person
        raise DatasetError(
            f"{name}: could not read this Hub dataset ({type(error).__name__}: {str(error).splitlines()[0][:160]}). "
            "If you are offline, download the file and open it from disk."
        ) from None


def is_hub_dataset(text: str, *bases: str | Path) -> bool:
    """Whether `text` names a Hub dataset (owner/name[:split]) rather than a local path: it has that
    shape, nothing by that name exists here or under `bases`, it does not end in a data file's
    suffix, and its first part is not a local folder (so `data/missing.jsonl` is a missing file)."""
    text = str(text).strip()
    if not HUB_DATASET_REF.match(text) or text.lower().endswith(SUFFIXES):
        return False
    roots = [Path.cwd(), *map(Path, bases)]
    first = text.split("/", 1)[0]
    return not any((root / text).expanduser().exists() or (root / first).is_dir() for root in roots)


def records(path: str | Path) -> Iterator[tuple[str, int | None, int, dict | str]]:
    """(file, line, row number, dict or reason) for every record behind `path`."""
    text = str(path)
    if is_hub_dataset(text):
        for number, (line, row) in enumerate(_hub_records(text), start=1):
            yield text, line, number, row
        return
    for file in files_of(Path(text).expanduser()):
        reader = {".csv": _csv_records, ".parquet": _parquet_records, ".json": _json_records}.get(file.suffix.lower(), _jsonl_records)
        try:
            for number, (line, row) in enumerate(reader(file), start=1):
                yield str(file), line, number, row
        except OSError as error:
            raise DatasetError(f"{file}: can't be read ({error.strerror or error})") from None


# ---------------------------------------------------------------- examples


class ExampleStream:
    """Examples and BadRows in file order. The format is decided from the first rows (or given),
    and known as soon as the stream is opened: `.format`, `.evidence`."""

    def __init__(self, path: str | Path, format: str = "auto", *, format_template: str | None = None,
                 system_prompt: str | None = None):
        if format not in ("auto",) + formats.FORMATS:
            raise DatasetError(f"format '{format}' is unknown; use auto or one of {', '.join(formats.FORMATS)}")
        self.path = Path(path)
        self.template = formats.check_template(format_template) if format_template else None
        self.system_prompt = system_prompt
        self.many_files = Path(path).is_dir()
        self._records = records(path)
        self._head = list(itertools.islice(self._records, DETECT_SAMPLE))
        if not self._head:
            raise DatasetError(f"{path}: {_why_empty(Path(path))}; there are no rows to check or train on")
        sample = [row for _, _, _, row in self._head if isinstance(row, dict)]
        if format != "auto":
            self.format, self.evidence = format, "chosen by hand"
        elif not sample:
            _, line, number, reason = self._head[0]
            where = f"line {line}" if line else f"row {number}"
            self.format, self.evidence = "unknown", f"no readable rows (first: {where}: {reason})"
        else:
            try:
                self.format, self.evidence = formats.detect(sample)
            except formats.RowError as error:
                self.format, self.evidence = "unknown", str(error)

    def __iter__(self) -> Iterator[Example | BadRow]:
        for file, line, number, row in itertools.chain(self._head, self._records):
            yield to_item(file, line, number, row, self.format, evidence=self.evidence, template=self.template,
                          system_prompt=self.system_prompt, id_prefix=f"{Path(file).name}:" if self.many_files else "")


def _why_empty(path: Path) -> str:
    if path.is_dir():
        return "no rows in any of its data files"
    size = path.stat().st_size if path.is_file() else -1
    if size == 0:
        return "the file is empty (0 bytes)"
    if 0 < size <= 1 << 20 and not path.read_bytes().strip():
        return "the file holds only blank lines or whitespace"
    return "the file holds a header but no rows" if path.suffix.lower() == ".csv" else "the file holds no rows"


def to_item(file: str, line: int | None, number: int, row: dict | str, fmt: str, *, evidence: str = "",
            template: str | None = None, system_prompt: str | None = None, id_prefix: str = "") -> Example | BadRow:
    """One raw record (a dict, or the reason it isn't one) as an Example or a BadRow."""
    if isinstance(row, str):
        return BadRow(file, line, row, number)
    if fmt == "unknown":
        return BadRow(file, line, evidence, number)
    default_id = f"{id_prefix}line-{line}" if line else f"{id_prefix}row-{number}"
    try:
        return formats.normalize(row, fmt, example_id=default_id, line=line, row_number=number,
                                 format_template=template, system_prompt=system_prompt)
    except (formats.RowError, KeyError, TypeError, AttributeError) as error:
        return BadRow(file, line, row_error_text(error), number)
    except RecursionError:
        return BadRow(file, line, "nested too deeply to read", number)


def jsonl_slice(path: str | Path, start: int, end: int, first_line: int, fmt: str, *, template: str | None = None,
                system_prompt: str | None = None) -> Iterator[Example | BadRow]:
    """The records of a JSONL file between two byte offsets (`start` at a line start, which is
    line `first_line`); row numbers count from 1 within the slice. Lets workers split a big file."""
    with open(path, "rb") as handle:
        handle.seek(start)
        line, number, position = first_line, 0, start
        for raw in handle:
            if position >= end:
                return
            position += len(raw)
            if raw.strip():
                number += 1
                yield to_item(str(path), line, number, parse_line(raw, line), fmt, template=template,
                              system_prompt=system_prompt)
            line += 1


def row_error_text(error: Exception) -> str:
    """Why a row could not become an Example, in words (a missing field, a RowError's message)."""
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}"
    if isinstance(error, formats.RowError):
        return str(error)
    return f"unexpected value ({error})"


def stream(path: str | Path, format: str = "auto", *, format_template: str | None = None,
           system_prompt: str | None = None) -> ExampleStream:
    """Open a dataset for streaming; raises DatasetError when it can't be read at all."""
    return ExampleStream(path, format, format_template=format_template, system_prompt=system_prompt)


def load(path: str | Path, format: str = "auto", *, format_template: str | None = None,
         system_prompt: str | None = None) -> LoadResult:
    """Every Example and BadRow of a dataset, in file order."""
    opened = stream(path, format, format_template=format_template, system_prompt=system_prompt)
    examples, bad = [], []
    for item in opened:
        (bad if isinstance(item, BadRow) else examples).append(item)
    return LoadResult(Path(path), opened.format, opened.evidence, examples, bad)


def to_normalized(example: Example) -> dict:
    """The normalized JSONL row for an Example; `load` reads it back to the same Example."""
    if example.is_preference:
        row = {"id": example.id, "prompt": example.messages, "chosen": example.chosen, "rejected": example.rejected}
    else:
        row = {"id": example.id, "messages": example.messages}
    if example.mode is not None:
        row["mode"] = example.mode
    if example.category is not None:
        row["category"] = example.category
    if example.label is not None:
        row["label"] = example.label
    return row
