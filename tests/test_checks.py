"""core.dataset.checks, core.dataset.contamination, core.dataset.tokens and `studio check`."""

from __future__ import annotations

import json
import sys

import pytest

from core.dataset import checks, contamination, tokens
from core.dataset.reader import Example
from core.workspace import ASSETS
from studio.cli.commands import main

CONTAMINATED = ASSETS / "cognitive_modes_contaminated.jsonl"


def chat(reply, mode=None, user="Q?"):
    return Example(id="x", messages=[{"role": "user", "content": user}, {"role": "assistant", "content": reply}], mode=mode)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("reply, mode, reasons", [
    ("<thought>a</thought><world>b</world>", "dual", []),
    ("<thought>a</thought><world>b</world><action>c</action>", "dual", [("foreign tags", ["<action>"])]),
    ("<thought>a</thought>", "dual", [("missing tags", ["<world>"])]),
    ("<instruction>a</instruction><action>b", "agent", [("unbalanced tags", ["<action>"])]),
    ("</user>a<user><assistant>b</assistant>", "emulation", [("unbalanced tags", ["</user>", "<user>"])]),
    ("<user>a</user><assistant>b</assistant>", "agent",
     [("missing tags", ["<instruction>", "<action>"]), ("foreign tags", ["<assistant>", "<user>"])]),
    ("text", "poetry", [("unknown mode", [])]),
])
def test_contamination_rules(reply, mode, reasons):
    found = contamination.ContaminationCheck().check(chat(reply, mode))
    assert [(f.reason, f.tags) for f in found] == reasons


def test_only_assistant_text_is_scanned():
    example = Example(id="x", mode="dual", messages=[
        {"role": "system", "content": "Use <thought> then <world>; never <action>."},
        {"role": "user", "content": "Q"}, {"role": "assistant", "content": "<thought>a</thought><world>b</world>"}])
    assert contamination.ContaminationCheck().check(example) == []


def test_mode_table_from_yaml_accepts_bare_names(tmp_path):
    (tmp_path / "modes.yaml").write_text("modes:\n  plan: [step, goal]\nfiller_phrases: [Basically]\n")
    config = contamination.load_config(tmp_path / "modes.yaml")
    assert config == {"modes": {"plan": ["<step>", "<goal>"]}, "filler_phrases": ["basically"]}
    (tmp_path / "bad.yaml").write_text("modes:\n  plan: step\n")
    with pytest.raises(ValueError, match="plan"):
        contamination.load_config(tmp_path / "bad.yaml")


def test_contaminated_asset_names_rows_modes_and_tags():
    report = checks.check(CONTAMINATED)
    found = {(c["row"], c["mode"], c["reason"], tuple(c["tags"])) for c in report.contamination}
    assert found == {
        (4, "dual", "foreign tags", ("<action>",)),
        (8, "emulation", "missing tags", ("<assistant>",)),
        (8, "emulation", "foreign tags", ("<world>",)),
        (12, "agent", "unbalanced tags", ("<action>",)),
        (25, "dual", "foreign tags", ("<user>",)),
        (32, "agent", "missing tags", ("<instruction>", "<action>")),
        (32, "agent", "foreign tags", ("<assistant>", "<user>")),
    }
    assert not report.ok and sorted(report.findings) == [3, 7, 11, 24, 31]


@pytest.mark.parametrize("name", ["cognitive_modes.jsonl", "friction_sample.jsonl", "rag_grounding.jsonl", "epistemic_dpo.jsonl"])
def test_bundled_datasets_are_clean(name):
    report = checks.check(ASSETS / name)
    assert report.ok, report.to_json()


def test_structure_duplicates_and_metrics(tmp_path):
    reply = " ".join(["word"] * 30)
    rows = [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": reply}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": reply}]},  # exact duplicate
        {"messages": [{"role": "user", "content": "A!"}, {"role": "assistant", "content": reply.upper()}]},  # near
        {"messages": [{"role": "user", "content": "b"}, {"role": "assistant", "content": "  "}]},  # empty turn
        {"messages": [{"role": "user", "content": "c"}, {"role": "user", "content": "d"}]},  # role order
        {"messages": [{"role": "user", "content": "e"}, {"role": "assistant", "content": "As an AI, I hope this helps. " + reply}]},
    ]
    report = checks.check(write_jsonl(tmp_path / "d.jsonl", rows))
    c = report.counts
    assert (c["exact_duplicates"], c["near_duplicates"], c["empty_turns"], c["role_order"]) == (1, 1, 1, 1)
    assert report.duplicates["exact"][0]["same_as_row"] == 1 and report.duplicates["near"][0]["row"] == 3
    assert report.metrics["filler_share"]["value"] == pytest.approx(1 / 5)  # the role-order row has no reply
    assert report.metrics["filler_share"]["status"] == "bad"
    assert report.problems == 3 and not report.ok


def test_visible_words_ignore_think_blocks_and_tags():
    assert checks.visible_words("<think>one two three</think>Four five.") == 2
    assert checks.visible_words("<thought>a b</thought>\n<world>c</world>") == 3


def test_preference_checks(tmp_path):
    rows = [{"prompt": "p1", "chosen": "same", "rejected": "same", "category": "reasoning"},
            {"prompt": "p2", "chosen": "", "rejected": "no", "category": "disclaimer"},
            {"prompt": "p3", "chosen": "yes", "rejected": "no", "category": "reasoning"}]
    report = checks.check(write_jsonl(tmp_path / "p.jsonl", rows))
    assert report.preference["identical"] == 1 and report.preference["empty_sides"] == 1
    assert report.preference["categories"] == {"reasoning": 2, "disclaimer": 1}
    assert report.problems == 2


def test_mode_balance_flags_a_rare_mode(tmp_path):
    rows = [{"mode": "dual", "text": "<thought>a</thought><world>b</world>"}] * 1 + \
           [{"mode": "agent", "text": f"<instruction>{i}</instruction><action>x</action>"} for i in range(30)]
    report = checks.check(write_jsonl(tmp_path / "m.jsonl", rows))
    assert report.metrics["mode_balance"]["status"] == "bad"


def test_token_stats_with_the_embedded_tokenizer(embedded_tokenizer):
    from core.dataset import reader

    examples = reader.load(ASSETS / "friction_sample.jsonl").examples[:8]
    roomy = tokens.token_stats(examples, embedded_tokenizer, max_length=512)
    assert roomy["counted"] == 8 and roomy["truncated"] == 0 and 0.3 < roomy["trained_share"] < 1
    assert roomy["min"] <= roomy["mean"] <= roomy["max"] < 512
    tight = tokens.token_stats(examples, embedded_tokenizer, max_length=64)
    assert tight["truncated"] == 8
    pairs = reader.load(ASSETS / "epistemic_dpo.jsonl").examples[:3]
    assert tokens.token_stats(pairs, embedded_tokenizer, max_length=256)["counted"] == 3


def test_mask_view_marks_only_the_reply(embedded_tokenizer):
    example = chat("Paris is the capital.", user="Capital of France?")
    view = tokens.mask_view(example, embedded_tokenizer, max_length=128)
    trained = "".join(text for text, on in view["segments"] if on)
    assert "Paris is the capital." in trained and "France" not in trained
    assert view["text"] == embedded_tokenizer.apply_chat_template(example.messages, tokenize=False)


def run_cli(capsys, *args):
    code = main(["check", *map(str, args)])
    return code, capsys.readouterr()


def test_cli_exit_codes_and_json(capsys, tmp_path):
    code, out = run_cli(capsys, CONTAMINATED, "--json")
    assert code == 1
    report = json.loads(out.out)
    for key in ("format", "rows", "bad_rows", "contamination", "metrics"):
        assert key in report
    assert report["format"] == "modes" and report["rows"] == 90
    assert {(c["row"], c["mode"]) for c in report["contamination"]} >= {(4, "dual"), (12, "agent")}
    assert ["<action>"] in [c["tags"] for c in report["contamination"]]

    code, out = run_cli(capsys, ASSETS / "cognitive_modes.jsonl", "--json")
    assert code == 0 and json.loads(out.out)["ok"] is True

    code, out = run_cli(capsys, tmp_path / "missing.jsonl", "--json")
    assert code == 2 and "no such file" in json.loads(out.out)["error"]

    code, out = run_cli(capsys, ASSETS / "cognitive_modes.jsonl", "--strict")
    assert code == 1 and "Long replies" in out.out  # 0% long replies misses the 5-10% target


def test_cli_reports_bad_rows_with_lines(capsys, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n{oops\n')
    code, out = run_cli(capsys, path)
    assert code == 1 and f"{path}:2" in out.out


def test_core_modules_do_not_import_gradio():
    import subprocess

    code = ("import sys; import core.dataset.reader, core.dataset.formats, core.dataset.checks, core.dataset.contamination, "
            "core.dataset.review, core.dataset.pages, core.dataset.tokens;"
            "sys.exit(1 if 'gradio' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_worker_processes_give_the_same_report(tmp_path, monkeypatch):
    from core.dataset import check_pool

    rows = (ASSETS / "cognitive_modes_contaminated.jsonl").read_bytes()
    path = tmp_path / "big.jsonl"
    path.write_bytes(rows + b"\n{broken\n" + rows)  # duplicates across the two halves, a bad line between
    monkeypatch.setattr(check_pool, "MIN_BYTES", 1)
    alone = checks.check(path, workers=1)
    config = contamination.load_config()
    split = check_pool.check_parallel(path, alone.format, alone.evidence, workers=2, mode_table=config["modes"],
                                      fillers=config["filler_phrases"])  # called directly: no silent fallback
    assert check_pool.worth_it(path, 2) and len(check_pool.slices(path, 2)) == 2
    assert {k: v for k, v in split.to_json().items() if k != "elapsed_s"} == \
           {k: v for k, v in alone.to_json().items() if k != "elapsed_s"}
    assert (split.words, split.modes, split.lines, split.findings) == (alone.words, alone.modes, alone.lines, alone.findings)
    assert split.counts["exact_duplicates"] == 90 and split.counts["bad_rows"] == 1
