"""Content parts as the common tools write them (issue 12): LLaMA-Factory v1 `value` parts,
reasoning parts in the <think> block, tool-call parts, parts the studio can't use reported per
row, turns left empty refused; LLaMA-Factory's chosen_messages / rejected_messages pairs."""

from __future__ import annotations

import json

import pytest

from core import recipes
from core.chat.engine import split_think
from core.dataset import reader
from core.dataset.checks import check
from core.train import training_data


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _lf(role: str, *parts: tuple[str, str]) -> dict:
    """A LLaMA-Factory v1 message: content is a list of {"type", "value"} parts."""
    return {"role": role, "content": [{"type": kind, "value": value} for kind, value in parts],
            "loss_weight": 1.0 if role == "assistant" else 0.0}


LF_SFT = {"messages": [_lf("user", ("text", "What is 2+2?")),
                       _lf("assistant", ("reasoning", "Two and two make four."), ("text", "It is 4."))]}
LF_TOOL = {"messages": [
    _lf("user", ("text", "Weather in Paris?")),
    _lf("assistant", ("tool_call", json.dumps({"name": "weather", "arguments": {"city": "Paris"}}))),
    _lf("tool", ("text", "sunny, 21 C")),
    _lf("assistant", ("text", "Sunny and 21 degrees."))]}


def test_llamafactory_value_parts_are_read_not_empty(tmp_path):
    loaded = reader.load(_write(tmp_path / "lf.jsonl", [LF_SFT, LF_TOOL]))
    assert loaded.format == "messages" and loaded.bad_rows == []
    first, tool = loaded.examples
    assert first.messages[0] == {"role": "user", "content": "What is 2+2?"}
    assert split_think(first.messages[1]["content"]) == split_think("<think>Two and two make four.</think>It is 4.")
    assert split_think(first.messages[1]["content"]).answer == "It is 4."
    assert tool.messages[1]["tool_calls"] == [{"type": "function", "function": {"name": "weather",
                                                                                "arguments": {"city": "Paris"}}}]
    assert [m["content"] for m in tool.messages[2:]] == ["sunny, 21 C", "Sunny and 21 degrees."]
    report = check(tmp_path / "lf.jsonl")
    assert report.ok and report.counts["empty_turns"] == 0
    assert report.metrics["avg_words"]["value"] > 0  # replies were 0 words when `value` was not read


@pytest.mark.parametrize("content, text", [
    ([{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}], "Hello there"),  # OpenAI chat
    ([{"type": "output_text", "text": "Hi"}, {"type": "refusal", "refusal": " no."}], "Hi no."),  # Responses API
    (["plain ", {"text": "strings"}], "plain strings"),
    ([{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "Yes."}], "<think>hm</think>Yes."),  # Anthropic
    ([{"type": "reasoning", "summary": [{"type": "summary_text", "text": "short"}]}, {"type": "output_text", "text": "Ok"}],
     "<think>short</think>Ok"),
])
def test_part_shapes_of_the_common_tools(tmp_path, content, text):
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]}
    (example,) = reader.load(_write(tmp_path / "d.jsonl", [row])).examples
    assert example.messages[1]["content"] == text


def test_message_level_reasoning_goes_in_the_think_block(tmp_path):
    row = {"messages": [{"role": "user", "content": "q"},
                        {"role": "assistant", "content": "Paris.", "reasoning_content": "The capital is Paris."}]}
    (example,) = reader.load(_write(tmp_path / "d.jsonl", [row])).examples
    assert split_think(example.messages[1]["content"]).think == "The capital is Paris."


def test_sharegpt_value_may_be_parts(tmp_path):
    row = {"conversations": [{"from": "human", "value": [{"type": "text", "value": "hi"}]},
                             {"from": "gpt", "value": [{"type": "text", "value": "hello"}]}]}
    (example,) = reader.load(_write(tmp_path / "d.jsonl", [row])).examples
    assert [m["content"] for m in example.messages] == ["hi", "hello"]


def test_an_image_part_is_reported_per_row_and_the_text_kept(tmp_path, capsys):
    from studio.cli import commands as cli

    row = {"messages": [_lf("user", ("image_url", "cat.png"), ("text", "Describe it.")), _lf("assistant", ("text", "A cat."))]}
    path = _write(tmp_path / "d.jsonl", [row, LF_SFT])
    (example, _) = reader.load(path).examples
    assert example.messages[0]["content"] == "Describe it." and example.left_out == ["messages[0].content[0] (image_url)"]
    report = check(path)
    assert report.counts["left_out_parts"] == 1 and not report.ok
    assert report.left_out[0]["row"] == 1 and report.left_out[0]["parts"] == ["messages[0].content[0] (image_url)"]
    assert cli.main(["check", str(path)]) == 1
    assert "left out  row 1, line 1" in capsys.readouterr().out


@pytest.mark.parametrize("content, reason", [
    ([{"type": "image_url", "value": "x.png"}], "hold no text (left out: messages[1].content[0] (image_url))"),
    ([{"type": "text", "value": "  "}], "hold no text"),
    ([], "hold no text"),
    ([{"type": "tool_call", "value": "{not json"}], "messages[1].content[0]: the tool call is not JSON"),
    ([3], "messages[1].content[0]: expected a content part object"),
])
def test_a_turn_left_empty_or_a_broken_part_is_a_bad_row(tmp_path, content, reason):
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]}
    loaded = reader.load(_write(tmp_path / "d.jsonl", [row, LF_SFT]))
    assert len(loaded.examples) == 1 and len(loaded.bad_rows) == 1
    assert reason in loaded.bad_rows[0].reason and loaded.bad_rows[0].line == 1


# ---------------------------------------------------------------- chosen_messages / rejected_messages


def _pair(i: int) -> dict:
    prompt = [_lf("system", ("text", "Answer yes or no.")), _lf("user", ("text", f"Is {i} even?"))]
    good, bad = ("Yes.", "No.") if i % 2 == 0 else ("No.", "Yes.")
    return {"chosen_messages": prompt + [_lf("assistant", ("text", good))],
            "rejected_messages": prompt + [_lf("assistant", ("text", bad))]}


def test_llamafactory_pairs_are_preference_data(tmp_path):
    mismatched = {"chosen_messages": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "x"}],
                  "rejected_messages": [{"role": "user", "content": "B"}, {"role": "assistant", "content": "y"}]}
    path = _write(tmp_path / "pairs.jsonl", [_pair(i) for i in range(6)] + [mismatched])
    loaded = reader.load(path)
    assert loaded.format == "preference" and "chosen_messages/rejected_messages" in loaded.evidence
    first = loaded.examples[0]
    assert [m["role"] for m in first.messages] == ["system", "user"] and (first.chosen, first.rejected) == ("Yes.", "No.")
    (bad,) = loaded.bad_rows
    assert bad.line == 7 and "differ at turn 1" in bad.reason
    report = check(path)
    assert report.preference["pairs"] == 6 and report.counts["role_order"] == 0 and report.counts["bad_rows"] == 1
    assert reader.to_normalized(first)["chosen"] == "Yes."


def test_llamafactory_pairs_become_dpo_training_rows(tmp_path, embedded_tokenizer):
    path = _write(tmp_path / "pairs.jsonl", [_pair(i) for i in range(6)])
    recipe = recipes.from_dict({"data": {"path": str(path), "max_length": 128}, "training": {"method": "dpo"}})
    prepared = training_data.prepare(recipe, embedded_tokenizer)
    assert prepared.format == "preference" and prepared.examples == 6 and len(prepared.train) == 6
    assert prepared.train[0] == {"prompt": [{"role": "system", "content": "Answer yes or no."},
                                            {"role": "user", "content": "Is 0 even?"}],
                                 "chosen": [{"role": "assistant", "content": "Yes."}],
                                 "rejected": [{"role": "assistant", "content": "No."}]}
    stats = training_data.pair_stats(embedded_tokenizer, prepared.train, 128)
    assert stats["pairs"] == 6 and stats["tokens"] > 0
