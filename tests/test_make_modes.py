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
    with pytest.raises(RecordError, match="one sentence without a clause break"):
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


# A memory stream as a person keeps one: many inner thoughts and reflections are one sentence.
STREAM = [
    ("inner_dialogue", "I keep rehearsing the talk, because the first minute decides how they listen."),
    ("inner_dialogue", "The numbers look fine on paper but something about the supplier feels off."),
    ("reflection", "I said yes to the extra project; I should have asked what it would push aside."),
    ("inner_dialogue", "Maybe I am tired."),  # too short to split: dropped, with that reason
    ("reflection", "We shipped late again because the review started on Thursday. Next time the review starts on Monday, "
                   "so the fixes have three full days before the release."),
]


def test_one_sentence_thoughts_are_split_at_a_clause_and_repeats_dropped_at_curation(tmp_path):
    records = tmp_path / "stream.jsonl"
    rows = [{"id": f"m{i}", "type": kind, "text": text} for i, (kind, text) in enumerate(STREAM)]
    rows.append({"id": "copy", "type": "inner_dialogue", "text": STREAM[0][1]})  # the same memory twice
    rows.append({"id": "almost", "type": "reflection",  # the same reflection, a word changed
                 "text": STREAM[4][1].replace("three full days", "three whole days")})
    records.write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary = build_modes(records, tmp_path / "out")
    assert summary["ok"], summary["check"]  # a build whose records repeat no longer fails on exact duplicates
    curated = {r["id"]: r for r in _rows(tmp_path / "out" / "curated.jsonl")}
    assert set(curated) == {"m0", "m1", "m2", "m4"}
    assert curated["m0"]["first"] == "I keep rehearsing the talk…"
    assert curated["m0"]["second"] == "Because the first minute decides how they listen."
    assert curated["m1"]["second"] == "But something about the supplier feels off."
    assert curated["m2"]["first"] == "I said yes to the extra project…"
    reasons = {row["line"]: row["reason"] for row in summary["dropped"]["rows"]}
    assert reasons[4].startswith("one sentence without a clause break")
    assert reasons[6] == "exact duplicate of line 1"
    assert reasons[7].startswith("near duplicate of line 5 (at least")
    assert summary["stages"]["curated"]["repeats_dropped"] == 2
    shares = {row["mode"]: row for row in summary["mode_shares"]}
    assert shares["dual"]["count"] == 4 and shares["dual"]["status"] == "off target"
    assert shares["agent"] == {"mode": "agent", "count": 0, "share": 0.0, "target": 0.3333, "status": "off target"}


def test_single_sentence_drop_and_mode_share_targets_come_from_the_config(tmp_path):
    config = tmp_path / "modes_make.yaml"
    config.write_text((ASSETS / "modes_make.yaml").read_text().replace("single_sentence: clause", "single_sentence: drop")
                      + "mode_shares: {dual: 0.5, emulation: 0.25, agent: 0.25}\n")
    (tmp_path / "modes.yaml").write_text((ASSETS / "modes.yaml").read_text())
    summary = build_modes(RECORDS, tmp_path / "out", config=config)
    assert all(row["status"] == "on target" for row in summary["mode_shares"])
    records = tmp_path / "one.jsonl"
    records.write_text(json.dumps({"type": "reflection", "text": STREAM[2][1]}) + "\n")
    nothing = build_modes(records, tmp_path / "one", config=config)
    assert not nothing["ok"] and nothing["check"]["warnings"] == ["no record was left to build: see why each was dropped"]
    dropped = nothing["dropped"]["rows"]
    assert dropped[0]["reason"].startswith("one sentence without a clause break to split it at (single_sentence: drop)")
    config.write_text("types: {reflection: dual}\nsingle_sentence: halve\n")
    with pytest.raises(MakeError, match="single_sentence: 'halve': use one of clause, drop"):
        build_modes(RECORDS, tmp_path / "x", config=config)


def test_check_judges_a_rendered_schema_file_by_its_assistant_part(tmp_path):
    from core.dataset import checks

    for schema in (load_schema_file(ASSETS / "make" / "schema_plain.yaml"), None):
        out = tmp_path / ("llama2" if schema else "plain")
        build_modes(RECORDS, out, schema=schema)
        if schema:  # the system and user turns name the tags in words; only the reply is judged
            report = checks.check(out / "schema.jsonl")
            assert report.format == "modes" and report.counts["contamination"] == 0, report.contamination[:2]
    contaminated = tmp_path / "bad.jsonl"
    contaminated.write_text(json.dumps({"mode": "dual", "text": "<|im_start|>system\nUse <thought> and <world>.<|im_end|>\n"
                                        "<|im_start|>assistant\n<instruction>x</instruction><|im_end|>\n"}) + "\n")
    found = checks.check(contaminated).contamination  # the reply itself still is judged
    assert "foreign tags" in {item["reason"] for item in found}


def test_the_build_loads_a_tokenizer_and_no_weights(tmp_path, monkeypatch, capfd):
    from core import models
    from core.dataset import tokens
    from core.workspace import workspace
    from studio.cli.commands import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))  # no converted model here
    tokens.tokenizer_for.cache_clear()  # loaded once per process: an earlier test's is not this workspace's
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the mode build loaded model weights"))
    assert main(["make", "modes", str(RECORDS), "--out", str(tmp_path / "out")]) == 0
    assert not (workspace().models / models.EMBEDDED_FOLDER).exists()
    assert (workspace().models / f"{models.EMBEDDED_FOLDER}-tokenizer" / "tokenizer_config.json").is_file()
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "de-quantizing" not in err and "it/s" not in err
