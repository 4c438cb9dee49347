"""core.chat_template: one owner renders every prompt, and a run trained with its own template
keeps it: the adapter, best/ and checkpoints save it; chat, the merge and the Modelfile use it
(issue 23: a custom template was lost after training)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from core import chat_template, recipes
from core.train import training
from tests.helpers.server import ROOT

MARK = "TEMPLATE-MARK-7"
# ChatML with a default system turn only this template writes: a prompt rendered with it says so.
CUSTOM = ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + MARK + "<|im_end|>\n{% endif %}"
          "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_only_the_owner_calls_apply_chat_template():
    callers = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "apply_chat_template":
                callers.append(str(path.relative_to(ROOT)))
    assert sorted(set(callers)) == ["core/chat_template.py"]


def test_saved_template_reads_jinja_and_tokenizer_config(tmp_path):
    assert chat_template.saved_template(tmp_path) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": [{"name": "default", "template": "A"},
                                                                                  {"name": "tool_use", "template": "B"}]}))
    assert chat_template.saved_template(tmp_path) == "A"
    (tmp_path / "chat_template.jinja").write_text("J")
    assert chat_template.saved_template(tmp_path) == "J"


@pytest.fixture(scope="module")
def custom_run(tiny_model_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("custom-template")
    data = folder / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                                                     {"role": "assistant", "content": f"{2 * i}."}]}) + "\n"
                            for i in range(8)))
    recipe = recipes.from_dict({"name": "custom", "model": {"name": str(tiny_model_dir), "chat_template": CUSTOM},
                                "data": {"path": str(data), "max_length": 128, "eval_split": 0.25},
                                "training": {"max_steps": 2, "batch_size": 2, "save_steps": 1, "eval_steps": 1,
                                             "learning_rate": 1e-3}})
    run_dir = folder / "run"
    training.train(recipe, run_dir, log=lambda *_: None)
    return run_dir


def test_the_template_is_saved_with_the_adapter_best_and_checkpoints(custom_run):
    places = [custom_run / "adapter", *sorted((custom_run / "checkpoints").glob("checkpoint-*"))]
    if (custom_run / "best").is_dir():
        places.append(custom_run / "best")
    assert len(places) >= 3
    for place in places:
        assert chat_template.saved_template(place) == CUSTOM, place


def test_chat_renders_the_tuned_side_with_its_template(custom_run, tiny_model_dir):
    from core.chat.engine import BASE, ChatEngine, Sampling

    engine = ChatEngine(str(tiny_model_dir))
    side = engine.attach(custom_run / "adapter")
    messages = [{"role": "user", "content": "Hello"}]
    tuned = engine.tokenizer.decode(engine.prompt_ids(messages, Sampling(), side))
    base = engine.tokenizer.decode(engine.prompt_ids(messages, Sampling(), BASE))
    assert MARK in tuned and MARK not in base
    answers = engine.generate_batch([(BASE, messages), (side, messages)], Sampling(max_new_tokens=3))
    assert all(answer.done for answer in answers)


def test_the_merge_and_the_modelfile_use_the_runs_template(custom_run, tmp_path):
    from core.export import modelfile, pipeline
    from core.export.source import resolve_source

    merged = pipeline.merge(resolve_source(custom_run), tmp_path / "merged", say=lambda *_: None)
    assert chat_template.saved_template(merged) == CUSTOM
    assert modelfile.spec_from_folder(merged).system == MARK  # the template's own system turn, in the Modelfile
