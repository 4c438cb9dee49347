"""Evaluation leakage: training text that holds an evaluation prompt is found the way
lm-evaluation-harness decontaminates (13-word n-grams, a short prompt whole), in `studio check`
(with the bundled prompt sets and any named one) and the Dataset tab's card; the bundled samples
hold none of the bundled prompts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.dataset import checks
from core.dataset.leakage import LeakIndex
from core.eval.prompts import leak_index, leak_warnings
from core.workspace import ASSETS, workspace
from tests.helpers.server import ROOT

LONG = ("Explain in plain words how a refrigerator moves heat out of its inside and why the coils at the back "
        "feel warm to the touch")


def test_ngrams_and_short_prompts_match_regardless_of_case_and_punctuation():
    index = LeakIndex()
    index.add("set.jsonl", "p-long", LONG)
    index.add("set.jsonl", "p-short", "Why do cats purr?")
    # 13 consecutive words of the long prompt, in other casing and punctuation, inside other text
    assert index.find("Tell me: HOW a refrigerator moves heat out of its inside, and why the coils... thanks") == \
        [("set.jsonl", "p-long")]
    assert index.find("so why do cats purr at all") == [("set.jsonl", "p-short")]
    assert index.find("why do cats") == [] and index.find("cats purr why do") == []  # a part, or shuffled, is not a leak
    assert index.find("a refrigerator moves heat out of its inside and why the coils") == []  # 12 words: not enough


def _leaky(tmp_path):
    prompts = tmp_path / "heldout.jsonl"
    prompts.write_text(json.dumps({"id": "h-1", "prompt": "What colour is a ripe lime when it falls from the tree?"}) + "\n")
    rows = [{"messages": [{"role": "user", "content": "Quick one. What colour is a ripe lime when it falls from the tree?"},
                          {"role": "assistant", "content": "Yellow."}]},
            {"messages": [{"role": "user", "content": "Name a citrus fruit."}, {"role": "assistant", "content": "A lime."}]}]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return data, prompts


def test_a_check_names_the_record_and_the_prompt(tmp_path):
    data, prompts = _leaky(tmp_path)
    report = checks.check(str(data), "auto", leaks=leak_index([prompts]))
    assert report.counts["eval_leaks"] == 1 and not report.ok
    assert report.eval_leaks == [{"id": "line-1", "row": 1, "line": 1, "set": "heldout.jsonl", "prompt": "h-1"}]
    assert report.findings[0] == ["evaluation leak: holds prompt h-1 of heldout.jsonl"]
    assert checks.check(str(data), "auto").counts["eval_leaks"] == 0  # no index, no leak check


def test_studio_check_takes_eval_sets(tmp_path):
    data, prompts = _leaky(tmp_path)
    done = subprocess.run([sys.executable, "-m", "studio.cli", "check", str(data), "--eval-set", str(prompts)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "evaluation leak" in done.stdout and "h-1 of heldout.jsonl" in done.stdout, done.stdout
    missing = subprocess.run([sys.executable, "-m", "studio.cli", "check", str(data), "--eval-set", str(tmp_path / "no.jsonl")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such prompt set" in missing.stderr


@pytest.mark.parametrize("sample", sorted(p.name for p in ASSETS.glob("*.jsonl")))
def test_bundled_samples_hold_no_bundled_prompt(sample):
    """What the bundled recipes train on never holds what the bundled prompt sets evaluate."""
    assert checks.check(str(ASSETS / sample), "auto", leaks=leak_index()).eval_leaks == []


def test_the_dataset_tab_card(tmp_path):
    from studio.ui.dataset import render

    data, prompts = _leaky(tmp_path)
    cards = render.cards_html(checks.check(str(data), "auto", leaks=leak_index([prompts])))
    assert "Evaluation leaks" in cards and "✗ bad" in cards


def test_a_run_is_warned_before_start(tmp_path):
    from core import recipes

    data, prompts = _leaky(tmp_path)
    recipe = recipes.from_dict({"name": "leaky", "model": {"name": "embedded"}, "data": {"path": str(data)},
                                "eval": {"prompts": str(prompts)}})
    warning, = leak_warnings(recipe)
    assert warning.startswith("1 record(s) of train.jsonl hold evaluation prompts (h-1 (heldout.jsonl); first: line 1)")
    clean = recipes.from_dict({"name": "clean", "model": {"name": "embedded"}, "data": {"path": str(ASSETS / "friction_sample.jsonl")}})
    assert leak_warnings(clean) == []


def test_studio_train_strict_refuses_a_leaky_run(tmp_path):
    data, prompts = _leaky(tmp_path)
    recipe = tmp_path / "leaky.yaml"
    recipe.write_text(f"name: leaky\nmodel: {{name: embedded}}\ndata: {{path: {data}}}\neval: {{prompts: {prompts}}}\n"
                      "training: {max_steps: 1}\n")
    done = subprocess.run([sys.executable, "-m", "studio.cli", "train", str(recipe), "--strict"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "hold evaluation prompts" in done.stderr and "not started" in done.stderr, done.stderr
    assert not (workspace().root / "runs").exists() or not list((workspace().root / "runs").iterdir())
