"""GRPO rewards: each scorer on hand-made completions whose scores are known, the recipe's
reward set with weights, custom reward files and their hosting policy, the judge through a
stand-in Ollama server, and the sample-table collector trl's calls feed."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from core import recipes
from core.recipes import RecipeError
from core.train import grpo_data, reward_custom, rewards
from core.train.reward_judge import Judge, parse_grade
from core.workspace import ASSETS

THINK = r"^<think>.+?</think>\s*\S"


@pytest.mark.parametrize("completion, score", [
    ("<think>7+5 is 12</think> 12", 1.0),
    ("<think>\nmulti\nline\n</think>\nAnswer: 12", 1.0),  # dot matches newlines
    ("12 <think>late</think> x", 0.0),  # anchored at the start
    ("<think></think> 12", 0.0),  # empty reasoning
    ("<think>never closed 12", 0.0),
    ("<think>no answer after</think>   ", 0.0),
])
def test_format_reward(completion, score):
    assert rewards.format_score(completion, THINK) == score


@pytest.mark.parametrize("completion, reference, mode, score", [
    ("<think>6*7</think>The answer is 42.", "#### 42", "numeric", 1.0),  # GSM8K-style reference
    ("Answer: 1,234", 1234, "numeric", 1.0),  # thousands separator, numeric reference
    ("I think 41, no wait: 43", "42", "numeric", 0.0),  # the last number counts
    ("<think>it is 42</think> no idea", "42", "numeric", 0.0),  # reasoning is not the answer
    ("0.3333", "1/3 = 0.33333", "numeric", 0.0),  # outside the 1e-6 tolerance
    ("Answer: Paris.", "paris", "exact", 1.0),  # label, punctuation and case ignored
    ("Paris, France", "Paris", "exact", 0.0),
    ("Rome and Paris", ["paris", "rome|roma", "berlin"], "keyword", 2 / 3),
    ("anything", None, "exact", None),  # no reference: unscored
])
def test_answer_reward(completion, reference, mode, score):
    got = rewards.answer_score(completion, reference, mode=mode)
    assert got is None if score is None else got == pytest.approx(score)


def test_answer_reward_tolerance_and_case():
    assert rewards.answer_score("3.14", "3.14159", mode="numeric", tolerance=0.001) == 1.0
    assert rewards.answer_score("1000", "1001", mode="numeric", tolerance=0.01) == 1.0  # relative above 1
    assert rewards.answer_score("Paris", "paris", mode="exact", case_sensitive=True) == 0.0


@pytest.mark.parametrize("text, low, high, unit, tokens, score", [
    ("x" * 50, 10, 100, "chars", None, 1.0),
    ("x" * 5, 10, 100, "chars", None, 0.5),  # below: rises from 0 at length 0
    ("x" * 150, 10, 100, "chars", None, 0.5),  # above: falls to 0 at twice the maximum
    ("x" * 250, 10, 100, "chars", None, 0.0),
    ("one two three four", 0, 2, "words", None, 0.0),
    ("ignored", 0, 8, "tokens", 12, 0.5),  # tokens come from trl's completion_ids
])
def test_length_reward(text, low, high, unit, tokens, score):
    assert rewards.length_score(text, low=low, high=high, unit=unit, tokens=tokens) == pytest.approx(score)


def test_refusal_reward_uses_the_pattern_lists_refusal_regexes():
    patterns = rewards.refusal_patterns()  # the bundled assets/patterns.yaml
    refusal = "I'm sorry, but I can't help with that."
    answer = "Mix flour and water, then knead."
    assert rewards.refusal_score(refusal, True, patterns) == 1.0
    assert rewards.refusal_score(answer, True, patterns) == 0.0
    assert rewards.refusal_score(refusal, False, patterns) == 0.0
    assert rewards.refusal_score(answer, False, patterns) == 1.0
    assert rewards.refusal_score("<think>I cannot help... or can I?</think> Sure: knead it.", False, patterns) == 1.0
    assert rewards.refusal_score(refusal, None, patterns) is None  # the row doesn't say


def test_refusal_reward_names_a_broken_pattern_file(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("patterns: []\n")
    with pytest.raises(RecipeError, match=r"grpo.rewards.refusal.patterns: .* has no `refusal:` list"):
        rewards.refusal_patterns(bad)


def test_json_reward_with_and_without_schema():
    schema = {"type": "object", "required": ["name", "age"], "additionalProperties": False,
              "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                             "tags": {"type": "array", "items": {"enum": ["a", "b"]}}}}
    assert rewards.json_score('{"name": "Ann", "age": 3}') == 1.0
    assert rewards.json_score("not json {") == 0.0
    assert rewards.json_score('<think>plan</think>```json\n{"name": "Ann", "age": 3, "tags": ["a"]}\n```', schema) == 1.0
    assert rewards.json_score('{"name": "Ann"}', schema) == 0.0  # required key missing
    assert rewards.json_score('{"name": "Ann", "age": -1}', schema) == 0.0
    assert rewards.json_score('{"name": "Ann", "age": 3, "x": 1}', schema) == 0.0
    assert rewards.json_score('{"name": "Ann", "age": 3, "tags": ["c"]}', schema) == 0.0
    assert rewards.json_score('[1, 2]', {"type": "array"}) == 1.0


def _grpo_recipe(tmp_path, **reward_settings) -> recipes.Recipe:
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "2+2?"}], "answer": "4"}) + "\n")
    return recipes.from_dict({"data": {"path": str(data)}, "training": {"method": "grpo", "batch_size": 4},
                              "grpo": {"rewards": reward_settings}})


def test_reward_set_weights_and_total(tmp_path):
    recipe = _grpo_recipe(tmp_path, format={"pattern": "^Answer: ", "weight": 0.5},
                          answer={"mode": "numeric", "weight": 2.0}, length={"min": 0, "max": 20})
    built = rewards.build_rewards(recipe)
    assert [(r.name, r.weight, r.needs) for r in built] == [("format", 0.5, None), ("answer", 2.0, "answer"), ("length", 1.0, None)]
    scores = {r.name: r.score("2+2?", "Answer: 4", {"answer": "4"}, 3) for r in built}
    assert scores == {"format": 1.0, "answer": 1.0, "length": 1.0}
    assert rewards.weighted_total(scores, {r.name: r.weight for r in built}) == 3.5
    assert rewards.weighted_total({"format": None, "answer": 1.0}, {"format": 1, "answer": 2}) == 2.0
    assert rewards.weighted_total({"format": None}, {"format": 1}) is None


def test_bad_format_regex_names_the_field(tmp_path):
    with pytest.raises(RecipeError, match=r"grpo.rewards.format.pattern: bad regular expression"):
        rewards.build_rewards(_grpo_recipe(tmp_path, format={"pattern": "(unclosed"}))


# ---------------------------------------------------------------- custom rewards


def _write_reward(home, body: str, name: str = "mine.py"):
    folder = home / "rewards"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(body)
    return f"rewards/{name}"


def test_custom_reward_from_the_workspace(studio_home, tmp_path, monkeypatch):
    for var in ("STUDIO_DEMO", "SPACE_ID", "STUDIO_HOST", "STUDIO_SHARE", "STUDIO_AUTH"):
        monkeypatch.delenv(var, raising=False)
    path = _write_reward(studio_home, "def reward(prompt, completion, row):\n"
                                      "    return None if not row else float(completion.count('!') == int(row['answer']))\n")
    built = rewards.build_rewards(_grpo_recipe(tmp_path, custom={"path": path, "weight": 3}))
    assert built[0].score("p", "hi!!!!", {"answer": "4"}, None) == 1.0
    assert built[0].score("p", "hi!", {"answer": "4"}, None) == 0.0
    assert built[0].score("p", "hi!", {}, None) is None


@pytest.mark.parametrize("env, message", [
    ({"STUDIO_DEMO": "1"}, "demo mode"),
    ({"STUDIO_HOST": "0.0.0.0"}, "non-local address without a login"),
    ({"STUDIO_SHARE": "1"}, "non-local address without a login"),
])
def test_custom_reward_refused_where_it_would_run_a_visitors_code(studio_home, tmp_path, monkeypatch, env, message):
    for var in ("STUDIO_DEMO", "SPACE_ID", "STUDIO_HOST", "STUDIO_SHARE", "STUDIO_AUTH"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = _write_reward(studio_home, "def reward(prompt, completion, row):\n    return 1.0\n")
    with pytest.raises(RecipeError, match=message):
        rewards.build_rewards(_grpo_recipe(tmp_path, custom={"path": path}))


def test_a_start_with_custom_code_in_demo_mode_is_refused_before_anything_is_written(studio_home, tmp_path, monkeypatch):
    from core.train import runs

    monkeypatch.setenv("STUDIO_DEMO", "1")
    path = _write_reward(studio_home, "def reward(prompt, completion, row):\n    return 1.0\n")
    with pytest.raises(RecipeError, match="grpo.rewards.custom: custom reward code is turned off in demo mode"):
        recipe = _grpo_recipe(tmp_path, custom={"path": path})
        recipe.data.path = str(ASSETS / "grpo_format.jsonl")  # demo mode opens bundled data only
        runs.start(recipe)
    assert not any(runs.workspace().runs.iterdir())


def test_custom_reward_allowed_on_an_open_server_with_a_login(studio_home, tmp_path, monkeypatch):
    monkeypatch.delenv("STUDIO_DEMO", raising=False)
    monkeypatch.setenv("STUDIO_HOST", "0.0.0.0")
    monkeypatch.setenv("STUDIO_AUTH", "ann:secret")
    assert reward_custom.custom_code_refusal() is None
    monkeypatch.setenv("STUDIO_HOST", "::1")
    monkeypatch.delenv("STUDIO_AUTH")
    assert reward_custom.custom_code_refusal() is None  # loopback needs no login


def test_custom_reward_errors_name_the_problem(studio_home, tmp_path, monkeypatch):
    for var in ("STUDIO_DEMO", "SPACE_ID", "STUDIO_HOST", "STUDIO_SHARE", "STUDIO_AUTH"):
        monkeypatch.delenv(var, raising=False)
    outside = tmp_path / "evil.py"
    outside.write_text("def reward(prompt, completion, row):\n    return 1\n")
    with pytest.raises(RecipeError, match="outside the workspace"):
        reward_custom.load_custom(str(outside))
    with pytest.raises(RecipeError, match="is not a Python file"):
        reward_custom.load_custom("rewards/missing.py")
    with pytest.raises(RecipeError, match="has no function 'reward'"):
        reward_custom.load_custom(_write_reward(studio_home, "def score(a, b, c):\n    return 1\n", "a.py"))
    with pytest.raises(RecipeError, match=r"must accept \(prompt, completion, row\)"):
        reward_custom.load_custom(_write_reward(studio_home, "def reward(completion):\n    return 1\n", "b.py"))
    with pytest.raises(RecipeError, match="failed to load: ZeroDivisionError"):
        reward_custom.load_custom(_write_reward(studio_home, "1 / 0\n", "c.py"))
    built = rewards.build_rewards(_grpo_recipe(tmp_path, custom={"path": _write_reward(
        studio_home, "def reward(prompt, completion, row):\n    return 'high'\n", "d.py")}))
    with pytest.raises(RecipeError, match="returned 'high'; it must return a finite number or None"):
        built[0].score("p", "c", {}, None)


# ---------------------------------------------------------------- the judge


class _FakeOllama(BaseHTTPRequestHandler):
    """Ollama's /api/chat, answering with a fixed grade and remembering what it was asked."""
    asked: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOllama.asked.append(body)
        grade = "8" if "Paris" in body["messages"][0]["content"].split("Answer:")[-1] else "2"
        reply = {"model": body["model"], "created_at": "2026-01-01T00:00:00Z", "done": True,
                 "message": {"role": "assistant", "content": f"Score: {grade}"}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_judge_reward_through_a_stand_in_ollama():
    server = HTTPServer(("127.0.0.1", 0), _FakeOllama)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = Judge("ollama:judge-model", rubric="Is it the capital?", host=f"http://127.0.0.1:{server.server_port}")
        assert judge.score("Capital of France?", "Paris") == pytest.approx(7 / 9)
        assert judge.score("Capital of France?", "Lyon") == pytest.approx(1 / 9)
        assert _FakeOllama.asked[0]["model"] == "judge-model" and "Is it the capital?" in _FakeOllama.asked[0]["messages"][0]["content"]
    finally:
        server.shutdown()


def test_judge_unreachable_is_a_clear_error():
    judge = Judge("ollama:x", rubric="r", host="http://127.0.0.1:9")
    with pytest.raises(RecipeError, match="grpo.rewards.judge: Ollama at http://127.0.0.1:9 could not answer"):
        judge.score("q", "a")


def test_parse_grade():
    assert parse_grade("10") == 1.0 and parse_grade("I'd say 1.") == 0.0 and parse_grade("no number") is None


# ---------------------------------------------------------------- trl's calls and the sample table


def test_trl_rewards_score_batches_and_fill_the_sample_table(tmp_path):
    recipe = _grpo_recipe(tmp_path, format={"pattern": "^Answer: "}, answer={"mode": "numeric", "weight": 2})
    built = rewards.build_rewards(recipe)
    log = grpo_data.CompletionLog(built)
    funcs, weights = grpo_data.trl_rewards(built, log)
    assert [f.__name__ for f in funcs] == ["format", "answer"] and weights == [1.0, 2.0]
    prompts = [[{"role": "user", "content": "2+2?"}]] * 2
    completions = [[{"role": "assistant", "content": "Answer: 4"}], [{"role": "assistant", "content": "five"}]]
    reference = [json.dumps({"answer": "4"})] * 2
    assert funcs[0](prompts, completions, [[1, 2], [3]], reference=reference, trainer_state=None) == [1.0, 0.0]
    assert funcs[1](prompts, completions, [[1, 2], [3]], reference=reference, trainer_state=None) == [1.0, 0.0]
    rows = log.drain()
    assert rows == [{"prompt": "2+2?", "completion": "Answer: 4", "rewards": {"format": 1.0, "answer": 1.0}, "total": 3.0},
                    {"prompt": "2+2?", "completion": "five", "rewards": {"format": 0.0, "answer": 0.0}, "total": 0.0}]
    assert log.drain() == []


def test_prompt_rows_name_rows_missing_a_rewards_field():
    from core.dataset.example import Example

    examples = [
        Example("a", [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], source={"answer": "4"}, line=1),
        Example("b", [{"role": "user", "content": "3+3?"}], source={"question": "3+3?"}, line=2),
        Example("c", [{"role": "system", "content": "only a system turn"}], source={"answer": "1"}, line=3),
    ]
    rows, skipped = grpo_data.prompt_rows(examples, [("answer", "answer")])
    assert len(rows) == 1 and rows[0]["prompt"] == [{"role": "user", "content": "2+2?"}]
    assert json.loads(rows[0]["reference"]) == {"answer": "4", "completion": "4"}  # the worked reply is kept as a field
    assert skipped == [("b (line 2)", "no 'answer' (grpo.rewards.answer) field"), ("c (line 3)", "no user turn to use as the prompt")]


def test_local_judge_loads_once_and_answers(tiny_model_dir):
    judge = Judge(str(tiny_model_dir), rubric="Is it right?")
    first = judge.score("2+2?", "4")
    model = judge._local[1]
    second = judge.score("2+2?", "5")
    assert judge._local[1] is model  # one load for every completion
    for grade in (first, second):  # the random tiny model rarely writes a number: None is leaving it out
        assert grade is None or 0.0 <= grade <= 1.0


def test_every_reward_kind_is_one_row_of_one_table():
    """Issue 23: a reward was three if-chains in two files. Now each recipe section has one row."""
    from core.recipe_grpo import reward_names
    from core.train.rewards import REWARD_KINDS

    assert list(REWARD_KINDS) == reward_names()
    assert [n for n, kind in REWARD_KINDS.items() if kind.reads_field] == ["answer", "refusal"]
