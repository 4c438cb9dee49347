"""core.chat.batching and the engine's batches: a base + tuned pair costs one forward pass per
token, batched greedy answers equal one-at-a-time greedy answers (mixed adapters, left padding),
batches are sized from prompt lengths and memory, and an A/B over a prompt set is batched."""

from __future__ import annotations

import doctest

import pytest

from core.chat import batching
from core.chat.engine import BASE, ChatEngine, Sampling
from core.eval import ab, metrics
from core.eval import prompts as prompt_sets
from tests.helpers.models import make_adapter

SHORT = [{"role": "user", "content": "Hi"}]
LONG = [{"role": "user", "content": "Explain in detail why the sky looks blue at noon and red at sunset, please."}]
MIDDLE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def engine_and_tuned(tiny_model_dir, tmp_path_factory):
    engine = ChatEngine(str(tiny_model_dir))
    adapter = make_adapter(tiny_model_dir, tmp_path_factory.mktemp("batch-adapter"), alpha=64)
    return engine, engine.attach(adapter)


def test_doctests_hold():
    assert doctest.testmod(batching).failed == 0


def test_batches_keep_sides_together_and_stay_within_budget():
    lengths = [10, 200, 12, 190, 11, 205]
    batches = batching.plan_batches(lengths, rows_per_item=2, max_new_tokens=50, bytes_per_token=1000,
                                    budget_bytes=1_100_000, max_rows=8)
    assert sorted(i for batch in batches for i in batch) == list(range(6))
    for batch in batches:
        longest = max(lengths[i] for i in batch) + 50
        assert len(batch) * 2 <= 8 and len(batch) * 2 * longest * 1000 <= 1_100_000
    assert {frozenset(b) for b in batches} >= {frozenset({1, 5})}, "long prompts batch with long ones"
    one_row = batching.plan_batches([100, 100], rows_per_item=2, max_new_tokens=10, bytes_per_token=10**9,
                                    budget_bytes=1, max_rows=8)
    assert one_row == [[0], [1]], "an item over budget still runs, alone"


def test_a_pair_of_panes_decodes_in_one_forward_pass_per_token(engine_and_tuned):
    engine, tuned = engine_and_tuned
    batch_sizes = []
    handle = engine.base.register_forward_pre_hook(
        lambda module, args, kwargs: batch_sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        final = list(engine.stream({BASE: MIDDLE, tuned: MIDDLE}, Sampling(max_new_tokens=10)))[-1]
    finally:
        handle.remove()
    assert batch_sizes and set(batch_sizes) == {2}, f"forward passes with batch sizes {batch_sizes}"
    assert len(batch_sizes) <= 10, "one forward pass per token for both panes"
    assert final[BASE].token_ids != final[tuned].token_ids, "both rows ran the base weights"


def test_mixed_adapter_left_padded_greedy_equals_one_at_a_time(engine_and_tuned):
    engine, tuned = engine_and_tuned
    settings = Sampling(max_new_tokens=16)
    rows = [(BASE, SHORT), (tuned, LONG), (tuned, SHORT), (BASE, LONG), (BASE, MIDDLE), (tuned, MIDDLE)]
    batched = engine.generate_batch(rows, settings)
    alone = [engine.generate(side, messages, settings) for side, messages in rows]
    assert [b.token_ids for b in batched] == [a.token_ids for a in alone]
    assert [b.text for b in batched] == [a.text for a in alone]
    assert all(b.error is None and b.ttft_s is not None and b.tokens_per_s > 0 for b in batched)


def test_sampling_in_a_batch_reproduces_each_row_alone(engine_and_tuned):
    engine, tuned = engine_and_tuned
    settings = Sampling(temperature=0.9, top_p=0.95, max_new_tokens=10, seed=3)
    batched = engine.generate_batch([(BASE, LONG), (tuned, SHORT)], settings)
    assert batched[0].token_ids == engine.generate(BASE, LONG, settings).token_ids
    assert batched[1].token_ids == engine.generate(tuned, SHORT, settings).token_ids


def test_prompt_set_runs_in_batches_with_the_answers_of_one_at_a_time(engine_and_tuned, tiny_model_dir, tmp_path):
    engine, _ = engine_and_tuned
    adapter = make_adapter(tiny_model_dir, tmp_path / "ab-adapter", seed=4, alpha=64)
    prompts = [prompt_sets.Prompt(f"p{i}", m) for i, m in enumerate([SHORT, LONG, MIDDLE, SHORT + [
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Tell me a fact."}]])]
    settings = Sampling(max_new_tokens=12)
    batch_sizes = []
    handle = engine.base.register_forward_pre_hook(
        lambda module, args, kwargs: batch_sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        rows = [p.row for p in ab.run_prompt_set(engine, prompts, settings, {BASE: None, "tuned": str(adapter)})]
    finally:
        handle.remove()
    assert max(batch_sizes) == 8, "all four prompts, both sides, in one batch"
    tuned = engine.attach(adapter)
    for row in rows:
        prompt = next(p for p in prompts if p.id == row["prompt_id"])
        alone = engine.generate(BASE if row["side"] == BASE else tuned, prompt.messages, settings)
        assert row["answer"] == alone.text, (row["side"], row["prompt_id"])
    assert [r["side"] for r in metrics.aggregate(rows)] == [BASE, "tuned"]


@pytest.mark.slow
def test_embedded_model_batched_greedy_equals_one_at_a_time(embedded_dir, tmp_path):
    engine = ChatEngine(str(embedded_dir))
    tuned = engine.attach(make_adapter(embedded_dir, tmp_path / "adapter", alpha=32))
    settings = Sampling(max_new_tokens=24)
    rows = [(side, messages) for messages in (SHORT, LONG, MIDDLE) for side in (BASE, tuned)]
    batched = engine.generate_batch(rows, settings)
    alone = [engine.generate(side, messages, settings) for side, messages in rows]
    assert [b.token_ids for b in batched] == [a.token_ids for a in alone]


def _count_peft_mixed(monkeypatch) -> list:
    """Count peft's mixed-adapter forwards (the slow path the row scale replaces)."""
    from peft.tuners.lora import layer as lora_layer

    calls = []
    original = lora_layer.LoraLayer._mixed_batch_forward

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(lora_layer.LoraLayer, "_mixed_batch_forward", counted)
    return calls


def test_base_and_one_adapter_use_row_scales_and_restore_them(engine_and_tuned, monkeypatch):
    from peft.tuners.lora import LoraLayer

    engine, tuned = engine_and_tuned
    calls = _count_peft_mixed(monkeypatch)
    rows = [(BASE, LONG), (tuned, LONG), (tuned, SHORT), (BASE, SHORT)]
    batched = engine.generate_batch(rows, Sampling(max_new_tokens=12))
    assert not calls, "base + one plain LoRA adapter needs no per-layer split of the batch"
    alone = [engine.generate(side, messages, Sampling(max_new_tokens=12)) for side, messages in rows]
    assert [b.token_ids for b in batched] == [a.token_ids for a in alone]
    scales = {type(m.scaling[n]) for m in engine.peft.modules() if isinstance(m, LoraLayer) for n in m.scaling}
    assert scales == {float}, "every adapter's scale is a number again after the batch"


def test_two_adapters_or_a_dora_adapter_keep_peft_mixed_batches(engine_and_tuned, tiny_model_dir, tmp_path, monkeypatch):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core.chat import adapter_rows

    engine, tuned = engine_and_tuned
    other = engine.attach(make_adapter(tiny_model_dir, tmp_path / "second", seed=7, alpha=64))
    calls = _count_peft_mixed(monkeypatch)
    rows = [(BASE, MIDDLE), (tuned, MIDDLE), (other, MIDDLE)]
    batched = engine.generate_batch(rows, Sampling(max_new_tokens=8))
    assert calls, "two adapters in one batch go through peft's mixed batches"
    assert [b.token_ids for b in batched] == [engine.generate(s, m, Sampling(max_new_tokens=8)).token_ids for s, m in rows]
    engine.detach(other)

    torch.manual_seed(1)
    dora = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                          LoraConfig(r=4, target_modules=["q_proj"], use_dora=True, init_lora_weights=False))
    assert adapter_rows.row_scale(dora, [None, "default"]) is None, "DoRA is not `base + scale * delta`"
    assert adapter_rows.row_scale(engine.peft, [None, None]) is None


def test_the_base_side_leaves_adapters_once_per_answer_not_per_token(engine_and_tuned, monkeypatch):
    engine, tuned = engine_and_tuned
    engine.generate(tuned, MIDDLE, Sampling(max_new_tokens=2))  # the last state: the adapter on
    entered = []
    original = type(engine.peft).disable_adapter

    def counted(self):
        entered.append(1)
        return original(self)

    monkeypatch.setattr(type(engine.peft), "disable_adapter", counted)
    answer = engine.generate(BASE, LONG, Sampling(max_new_tokens=12))
    assert answer.tokens > 2 and len(entered) == 1, f"disable_adapter entered {len(entered)} times"


def test_decode_threads_are_measured_and_the_faster_kept(monkeypatch):
    import torch

    from core.chat import cpu_threads

    default = torch.get_num_threads()
    monkeypatch.delenv(cpu_threads.ENV, raising=False)
    assert cpu_threads.choose("cuda", lambda n: 1.0)["threads"] is None
    if default > 1:
        slow_team = cpu_threads.choose("cpu", lambda n: 1.0 if n > 1 else 0.5)
        assert slow_team["threads"] == 1 and "faster" in slow_team["why"]
        assert cpu_threads.choose("cpu", lambda n: 1.0 if n > 1 else 0.95)["threads"] == default, "not clearly faster"
        assert torch.get_num_threads() == default, "measuring leaves torch's count as it was"
    monkeypatch.setenv(cpu_threads.ENV, "3")
    assert cpu_threads.choose("cpu", lambda n: 1.0)["threads"] == 3
    monkeypatch.setenv(cpu_threads.ENV, "many")
    assert cpu_threads.choose("cpu", lambda n: 1.0)["threads"] is None
