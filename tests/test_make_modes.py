"""The staged mode build: the bundled raw records give every stage file and the run summary; a
planted mislabelled record fails the build with its row named; the schema's fast path equals the
tokenizer's chat template exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.dataset.make_modes import (
    STAGE_FILES,
    RecordError,
    build_modes,
    load_modes_config,
    record_parts,
)
from core.dataset.make_qa import MakeError
from core.dataset.make_schema import ChatTemplateSchema, load_schema_file
from core.workspace import ASSETS

RECORDS = ASSETS / "make" / "raw_records.jsonl"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_bundled_records_build_every_stage(tmp_path):
    summary = build_modes(RECORDS, tmp_path, schema=load_schema_file(ASSETS / "make" / "schema_plain.yaml"))
    assert summary["ok"] and summary["check"]["problems"] == 0
    for name in STAGE_FILES:
        assert len(_rows(tmp_path / name)) == 36, name
    on_disk = json.loads((tmp_path / "run-summary.json").read_text())
    assert on_disk["stages"]["curated"]["modes"] == {"dual": 18, "emulation": 9, "agent": 9}
    assert on_disk["stages"]["curated"]["filler_removed"] >= 5
    assert set(on_disk["check"]["metrics"]) >= {"avg_words", "filler_share", "mode_balance"}
    assert all("target" in m for m in on_disk["check"]["metrics"].values())
    curated = {r["id"]: r for r in _rows(tmp_path / "curated.jsonl")}
    assert curated["raw-011"]["first"].startswith("Why do I enjoy")  # "Great question, " removed
    assert curated["raw-010"]["second"] == "Next time I will block the morning before a deadline."
    final = {r["id"]: r for r in _rows(tmp_path / "final.jsonl")}
    agent = final["raw-028"]
    assert agent["mode"] == "agent"
    assert agent["messages"][2]["content"] == ("<instruction>Show the ten largest files in the current folder.</instruction>\n"
                                               "<action>du -ah . | sort -rh | head -n 10</action>")
    assert agent["text"].startswith("<s>[INST] <<SYS>>\nAgent mode") and agent["text"].endswith(" </s>")


def test_planted_mislabelled_record_fails_the_build(tmp_path):
    records = tmp_path / "records.jsonl"
    planted = {"id": "planted", "type": "action", "input": "Why is the sky blue?",
               "output": "<thought>Scattering favours short wavelengths.</thought> <world>Blue light scatters most.</world>"}
    records.write_text(RECORDS.read_text() + json.dumps(planted) + "\n")
    summary = build_modes(records, tmp_path / "out")
    assert not summary["ok"]
    found = summary["check"]["contamination"]
    assert [(f["id"], f["row"], f["reason"]) for f in found] == [("planted", 37, "foreign tags")]
    assert json.loads((tmp_path / "out" / "run-summary.json").read_text())["ok"] is False


def test_options_bad_rows_and_cli(tmp_path, capsys):
    from studio.cli.commands import main

    records = tmp_path / "records.jsonl"
    records.write_text(RECORDS.read_text() + '{"type": "dream", "text": "A. B."}\n{"type": "reflection", "text": "One."}\nnot json\n')
    summary = build_modes(records, tmp_path / "a")
    assert summary["ok"] and summary["dropped"]["count"] == 3
    assert [r["line"] for r in summary["dropped"]["rows"]] == [37, 38, 39]
    assert "type 'dream' is not in the type -> mode map" in summary["dropped"]["rows"][0]["reason"]
    only = build_modes(RECORDS, tmp_path / "b", only_mode="agent", max_count=4)
    assert only["stages"]["final"]["rows_out"] == 4 and {r["mode"] for r in _rows(tmp_path / "b" / "final.jsonl")} == {"agent"}
    with pytest.raises(MakeError, match="--only-mode wizard: not a mode"):
        build_modes(RECORDS, tmp_path / "c", only_mode="wizard")
    assert main(["make", "modes", str(RECORDS), "--out", str(tmp_path / "d"), "--no-schema"]) == 0
    assert "clean; summary in" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("types:\n  reflection: wizard\n")
    assert main(["make", "modes", str(RECORDS), "--out", str(tmp_path / "e"), "--config", str(bad), "--no-schema"]) == 2
    assert "types.reflection: mode 'wizard' has no tags" in capsys.readouterr().err


@pytest.mark.parametrize("record, parts", [
    ({"input": "a", "output": "b"}, (None, "a", "b")),
    ({"user": "a", "assistant": "b", "prompt": "p"}, ("p", "a", "b")),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, (None, "a", "b")),
    ({"text": "First. Second! Third?"}, (None, "First. Second!", "Third?")),
])
def test_record_shapes(record, parts):
    assert record_parts(record) == parts


def test_record_shape_errors():
    with pytest.raises(RecordError, match="two sentences"):
        record_parts({"text": "Only one sentence"})
    with pytest.raises(RecordError, match="no content"):
        record_parts({"type": "x"})
    assert load_modes_config().types["conversation"] == "emulation"


def test_chat_template_fast_path_matches_the_tokenizer(tmp_path, embedded_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    schema = ChatTemplateSchema(tokenizer, "embedded")
    build_modes(RECORDS, tmp_path, schema=schema)
    rows = _rows(tmp_path / "final.jsonl")
    assert schema.fast is not None and schema.describe()["verified_rows"] == 36
    schema.checked = schema.rendered = 10_000  # past verification: the fast path alone renders now
    for row in rows:
        assert schema.render(row["messages"]) == tokenizer.apply_chat_template(row["messages"], tokenize=False)
