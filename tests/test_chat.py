"""core.chat.engine: both sides stream at once from one base, the base side is the plain base model,
seeds reproduce, adapters for another base are refused, preferences land in a loadable file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.chat import engine, tuned
from core.chat.engine import BASE, ChatEngine, Sampling, split_think
from core.chat.tuned import AdapterMismatch, TunedModelError
from tests.helpers.models import make_adapter

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("tiny-adapter"))


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_dir) -> ChatEngine:
    return ChatEngine(str(tiny_model_dir))


def test_split_think_separates_reasoning_from_answer():
    assert split_think("<think>two and two</think>\nFour.") == engine.ThinkSplit("two and two", "Four.", True)
    assert split_think("<think>still going") == engine.ThinkSplit("still going", "", False)
    assert split_think("Just an answer.") == engine.ThinkSplit(None, "Just an answer.", True)
    assert "3 words, 11 characters" in engine.think_title(split_think("<think>two and two</think>x"))


def test_sampling_settings_are_checked():
    with pytest.raises(ValueError, match="top-p"):
        Sampling(top_p=0).check()
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=-1).check()


def test_both_sides_stream_at_the_same_time(tiny_engine, tiny_adapter):
    tuned = tiny_engine.attach(tiny_adapter)
    snapshots = list(tiny_engine.stream({BASE: QUESTION, tuned: QUESTION}, Sampling(max_new_tokens=24)))
    both_partial = [s for s in snapshots if s[BASE].text and s[tuned].text and not (s[BASE].done or s[tuned].done)]
    assert both_partial, "the two panes did not grow together"
    final = snapshots[-1]
    assert final[BASE].tokens == final[tuned].tokens == 24
    assert final[BASE].token_ids != final[tuned].token_ids, "the adapter changed nothing"
    assert final[BASE].ttft_s > 0 and final[BASE].tokens_per_s > 0 and final[BASE].error is None


def test_seed_reproduces_a_sampled_answer_while_sides_interleave(tiny_engine, tiny_adapter):
    tuned = tiny_engine.attach(tiny_adapter)
    settings = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=12, seed=7)
    first = list(tiny_engine.stream({BASE: QUESTION, tuned: QUESTION}, settings))[-1]
    alone = tiny_engine.generate(BASE, QUESTION, settings)
    other_seed = tiny_engine.generate(BASE, QUESTION, Sampling(temperature=1.0, top_p=0.9, max_new_tokens=12, seed=8))
    assert first[BASE].token_ids == alone.token_ids
    assert other_seed.token_ids != alone.token_ids


def test_stop_ends_generation_early(tiny_engine):
    import threading

    stop = threading.Event()
    for snapshot in tiny_engine.stream({BASE: QUESTION}, Sampling(max_new_tokens=400), stop):
        stop.set()
        last = snapshot
    assert last[BASE].done and last[BASE].tokens < 400


def test_a_full_model_folder_is_a_tuned_side(tiny_engine, tiny_model_dir):
    side = tiny_engine.attach(tiny_model_dir)
    assert tiny_engine.sources[side].kind == "model"
    out = tiny_engine.stream({BASE: QUESTION, side: QUESTION}, Sampling(max_new_tokens=8))
    final = list(out)[-1]
    assert final[side].token_ids == final[BASE].token_ids  # same weights, same greedy answer
    tiny_engine.detach(side)
    assert side not in tiny_engine.sides


def test_adapter_for_another_base_is_refused_naming_both(tiny_engine, tiny_model_dir, tmp_path):
    adapter = make_adapter(tiny_model_dir, tmp_path / "other", trained_on="other-org/other-model-7B")
    with pytest.raises(AdapterMismatch) as refused:
        tiny_engine.attach(adapter)
    assert "other-org/other-model-7B" in str(refused.value) and str(tiny_model_dir) in str(refused.value)


def test_embedded_base_is_recognised_under_each_of_its_names(tmp_path, embedded_dir):
    from core.models import EMBEDDED_HUB_ID

    for recorded in (EMBEDDED_HUB_ID, str(embedded_dir), "/another/home/models/smollm2-135m-instruct"):
        (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": recorded}))
        tuned.check_adapter_base(tmp_path, "embedded")
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"}))
    with pytest.raises(AdapterMismatch, match=r"Qwen/Qwen2.5-0.5B-Instruct.*embedded"):
        tuned.check_adapter_base(tmp_path, "embedded")


def test_tuned_source_reads_adapters_models_and_runs(tiny_adapter, tiny_model_dir, studio_home):
    assert tuned.tuned_source(tiny_adapter).kind == "adapter"
    assert tuned.tuned_source(tiny_model_dir).kind == "model"
    run = studio_home / "runs" / "demo-run"
    shutil.copytree(tiny_adapter, run / "checkpoints" / "checkpoint-2")
    (run / "status.json").write_text(json.dumps({"state": "completed"}))
    source = tuned.tuned_source(run)
    assert (source.kind, source.label) == ("adapter", "demo-run/checkpoint-2")
    assert ("demo-run · checkpoint-2", str(run / "checkpoints" / "checkpoint-2")) in tuned.tuned_options()
    with pytest.raises(TunedModelError, match="neither adapter_config.json"):
        tuned.tuned_source(studio_home / "datasets")


@pytest.mark.slow
def test_base_side_with_adapter_disabled_is_the_plain_base_model(embedded_dir, tmp_path):
    """Token for token: the base pane (adapter switched off, tuned pane generating beside it)
    equals a separately loaded base model's greedy output."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = make_adapter(embedded_dir, tmp_path / "adapter", seed=1)
    engine = ChatEngine("embedded")
    tuned = engine.attach(adapter)
    settings = Sampling(max_new_tokens=20, system_prompt="Answer in one sentence.")
    final = list(engine.stream({BASE: QUESTION, tuned: QUESTION}, settings))[-1]

    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    plain = AutoModelForCausalLM.from_pretrained(embedded_dir).eval()
    messages = [{"role": "system", "content": "Answer in one sentence."}] + QUESTION
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    expected = plain.generate(**inputs, max_new_tokens=20, do_sample=False)[0][inputs["input_ids"].shape[1]:].tolist()
    assert final[BASE].token_ids == expected
    assert final[tuned].token_ids != expected
    assert "Paris" in final[BASE].text
