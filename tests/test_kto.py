"""KTO: replies labelled good or bad, from LLaMA-Factory's KTO layout, trl's prompt/completion/label,
preference pairs (split in two) and the Dataset tab's thumbs review; the balance check with trl's
weighting advice; a run on the tiny model that raises its reward margin and resumes; the Chat
tab's picks written as KTO data."""

from __future__ import annotations

import json

import pytest

from core import recipes
from core.dataset import checks, reader, review
from core.dataset.balance import balance
from core.eval import preferences
from core.train import run_dir as run_files
from core.train import training
from tests.helpers.data import make_recipe, write_chats, write_pairs


def _rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _labelled(path, n=8):
    """LLaMA-Factory's kto_en_demo layout: a chat and a true/false label on its last reply."""
    return _rows(path, [{"messages": [{"role": "user", "content": f"Is {i} even?"},
                                      {"role": "assistant", "content": "Yes, it is." if i % 2 == 0 else "As an AI I can't say."}],
                         "label": i % 2 == 0} for i in range(n)])


def test_the_three_layouts_are_read_with_their_labels(tmp_path):
    factory = reader.load(_labelled(tmp_path / "lf.jsonl"))
    assert factory.format == "labelled" and "label" in factory.evidence
    assert [e.label for e in factory.examples] == [i % 2 == 0 for i in range(8)]
    sharegpt = reader.load(_rows(tmp_path / "tag.jsonl", [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}], "kto_tag": False}]))
    assert sharegpt.format == "labelled" and sharegpt.examples[0].label is False
    assert sharegpt.examples[0].messages[-1] == {"role": "assistant", "content": "hello"}
    trl = reader.load(_rows(tmp_path / "trl.jsonl", [
        {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}], "label": True},
        {"prompt": "2+3?", "completion": "6", "label": False},
        {"prompt": "2+4?", "completion": "6", "label": "yes"}]))
    assert trl.format == "labelled" and [e.label for e in trl.examples] == [True, False]
    assert trl.examples[1].messages == [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "6"}]
    assert len(trl.bad_rows) == 1 and "label" in trl.bad_rows[0].reason and trl.bad_rows[0].line == 3
    # a `label` that is a class number is some other dataset's field: the chat is read as it is
    plain = reader.load(_rows(tmp_path / "cls.jsonl", [{"messages": [{"role": "user", "content": "x"}], "label": 3}]))
    assert plain.format == "messages" and plain.examples[0].label is None


def test_the_check_grades_the_balance_with_the_weights_to_set(tmp_path):
    assert balance(10, 10)["status"] == "good" and balance(12, 10)["advice"] == ""
    tilted = balance(30, 10)
    assert tilted["status"] == "warn" and "training.desirable_weight to 0.33-0.44" in tilted["advice"]
    assert "training.undesirable_weight to 2.25-3.00" in tilted["advice"]
    assert balance(5, 10, desirable_weight=2.4)["status"] == "good"  # the weights even it out
    assert balance(5, 0)["status"] == "bad" and "no bad ones" in balance(5, 0)["advice"]
    path = _rows(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": f"q{i}"},
                                                      {"role": "assistant", "content": f"a{i}"}], "label": i < 6}
                                        for i in range(8)])
    report = checks.check(path)
    assert report.labels["good"] == 6 and report.labels["bad"] == 2
    assert report.metrics["label_balance"]["status"] == "warn" and "desirable_weight" in report.metrics["label_balance"]["advice"]
    assert report.to_json()["labels"]["ratio"] == 3.0


def test_pairs_reviews_and_labels_all_become_kto_replies(tmp_path):
    chats = write_chats(tmp_path / "c.jsonl", 6)
    examples = reader.load(chats).examples
    state = review.open_review(chats)
    state.set_label(examples[0].id, True)                 # thumbs up
    state.set_label(examples[1].id, False)                # thumbs down
    state.set_status(examples[2].id, "approved")          # approved: good
    state.set_status(examples[3].id, "rejected")          # rejected: bad
    state.set_label(examples[4].id, True)
    state.set_status(examples[4].id, "rejected")          # a labelled row the reviewer threw out
    kept, unlabelled = review.labelled(chats, examples)
    assert [(e.id, e.label) for e in kept] == [(examples[0].id, True), (examples[1].id, False),
                                              (examples[2].id, True), (examples[3].id, False)]
    assert unlabelled == 1  # record 6: no label, still pending
    assert state.label_counts() == {"good": 2, "bad": 1}
    with pytest.raises(review.ReviewError):
        state.set_label(examples[0].id, "maybe")
    # SFT does not learn to write a reply marked bad (nor a rejected one)
    assert [e.id for e in review.apply_review(chats, examples)] == [examples[i].id for i in (0, 2, 5)]
    pairs = write_pairs(tmp_path / "p.jsonl", 2)
    split, _ = review.labelled(pairs, reader.load(pairs).examples)
    assert [(e.label, e.messages[-1]["content"]) for e in split][:2] == [(True, "Yes, it is."),
                                                                        (False, "As an AI I cannot know that.")]


def test_the_thumbs_review_exports_a_file_kto_reads_back(tmp_path):
    chats = write_chats(tmp_path / "c.jsonl", 4)
    examples = reader.load(chats).examples
    state = review.open_review(chats)
    state.set_label(examples[0].id, True)
    state.set_label(examples[1].id, False)
    out = review.export_reviewed(chats, examples, "messages", out=tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in out.path.read_text().splitlines()]
    assert [row.get("label") for row in rows] == [True, False, None, None]
    again = review.export_reviewed(chats, examples, "messages", style="original", out=tmp_path / "orig.jsonl")
    assert [json.loads(line).get("label") for line in again.path.read_text().splitlines()][:2] == [True, False]


def test_a_kto_run_raises_its_margin_and_resumes(tmp_path, tiny_model_dir):
    data = _labelled(tmp_path / "kto.jsonl", 8)
    recipe = make_recipe(tiny_model_dir, data, method="kto", max_steps=8, save_steps=8, learning_rate=5e-3,
                         logging_steps=1, batch_size=4)
    plan = training.plan(recipe)
    assert plan["trainer"] == "KTOTrainer" and plan["train_tokens"]["good"] == 4 and plan["train_tokens"]["bad"] == 4
    assert plan["labels"]["status"] == "good" and plan["trainer_config"]["desirable_weight"] == 1.0
    run = tmp_path / "run"
    trainer, stopped = training.train(recipe, run, log=lambda _: None)
    assert not stopped and trainer.state.global_step == 8
    train = [r for r in run_files.read_metrics(run) if r["split"] == "train"]
    assert all("kl" in r and "rewards/margins" in r for r in train)
    margins = [r["rewards/margins"] for r in train]
    assert sum(margins[-2:]) / 2 > sum(margins[:2]) / 2, margins  # good replies pull away from bad ones
    recipe.training.max_steps = 9
    trainer, _ = training.train(recipe, run, resume="last", log=lambda _: None)
    assert trainer.state.global_step == 9


def test_kto_refuses_what_it_cannot_train(tmp_path, tiny_model_dir):
    with pytest.raises(recipes.RecipeError, match="training.batch_size .* at least 2 for kto"):
        make_recipe(tiny_model_dir, _labelled(tmp_path / "k.jsonl"), method="kto", batch_size=1)
    with pytest.raises(recipes.RecipeError, match="holds no replies labelled good or bad"):
        training.plan(make_recipe(tiny_model_dir, write_chats(tmp_path / "c.jsonl"), method="kto"))
    tilted = _rows(tmp_path / "t.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}", "label": i < 6} for i in range(8)])
    plan = training.plan(make_recipe(tiny_model_dir, tilted, method="kto"))
    assert any("desirable_weight" in warning for warning in plan["warnings"])


def test_chat_picks_are_written_as_kto_replies(tmp_path):
    prompt = [{"role": "user", "content": "Capital of France?"}]
    preferences.save_preference(prompt, "Paris.", "Lyon.", chosen_side="tuned")
    preferences.save_preference(prompt, "It is Paris.", "Marseille.", chosen_side="base")
    out = preferences.export_kto()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["completion"][0]["content"], row["label"]) for row in rows] == [
        ("Paris.", True), ("Lyon.", False), ("It is Paris.", True), ("Marseille.", False)]
    assert all(row["prompt"] == prompt for row in rows)
    loaded = reader.load(out)
    assert loaded.format == "labelled" and [e.label for e in loaded.examples] == [True, False, True, False]


def test_thumbs_on_plain_chats_train_kto_with_an_eval_split_and_a_best_checkpoint(tmp_path, tiny_model_dir):
    chats = write_chats(tmp_path / "c.jsonl", 8)
    state = review.open_review(chats)
    for i, example in enumerate(reader.load(chats).examples):
        state.set_label(example.id, i % 2 == 0)
    recipe = recipes.from_dict({"name": "t", "model": {"name": str(tiny_model_dir)},
                                "data": {"path": str(chats), "max_length": 128, "eval_split": 0.25},
                                "training": {"method": "kto", "max_steps": 4, "batch_size": 2, "learning_rate": 1e-3,
                                             "save_steps": 2, "eval_steps": 2, "logging_steps": 1, "load_best_at_end": True}})
    plan = training.plan(recipe)
    assert plan["train_rows"] + plan["eval_rows"] == 8 and plan["labels"]["good"] + plan["labels"]["bad"] == 6
    run = tmp_path / "run"
    training.train(recipe, run, log=lambda _: None)
    evals = [r for r in run_files.read_metrics(run) if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4] and all("eval_loss" in r or "loss" in r for r in evals)
    assert (run / "best").is_dir()
