"""CSV is read strictly: each malformed record is named by its line and skipped, the rest is kept
(issue 12: a stray quote merged lines, an unclosed quote swallowed the file, extra fields vanished)."""

from __future__ import annotations

import pytest

from core.dataset import reader
from core.dataset.checks import check


def _load(tmp_path, text: str | bytes, name: str = "d.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return reader.load(path)


def _prompts(loaded) -> list[tuple[int, str]]:
    return [(e.line, e.messages[0]["content"]) for e in loaded.examples]


def test_stray_quote_is_named_and_does_not_merge_the_next_lines(tmp_path):
    loaded = _load(tmp_path, 'prompt,completion\n"hi,there\nsecond,row\nthird" x,row\nfourth,ok\n')
    (bad,) = loaded.bad_rows
    assert bad.line == 2 and "quote opened on line 2 runs to line 4" in bad.reason
    assert _prompts(loaded) == [(3, "second"), (4, 'third" x'), (5, "fourth")]


def test_unclosed_quote_does_not_swallow_the_rest_of_the_file(tmp_path):
    loaded = _load(tmp_path, 'prompt,completion\nok,a\n"unclosed,yo\nline3,b\nline4,c\n')
    (bad,) = loaded.bad_rows
    assert bad.line == 3 and "never closes" in bad.reason
    assert _prompts(loaded) == [(2, "ok"), (4, "line3"), (5, "line4")]


def test_wrong_field_counts_are_reported_not_dropped_or_padded(tmp_path):
    loaded = _load(tmp_path, "prompt,completion\na,b,c\nonly\nd,e\n")
    assert [(b.line, b.reason.split(" but")[0]) for b in loaded.bad_rows] == [(2, "3 fields"), (3, "1 field")]
    assert _prompts(loaded) == [(4, "d")]


def test_valid_quoting_multiline_cells_bom_and_crlf_are_clean(tmp_path):
    text = '\ufeffprompt,completion\r\n"say ""hi""","a, b"\r\n"two\r\nlines",c\r\n\r\nlast,d\r\n'
    loaded = _load(tmp_path, text)
    assert loaded.bad_rows == []
    assert _prompts(loaded) == [(2, 'say "hi"'), (3, "two\r\nlines"), (6, "last")]
    assert loaded.examples[0].messages[1]["content"] == "a, b"


def test_a_latin1_line_is_one_bad_record_and_the_rest_is_kept(tmp_path):
    loaded = _load(tmp_path, "prompt,completion\ncaf\xe9,x\nok,y\n".encode("latin-1"))
    (bad,) = loaded.bad_rows
    assert bad.line == 2 and "not UTF-8" in bad.reason and "0xe9" in bad.reason
    assert _prompts(loaded) == [(3, "ok")]


def test_json_cells_become_lists(tmp_path):
    loaded = _load(tmp_path, 'messages\n"[{""role"": ""user"", ""content"": ""hi""}, {""role"": ""assistant"", ""content"": ""yo""}]"\n')
    assert loaded.format == "messages" and loaded.examples[0].messages[1]["content"] == "yo"


@pytest.mark.parametrize("text, reason", [
    ("prompt,prompt\na,b\n", "names column 'prompt' twice"),
    ('"prompt,completion\na,b\n', "header is not valid CSV"),
])
def test_an_unusable_header_is_a_dataset_error(tmp_path, text, reason):
    with pytest.raises(reader.DatasetError, match=reason):
        _load(tmp_path, text)


def test_check_reports_malformed_csv_as_problems(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('prompt,completion\n"hi,there\nsecond,row\nthird" x,row\n')
    report = check(path)
    assert not report.ok and report.counts["bad_rows"] == 1 and report.bad_rows[0]["line"] == 2
