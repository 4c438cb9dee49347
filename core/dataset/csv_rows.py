"""CSV rows, read strictly: every record is either a row or the reason it is malformed, named by
the line it starts on, and a malformed record never swallows the records around it.

Python's csv module is forgiving by default: a stray quote merges the lines up to the next quote
into one cell, an unclosed quote takes the rest of the file, and DictReader drops extra fields
and fills missing ones with None. Here the csv module runs with `strict=True` over lines we count
ourselves, so each record knows its first and last line; a record with the wrong number of fields
or text that is not UTF-8 is reported; and a quote that never closes is reported on its line and
reading starts again on the next line. This module knows nothing about row formats or Examples.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from core.errors import BadInput

MAX_RESTARTS = 1000  # unclosed quotes re-read the rest of the file; a pathological file stops here


class CSVHeaderError(BadInput):
    """The header line itself is unusable, so no row can be read."""


class _Lines:
    """A file's physical lines as text for csv.reader, counting lines and bytes, so a record can
    be re-read from the line after its start. Lines that are not UTF-8 are remembered, not raised."""

    def __init__(self, handle, first_line: int):
        self.handle, self.number, self.offset = handle, first_line - 1, handle.tell()
        self.not_utf8: dict[int, str] = {}
        self.first_length = 0  # bytes in the current record's first line
        self.at_record_start = True

    def __iter__(self):
        return self

    def __next__(self) -> str:
        raw = self.handle.readline()
        if not raw:
            raise StopIteration
        self.number += 1
        self.offset += len(raw)
        if self.at_record_start:
            self.first_length, self.at_record_start = len(raw), False
        try:
            return raw.decode("utf-8-sig" if self.number == 1 else "utf-8")
        except UnicodeDecodeError as bad:
            self.not_utf8[self.number] = (f"not UTF-8 text (line {self.number}, byte 0x{raw[bad.start]:02x} at column "
                                          f"{bad.start + 1}); re-save the file as UTF-8")
            return raw.decode("utf-8", "replace")


def records(path: Path) -> Iterator[tuple[int, dict | str]]:
    """(first line, row dict or the reason the record is malformed) for every record of a CSV file.
    Raises CSVHeaderError when the header can't be used."""
    header: list[str] | None = None
    start: tuple[int, int] | None = (1, 0)  # (line, byte offset) where reading (re)starts
    restarts = 0
    while start is not None:
        with open(path, "rb") as handle:
            handle.seek(start[1])
            lines = _Lines(handle, start[0])
            rows = csv.reader(lines, strict=True)
            start = None
            while True:
                first, offset = lines.number + 1, lines.offset
                lines.at_record_start = True
                try:
                    fields = next(rows)
                except StopIteration:
                    break
                except csv.Error as error:
                    last = lines.number
                    if header is None:
                        raise CSVHeaderError(f"line {first}: the header is not valid CSV ({error})") from None
                    if "unexpected end of data" in str(error):
                        problem = f"a quote opened on line {first} never closes (it would take lines {first}-{last} as one cell)"
                    elif last > first:
                        problem = f"a quote opened on line {first} runs to line {last} and breaks there ({error})"
                    else:
                        problem = f"bad CSV quoting ({error})"
                    yield first, f"{problem}; write a quote inside a cell as two quotes (\"\") and quote whole cells"
                    if last > first and restarts < MAX_RESTARTS:
                        # Only this line is skipped: the lines the quote took in are read again as records.
                        restarts += 1
                        start = (first + 1, offset + lines.first_length)
                        break
                    continue
                if not any(field.strip() for field in fields):
                    continue  # a blank line
                not_utf8 = [lines.not_utf8.pop(n) for n in range(first, lines.number + 1) if n in lines.not_utf8]
                if header is None:
                    header = _header(fields, first, not_utf8)
                elif not_utf8:
                    yield first, not_utf8[0]
                elif len(fields) != len(header):
                    span = "" if lines.number == first else f" (lines {first}-{lines.number})"
                    yield first, (f"{len(fields)} field{'s' if len(fields) != 1 else ''}{span} but the header has {len(header)} columns "
                                  f"({', '.join(header)[:80]}); quote cells that contain commas")
                else:
                    yield first, {name: cell(value) for name, value in zip(header, fields)}


def _header(fields: list[str], line: int, not_utf8: list[str]) -> list[str]:
    if not_utf8:
        raise CSVHeaderError(f"the header is {not_utf8[0]}")
    names = [name.strip() for name in fields]
    seen: dict[str, int] = {}
    for column, name in enumerate(names, start=1):
        if name in seen:
            raise CSVHeaderError(f"line {line}: the header names column {name!r} twice (columns {seen[name]} and {column})")
        seen[name] = column
    return names


def cell(value):
    """CSV cells holding JSON lists/objects (messages, agent_responses) become real lists."""
    if isinstance(value, str) and value[:1] in "[{" and value[-1:] in "]}":
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value
