"""The Chat tab's handlers, called directly: both panes stream, <think> renders collapsed with its
length, retry/clear/send-to-dataset work, bad tuned sides become readable messages, A/B runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gradio as gr
import pytest

from studio.ui.chat import ab
from studio.ui.chat import tab as chat_tab
from tests.helpers.evals import SETTINGS
from tests.helpers.models import as_run


@pytest.fixture(scope="module")
def embedded_adapter_source(embedded_dir, tmp_path_factory) -> Path:
    from tests.helpers.models import make_adapter

    return make_adapter(embedded_dir, tmp_path_factory.mktemp("tab-embedded-adapter") / "adapter", seed=1, alpha=64)


@pytest.fixture
def run_adapter(adapter_source, studio_home) -> Path:
    return as_run(adapter_source, studio_home)


@pytest.fixture
def embedded_run_adapter(embedded_adapter_source, studio_home) -> Path:
    return as_run(embedded_adapter_source, studio_home, "embedded-run")


def chat(message, conversation, base, tuned, max_new_tokens=24):
    return list(chat_tab.send_message(message, conversation, base, tuned, "", 0.0, 1.0, max_new_tokens, 0))


def test_the_tab_builds_and_reads_the_runs_whenever_it_is_shown():
    """The tuned-side picker is read again on page load and when the tab is selected (issue 22)."""
    with gr.Blocks() as app:
        with gr.Tab("Chat") as page:
            chat_tab.build_chat_tab(shown=[app.load, page.select])
    events = {target[1] for fn in app.fns.values() if fn.fn is chat_tab.refresh_tuned for target in fn.targets}
    assert {"load", "select", "click"} <= events
    assert len(app.fns) > 10 and any(fn.fn is chat_tab.send_message for fn in app.fns.values())


def test_both_panes_stream_and_show_speed(embedded_run_adapter):
    updates = chat(" What is the capital of France? ", None, "embedded", str(embedded_run_adapter), 12)
    streaming = [u for u in updates if u[0][-1:] and u[1][-1:] and u[0][-1]["role"] == u[1][-1]["role"] == "assistant"
                 and "generating" in u[2] + u[3]]
    assert any(u[0][-1]["content"] and u[1][-1]["content"] for u in streaming), "panes never showed partial text together"
    base_chat, tuned_chat, base_stats, tuned_stats, conversation, status, box = updates[-1]
    assert box == "" and base_chat[0] == {"role": "user", "content": "What is the capital of France?"}
    assert "tokens/s" in base_stats and "first token after" in tuned_stats and "generating" not in base_stats
    assert len(conversation["base"]) == len(conversation["tuned"]) == 2
    assert conversation["base"][1]["content"] != conversation["tuned"][1]["content"]


def test_without_a_tuned_side_only_the_base_answers(tiny_model_dir):
    *_, last = chat("Hi", None, str(tiny_model_dir), "")
    assert last[0] and last[1] == [] and "only the base model" in last[5]


def test_think_blocks_render_collapsed_with_their_length():
    shown = chat_tab.to_chatbot([{"role": "user", "content": "2+2?"},
                                 {"role": "assistant", "content": "<think>two plus two</think>Four."}])
    assert shown[1]["metadata"] == {"title": "Thought · 3 words, 12 characters", "status": "done"}
    assert shown[1]["content"] == "two plus two" and shown[2] == {"role": "assistant", "content": "Four."}
    pending = chat_tab.to_chatbot([{"role": "assistant", "content": "<think>hmm"}])
    assert pending[0]["metadata"]["status"] == "pending" and len(pending) == 1


def test_retry_replaces_the_last_exchange_and_clear_empties(tiny_model_dir, run_adapter):
    conversation = chat("Hello", None, str(tiny_model_dir), str(run_adapter))[-1][4]
    conversation = chat("Again", conversation, str(tiny_model_dir), str(run_adapter))[-1][4]
    retried = list(chat_tab.retry_last(conversation, str(tiny_model_dir), str(run_adapter), *SETTINGS))[-1][4]
    assert [m["content"] for m in retried["base"] if m["role"] == "user"] == ["Hello", "Again"]
    assert retried["base"][-1] == conversation["base"][-1]  # greedy: the same answer again
    cleared = chat_tab.clear_chat()
    assert cleared[0] == cleared[1] == [] and cleared[4]["base"] == []


def test_send_to_dataset_saves_the_preferred_pane_as_chosen(embedded_run_adapter, studio_home):
    conversation = chat("What is the capital of France?", None, "embedded", str(embedded_run_adapter), 8)[-1][4]
    assert "Pick which" in chat_tab.send_to_dataset(conversation, None, "")
    message = chat_tab.send_to_dataset(conversation, chat_tab.RIGHT, "Be kind.")
    assert "Saved" in message and "1 examples" in message
    record = json.loads((studio_home / "datasets" / "chat_preferences.jsonl").read_text())
    assert record["prompt"] == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "What is the capital of France?"}]
    assert record["chosen"] == [conversation["tuned"][-1]]
    assert record["rejected"] == [conversation["base"][-1]]


def test_bad_tuned_sides_become_readable_messages(tiny_model_dir, studio_home, adapter_source, tmp_path):
    mismatched = studio_home / "runs" / "other" / "adapter"
    shutil.copytree(adapter_source, mismatched)
    config = json.loads((mismatched / "adapter_config.json").read_text())
    (mismatched / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "acme/big-model"}))
    *_, last = chat("Hello", None, str(tiny_model_dir), str(mismatched))
    assert "acme/big-model" in last[5] and str(tiny_model_dir) in last[5] and last[6] == "Hello"
    *_, outside = chat("Hello", None, str(tiny_model_dir), str(tmp_path))
    assert "outside the folders" in outside[5]


def test_compare_choices_list_the_runs_results(run_adapter):
    update = chat_tab.compare_choices(str(run_adapter))
    assert [label for label, _ in update["choices"]] == ["final", "checkpoint-4"]


def test_ab_run_fills_both_tables_and_offers_downloads(tiny_model_dir, run_adapter, tmp_path, studio_home):
    upload = tmp_path / "mine.jsonl"
    upload.write_text(json.dumps({"id": "q1", "prompt": "Capital of France?", "keywords": ["Paris"]}) + "\n"
                      + "{oops\n" + json.dumps({"id": "q2", "prompt": "Say hi", "should_refuse": False}) + "\n")
    checkpoint = str(run_adapter.parent / "checkpoints" / "checkpoint-4")
    updates = list(ab.run_ab(None, str(upload), None, str(tiny_model_dir), str(run_adapter), [checkpoint], *SETTINGS))
    status, per_prompt, aggregate, files = updates[-1]
    assert status.startswith("Done: 2 prompts × 3 sides") and "skipped line 2" in status
    assert list(aggregate.columns) == ["metric", "base", "tuned", "checkpoint-4"]
    view = aggregate.set_index("metric")
    view.index = [label.split(" (")[0] for label in view.index]  # "keyword coverage (more is better)"
    assert view.loc["prompts"].tolist() == ["2", "2", "2"]
    # only q1 names keywords and only q2 says whether to refuse: every side is judged on those alone
    assert view.loc["refused, of the prompts it should refuse"].tolist() == ["—", "—", "—"]
    assert all(value.endswith("%") for value in view.loc["keyword coverage"])
    per_prompt = per_prompt["value"]
    assert list(per_prompt["prompt_id"]) == ["q1", "q2"] and "checkpoint-4: answer" in per_prompt.columns
    assert sorted(Path(f).suffix for f in files) == [".csv", ".jsonl"]
    assert len(list((studio_home / "exports").glob("ab-*.jsonl"))) == 1
    kept = list((run_adapter.parent / "ab").glob("ab-*.jsonl"))  # the run keeps it for its model card
    assert len(kept) == 1 and len(kept[0].read_text().splitlines()) == 6
    first = list(ab.run_ab(None, None, None, str(tiny_model_dir), "", [], *SETTINGS))[-1]
    assert "Pick a bundled prompt set" in first[0]


def test_bundled_prompt_sets_are_offered():
    names = [label for label, _ in ab.prompt_set_choices()]
    assert names == ["cognitive modes", "epistemic stance", "friction pushback", "rag grounding", "rag grounding retrieval"]


def test_the_first_answer_counts_the_model_loading_in_its_wait():
    """Issue 22: the first answer said 'first token after 0.44 s' after a 20 s load."""
    from core.chat.engine import PaneState

    pane = PaneState(text="Paris.", token_ids=[1, 2, 3], started=0.0, first_token_at=0.44, ended_at=1.0)
    assert "plus **12.5 s** loading the model first" in chat_tab.pane_stats(pane, 12.5)
    assert "loading" not in chat_tab.pane_stats(pane, 0.1)  # already in memory: nothing to say


def test_refreshing_the_tuned_list_never_overwrites_what_the_person_typed_meanwhile():
    """The refresh on showing the tab could land after a person typed a path, and put back the
    value it started with (the chat then ran with the base model alone)."""
    update = chat_tab.refresh_tuned("")
    assert "value" not in update and "choices" in update
