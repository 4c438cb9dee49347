"""core.dataset.reader and core.dataset.formats: every supported format, bad input row by row, the bundled assets."""

from __future__ import annotations

import json

import pytest

from core.dataset import reader
from core.dataset.reader import BadRow, Example
from core.workspace import ASSETS


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_friction_record_becomes_think_block_and_answer(tmp_path):
    row = {"question": "Q?", "agent_responses": ["A says yes.", "B says no."], "final_answer": "Maybe."}
    loaded = reader.load(write_jsonl(tmp_path / "f.jsonl", [row]))
    assert loaded.format == "friction" and "question/agent_responses/final_answer" in loaded.evidence
    (example,) = loaded.examples
    assert example.messages == [{"role": "user", "content": "Q?"},
                                {"role": "assistant", "content": "<think>A says yes.\n\nB says no.</think>Maybe."}]
    assert example.source == row and example.line == 1 and example.id == "line-1"


def test_friction_custom_template_and_system_prompt(tmp_path):
    row = {"id": 7, "question": "Q?", "agent_responses": [{"agent": "Skeptic", "response": "No."}], "final_answer": "Yes."}
    loaded = reader.load(write_jsonl(tmp_path / "f.jsonl", [row]), "friction",
                       format_template="[{thought_stream}] {final_answer}", system_prompt="Be brief.")
    (example,) = loaded.examples
    assert example.id == "7"
    assert example.messages[0] == {"role": "system", "content": "Be brief."}
    assert example.messages[-1]["content"] == "[Skeptic: No.] Yes."


def test_bad_friction_template_names_the_placeholders(tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", [{"question": "q", "agent_responses": ["a"], "final_answer": "b"}])
    with pytest.raises(ValueError, match="thought_stream"):
        reader.load(path, format_template="<think>{thoughts}</think>")


@pytest.mark.parametrize("row, fmt, messages", [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}, "messages",
     [("user", "hi"), ("assistant", "hello")]),
    ({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "hi"}, {"from": "gpt", "value": "call"},
                        {"from": "tool", "value": "42"}, {"from": "gpt", "value": "It is 42."}]}, "sharegpt",
     [("system", "S"), ("user", "hi"), ("assistant", "call"), ("tool", "42"), ("assistant", "It is 42.")]),
    ({"instruction": "Sum", "input": "2+2", "output": "4", "system": "Math.", "history": [["hi", "hello"]]}, "alpaca",
     [("system", "Math."), ("user", "hi"), ("assistant", "hello"), ("user", "Sum\n\n2+2"), ("assistant", "4")]),
    ({"prompt": "Say hi", "completion": "hi"}, "prompt_completion", [("user", "Say hi"), ("assistant", "hi")]),
    ({"mode": "dual", "text": "<thought>a</thought><world>b</world>"}, "modes", [("assistant", "<thought>a</thought><world>b</world>")]),
])
def test_chat_formats(tmp_path, row, fmt, messages):
    loaded = reader.load(write_jsonl(tmp_path / "d.jsonl", [row]))
    assert loaded.format == fmt and not loaded.bad_rows
    assert [(m["role"], m["content"]) for m in loaded.examples[0].messages] == messages


@pytest.mark.parametrize("row", [
    {"prompt": "Q", "chosen": "good", "rejected": "bad", "category": "reasoning"},
    {"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "good"}],
     "rejected": [{"role": "assistant", "content": "bad"}], "category": "reasoning"},
    {"conversations": [{"from": "human", "value": "Q"}], "chosen": {"from": "gpt", "value": "good"},
     "rejected": {"from": "gpt", "value": "bad"}, "category": "reasoning"},
])
def test_preference_variants(tmp_path, row):
    loaded = reader.load(write_jsonl(tmp_path / "p.jsonl", [row]))
    (example,) = loaded.examples
    assert loaded.format == "preference" and example.is_preference
    assert example.messages == [{"role": "user", "content": "Q"}]
    assert (example.chosen, example.rejected, example.category) == ("good", "bad", "reasoning")


def test_bad_input_is_reported_row_by_row_and_good_rows_load(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    big = {"messages": [{"role": "user", "content": "x" * 5_000_000}, {"role": "assistant", "content": "ok"}]}
    lines = [
        b"\xef\xbb\xbf" + json.dumps(good).encode() + b"\r\n",  # BOM + CRLF
        b"{not json\n",
        b"\n",
        json.dumps({"instruction": "mixed", "output": "format"}).encode() + b"\n",
        b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n',  # Latin-1 byte
        json.dumps({"messages": [{"role": "user", "content": 5}]}).encode() + b"\n",
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode() + b"\n",
        b"[1, 2]\n",
        json.dumps(big).encode() + b"\n",
        json.dumps(good).encode() + b"\n",
    ]
    path = tmp_path / "messy.jsonl"
    path.write_bytes(b"".join(lines))
    loaded = reader.load(path)
    assert loaded.format == "messages"
    assert [e.line for e in loaded.examples] == [1, 9, 10]
    reasons = {bad.line: bad.reason for bad in loaded.bad_rows}
    assert set(reasons) == {2, 4, 5, 6, 7, 8}
    assert "not valid JSON" in reasons[2]
    assert "alpaca" in reasons[4] and "not messages" in reasons[4]
    assert "not UTF-8" in reasons[5] and "0xe9" in reasons[5]
    assert "messages[0].content" in reasons[6] and "int" in reasons[6]
    assert "messages[0].role" in reasons[7]
    assert "list" in reasons[8]
    assert all(str(path) in str(bad) for bad in loaded.bad_rows)


def test_empty_file_is_a_dataset_error_not_a_row(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(reader.DatasetError, match="empty"):
        reader.load(path)


def test_missing_field_names_it(tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", [{"question": "q", "agent_responses": "not a list", "final_answer": "a"}])
    (bad,) = reader.load(path).bad_rows
    assert "agent_responses" in bad.reason and bad.line == 1


def test_unreadable_paths_raise_dataset_error(tmp_path):
    with pytest.raises(reader.DatasetError, match="no such file"):
        reader.load(tmp_path / "missing.jsonl")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(reader.DatasetError, match="unsupported file type"):
        reader.load(tmp_path / "notes.txt")
    with pytest.raises(reader.DatasetError, match="format 'nope' is unknown"):
        reader.load(ASSETS / "friction_sample.jsonl", "nope")


def test_json_array_object_of_columns_csv_parquet_and_folder(tmp_path):
    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(3)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "b.json").write_text(json.dumps({"prompt": ["x", "y"], "completion": ["1", "2"]}))
    (tmp_path / "c.csv").write_text('messages\n"[{""role"": ""user"", ""content"": ""hi""}, '
                                    '{""role"": ""assistant"", ""content"": ""yo""}]"\n')
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    assert [e.messages[-1]["content"] for e in reader.load(tmp_path / "a.json").examples] == ["c0", "c1", "c2"]
    assert [e.messages[0]["content"] for e in reader.load(tmp_path / "b.json").examples] == ["x", "y"]
    csv_loaded = reader.load(tmp_path / "c.csv")
    assert csv_loaded.format == "messages" and csv_loaded.examples[0].messages[1]["content"] == "yo"
    assert len(reader.load(tmp_path / "d.parquet").examples) == 3
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "one.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (folder / "two.json").write_text(json.dumps(rows[1:]))
    loaded = reader.load(folder)
    assert [e.id for e in loaded.examples] == ["one.jsonl:line-1", "two.json:row-1", "two.json:row-2"]


def test_hub_name_offline_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(reader.DatasetError, match="Hub dataset"):
        reader.load("someone/surely-not-cached-dataset")


def test_normalized_rows_read_back_to_the_same_examples(tmp_path):
    for name in ("epistemic_dpo.jsonl", "cognitive_modes.jsonl", "friction_sample.jsonl"):
        original = reader.load(ASSETS / name).examples
        path = write_jsonl(tmp_path / name, [reader.to_normalized(e) for e in original])
        again = reader.load(path).examples
        assert [(e.id, e.messages, e.mode, e.chosen, e.rejected, e.category) for e in again] == \
               [(e.id, e.messages, e.mode, e.chosen, e.rejected, e.category) for e in original]


def test_bundled_assets_match_their_recipes():
    friction = reader.load(ASSETS / "friction_sample.jsonl")
    assert friction.format == "friction" and len(friction.examples) >= 60 and not friction.bad_rows
    for row in (e.source for e in friction.examples):
        assert 2 <= len(row["agent_responses"]) <= 4 and 25 <= len(row["final_answer"].split()) <= 60
    rag = reader.load(ASSETS / "rag_grounding.jsonl")
    assert rag.format == "messages" and len(rag.examples) >= 60
    assert all(e.messages[0]["role"] == "system" and "context" in e.messages[1]["content"].lower() for e in rag.examples)
    dpo = reader.load(ASSETS / "epistemic_dpo.jsonl")
    assert len(dpo.examples) == 25 and all(e.is_preference for e in dpo.examples)
    assert {e.category for e in dpo.examples} == {"self-property", "reasoning", "harmful request", "disclaimer",
                                                  "clarification", "factual confidence"}
    modes = reader.load(ASSETS / "cognitive_modes.jsonl")
    assert len(modes.examples) >= 90 and {e.mode for e in modes.examples} == {"dual", "emulation", "agent"}
    contaminated = reader.load(ASSETS / "cognitive_modes_contaminated.jsonl")
    assert len(contaminated.examples) == len(modes.examples)


def test_example_and_bad_row_contracts_are_unchanged():
    example = Example(id="x", messages=[])
    assert example.mode is None and example.source == {} and example.line is None and not example.is_preference
    assert str(BadRow("f.jsonl", 3, "broken")) == "f.jsonl:3: broken"


def test_line_index_matches_a_plain_reading_across_chunk_edges(tmp_path, monkeypatch):
    import random

    from core.dataset import pages

    rng = random.Random(1)
    parts = [rng.choice([b"\n", b"\r\n", b"  \n", b'{"a": 1}\n', b'{"bb": 22}\r\n', b"\t\n"]) for _ in range(400)]
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"".join(parts) + b'{"tail": true}')
    expected, offset = [], 0
    for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        if raw.strip():
            expected.append((offset, number))
        offset += len(raw)
    for chunk in (3, 7, 64, 1 << 20):
        monkeypatch.setattr(pages, "_INDEX_CHUNK", chunk)
        offsets, lines = pages._index_lines(path)
        assert list(zip(offsets.tolist(), lines.tolist())) == expected


def test_paged_dataset_reads_the_same_records_as_the_stream(tmp_path):
    from core.dataset.pages import PagedDataset

    path = tmp_path / "d.jsonl"
    path.write_bytes((ASSETS / "cognitive_modes_contaminated.jsonl").read_bytes() + b"\n{broken\n")
    paged = PagedDataset(path)
    streamed = list(reader.stream(path))
    assert len(paged) == len(streamed) == 91
    assert paged.page([0, 45, 90]) == [streamed[0], streamed[45], streamed[90]]
    assert paged.search("HEXAGONAL lattice") == [0]
