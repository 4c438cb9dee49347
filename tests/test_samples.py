"""Samples: our rendering is the tokenizer's own template, token for token; the mask trains replies only."""

from __future__ import annotations

from core.dataset import samples
from core.dataset.reader import Example

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello there!"},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "<think>two and two</think>4"},
]


def test_rendering_equals_apply_chat_template_exactly(embedded_tokenizer):
    sample = samples.tokenize_example(embedded_tokenizer, Example("a", CHAT), max_length=1024)
    assert sample.text == embedded_tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert sample.input_ids == embedded_tokenizer.apply_chat_template(CHAT, tokenize=True, return_dict=True)["input_ids"]


def test_only_assistant_replies_and_their_end_marker_are_trained(embedded_tokenizer):
    sample = samples.tokenize_example(embedded_tokenizer, Example("a", CHAT), max_length=1024)
    trained = "".join(text for text, on in samples.mask_segments(embedded_tokenizer, sample) if on)
    assert trained == "Hello there!<|im_end|><think>two and two</think>4<|im_end|>"
    everything = samples.tokenize_example(embedded_tokenizer, Example("a", CHAT), max_length=1024, response_only=False)
    assert everything.trained_tokens == len(everything.input_ids)


def test_truncation_is_reported(embedded_tokenizer):
    sample = samples.tokenize_example(embedded_tokenizer, Example("a", CHAT), max_length=16)
    assert sample.truncated and len(sample.input_ids) == 16 and sample.full_length > 16


def test_stacking_joins_conversations_within_the_budget(embedded_tokenizer):
    convs = [Example(str(i), [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}])
             for i in range(10)]
    stacked, skipped = samples.build_samples(embedded_tokenizer, convs, max_length=1024, stack=4)
    assert skipped == []
    assert [s.example_ids for s in stacked] == [["0", "1", "2", "3"], ["4", "5", "6", "7"], ["8", "9"]]
    assert stacked[0].text.count("<|im_start|>assistant") == 4
    tight, _ = samples.build_samples(embedded_tokenizer, convs, max_length=60, stack=4)
    assert len(tight) > 3 and all(not s.truncated for s in tight)


def test_example_without_reply_is_skipped_with_reason(embedded_tokenizer):
    bad = Example("x", [{"role": "user", "content": "no reply"}])
    good = Example("y", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    built, skipped = samples.build_samples(embedded_tokenizer, [bad, good], max_length=64)
    assert [s.example_ids for s in built] == [["y"]]
    assert skipped[0][0] == "x" and "no assistant tokens" in skipped[0][1]
