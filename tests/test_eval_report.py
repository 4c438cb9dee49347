"""core.eval's scoring, statistics, retrieval, report and verdict on hand-made answers with known
values; `studio eval --fail-on` parsing; the model card's evaluation section."""

from __future__ import annotations

import json

import pytest

from core.eval import metrics, report, stats
from core.eval.prompts import Prompt, read_prompt_set
from core.eval.retrieval import retrieve
from studio.cli import eval as cli_eval
from tests.helpers.evals import PATTERNS, prompt, reply


@pytest.mark.parametrize("text, tokens, should_refuse, expected", [
    ("<think>Let me think about the capital of", 64, False, "cut_off_in_think"),   # the budget went to thinking
    ("<think>hm</think>Paris is the capital of France.", 12, False, "substantive"),
    ("<think>hm</think>", 10, False, "no_answer"),
    ("Paris is the capital and the largest city of", 64, False, "cut_off"),
    ("Sorry, but I can't help with that.", 9, False, "refused"),                    # a refusal where an answer was expected
    ("Sorry, but I can't help with that.", 9, True, "substantive"),                 # declining was the answer asked for
    ("Paris.", 2, False, "too_short"),
])
def test_outcome_of_hand_made_answers(text, tokens, should_refuse, expected):
    row = metrics.score(prompt(should_refuse=should_refuse), "tuned", reply(text, tokens), PATTERNS, max_new_tokens=64)
    assert row["outcome"] == expected
    assert row["substantive"] == (expected == "substantive")
    assert row["cut_off_in_think"] == (expected == "cut_off_in_think")


def test_keywords_and_lenient_source_hits():
    assert metrics.keyword_coverage("It lasts 12 hours, charged by USB C.", ["12 hours", "USB-C|USB C", "640 g"]) == pytest.approx(2 / 3)
    assert metrics.keyword_coverage("anything", []) is None
    sources = ["Lumen X2 product sheet"]
    assert metrics.source_hit('Per the "LUMEN-X2 Product Sheet": 12 hours.', sources) is True
    assert metrics.source_hit("Source: lumen-x2-product-sheet.md", ["lumen-x2-product-sheet.md"]) is True
    assert metrics.source_hit("Source: lumen-x2-product-sheet", ["lumen-x2-product-sheet.md"]) is True
    assert metrics.source_hit("The lamp lasts 12 hours.", sources) is False
    assert metrics.source_hit("Lumen X2 product sheets", sources) is False  # a whole-word match, not a prefix
    assert metrics.source_hit("whatever", []) is None


def test_bootstrap_and_sign_test_on_a_synthetic_case():
    # 20 prompts: tuned is right on 5 the base missed and wrong on none -> +0.25, interval above 0.
    base = [0.0] * 5 + [1.0] * 10 + [0.0] * 5
    tuned = [1.0] * 5 + [1.0] * 10 + [0.0] * 5
    change = stats.change(base, tuned)
    assert (change.n, change.delta, change.wins, change.losses, change.ties) == (20, 0.25, 5, 0, 15)
    assert 0 < change.low <= 0.25 <= change.high and change.beyond_uncertainty
    assert change.sign_p == pytest.approx(2 / 2 ** 5)
    # One win and one loss in 20: no change, and the interval straddles zero.
    noise = stats.change([1.0, 0.0] + [1.0] * 18, [0.0, 1.0] + [1.0] * 18)
    assert noise.delta == 0 and noise.low < 0 < noise.high and not noise.beyond_uncertainty and noise.sign_p == 1.0
    # None means "not measured": only prompts with both values are paired.
    assert stats.change([1.0, None, 0.0], [0.0, 1.0, None]).n == 1
    assert stats.bootstrap_interval([0.5] * 7) == (0.5, 0.5)


def _rows(answers: dict[str, list[tuple[str, int]]], prompts: list[Prompt], budget: int = 64) -> list[dict]:
    return [metrics.score(p, side, reply(text, tokens), PATTERNS, budget)
            for side, pairs in answers.items() for p, (text, tokens) in zip(prompts, pairs)]


def test_a_planted_think_cutoff_is_flagged_with_its_cause_and_fix():
    prompts = [prompt(f"p{i}", category="capitals" if i < 5 else "science") for i in range(10)]
    good = [("The capital is Paris, in France.", 9)] * 10
    cut = [("<think>First, the user asks about a capital. " + "Hmm, " * 20, 64)] * 6 + good[:4]
    built = report.build_report(_rows({"base": good, "tuned": cut}, prompts), tuned="tuned", prompt_set="facts.jsonl",
                                settings={"max_new_tokens": 64}, recipe={"training": {"learning_rate": 1e-3, "max_steps": 40}})
    lines = {line["metric"]: line for line in built["metrics"]}
    assert lines["keyword_coverage"]["delta"] == -0.6 and lines["keyword_coverage"]["n"] == 10
    assert lines["substantive"]["beyond_uncertainty"] and lines["cut_off_in_think"]["tuned"] == 0.6
    verdict = built["verdict"]
    assert "keyword_coverage" in verdict["regressed"] and "substantive" in verdict["regressed"]
    assert verdict["causes"][0].startswith("6 of 10 tuned answers ran out of tokens inside <think>")
    assert "max new tokens 64 → 128" in verdict["suggestions"][0]
    topics = {t["topic"]: t for t in built["per_topic"]}
    assert topics["capitals"]["keyword_coverage"]["delta"] == -1.0 and topics["science"]["keyword_coverage"]["delta"] == -0.2
    assert topics["capitals"]["n"] == 5
    markdown = "\n".join(report.to_markdown(built))
    assert "**Verdict:** Regressed beyond its uncertainty: keyword coverage -60.0 points" in markdown
    assert "| keyword coverage | 10 | 100.0% | 40.0% |" in markdown and "## Per topic" in markdown


def test_the_same_answers_give_a_quiet_verdict():
    prompts = [prompt(f"p{i}") for i in range(6)]
    same = [("Paris is the capital.", 6)] * 3 + [("Lyon, I believe, is it.", 7)] * 3
    built = report.build_report(_rows({"base": same, "tuned": same}, prompts), tuned="tuned")
    assert built["verdict"]["regressed"] == [] and built["verdict"]["causes"] == []
    assert built["verdict"]["headline"] == "No change beyond its uncertainty on 6 prompts."


def test_markdown_and_refusal_causes_and_the_mode_split():
    prompts = [prompt(f"p{i}", mode="dual" if i % 2 else "agent") for i in range(8)]
    base = [("Paris is the capital of France.", 8)] * 8
    tuned = [("## Answer\n- Paris is the capital", 9)] * 4 + [("I'm sorry, but I can't help with that.", 9)] * 4
    built = report.build_report(_rows({"base": base, "tuned": tuned}, prompts), tuned="tuned",
                                recipe={"training": {"learning_rate": 2e-4, "epochs": 3}})
    causes = " ".join(built["verdict"]["causes"])
    assert "markdown headers or bullets where prose was asked went up +50.0 points" in causes
    assert "refusals where an answer was expected went up +50.0 points" in causes
    assert any("training.learning_rate 0.0002 → 0.0001" in s and "training.epochs 3 → 1.5" in s
               for s in built["verdict"]["suggestions"])
    assert {m["mode"] for m in built["by_mode"]} == {"dual", "agent"}


def test_bm25_retrieval_ranks_and_mrr(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kettle-manual.md").write_text("# Kettle manual\nThe kettle boils a litre of water in three minutes.")
    (docs / "toaster-manual.md").write_text("# Toaster manual\nThe toaster has six browning levels and a crumb tray.")
    (docs / "warranty.txt").write_text("Warranty: the kettle and the toaster are covered for two years.")
    (tmp_path / "set.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"documents": "docs"},
        {"id": "a", "prompt": "How fast does the kettle boil water?", "source": "Kettle manual"},
        {"id": "b", "prompt": "How many browning levels does the toaster have?", "source": "toaster-manual.md"},
        {"id": "c", "prompt": "How long is the kettle covered?", "source": "kettle-manual.md"},  # warranty ranks first
        {"id": "d", "prompt": "Fixed context", "context": "Given.", "source": "warranty"},
    ]) + "\n")
    loaded = read_prompt_set(tmp_path / "set.jsonl")
    asked, found = retrieve(loaded.prompts, loaded.documents, k=1)
    assert found.ranks == {"a": 1, "b": 1, "c": 2} and found.mrr == pytest.approx((1 + 1 + 0.5) / 3, abs=1e-4)
    assert found.hit_at_k == pytest.approx(2 / 3, abs=1e-4) and found.ranked["c"] == ["warranty.txt"]
    assert "[source: kettle-manual.md]" in asked[0].text and "Question: How fast" in asked[0].text
    assert asked[3].text.startswith("Answer using only the context") and "[source: warranty]" in asked[3].text


def test_a_prompt_set_naming_a_missing_folder_says_so(tmp_path):
    (tmp_path / "set.jsonl").write_text('{"documents": "nowhere"}\n{"prompt": "q"}\n')
    loaded = read_prompt_set(tmp_path / "set.jsonl")
    assert loaded.documents is None and "nowhere is not one" in loaded.bad[0].reason and len(loaded.prompts) == 1


def test_fail_on_parsing_and_thresholds():
    assert cli_eval.parse_fail_on(["keyword_coverage:0.05", "substantive_rate"]) == [("keyword_coverage", 0.05), ("substantive", None)]
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        cli_eval.parse_fail_on(["bleu"])
    with pytest.raises(ValueError, match="threshold must be a number"):
        cli_eval.parse_fail_on(["substantive:lots"])
    built = {"metrics": [{"metric": "keyword_coverage", "label": "keyword coverage", "prefer": "more", "delta": -0.1,
                          "beyond_uncertainty": False, "n": 15},
                         {"metric": "cut_off_in_think", "label": "cut", "prefer": "fewer", "delta": 0.3,
                          "beyond_uncertainty": True, "n": 15}]}
    assert cli_eval.failures(built, [("keyword_coverage", 0.05)]) == ["keyword coverage got worse by 0.1 (more than 0.05; n=15)"]
    assert cli_eval.failures(built, [("keyword_coverage", 0.2)]) == []
    assert cli_eval.failures(built, [("keyword_coverage", None)]) == []  # within its uncertainty
    assert len(cli_eval.failures(built, [("cut_off_in_think", None)])) == 1


def test_the_model_card_opens_its_evaluation_with_the_verdict(studio_home):
    from core.export import hub

    prompts = [prompt(f"p{i}") for i in range(4)]
    built = report.build_report(_rows({"base": [("Paris is the capital.", 6)] * 4,
                                       "tuned": [("<think>" + "so " * 30, 64)] * 4}, prompts), tuned="tuned")
    card = hub.model_card(hub.CardFacts(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", kind="adapter", name="demo",
                                        eval_report=built)).text
    assert "## Evaluation: base vs tuned" in card and "**Verdict:** Regressed beyond its uncertainty" in card
    assert "Likely cause: 4 of 4 tuned answers ran out of tokens inside `<think>`" in card


def test_studio_eval_with_gguf_says_how_to_get_llama_cpp(tmp_path, capsys):
    from core.export import gguf
    from studio.cli import commands as cli

    if gguf.llama_cpp_available():
        pytest.skip("llama.cpp is installed here: the same-quantization A/B runs instead")
    (tmp_path / "set.jsonl").write_text('{"prompt": "q"}\n')
    code = cli.main(["eval", str(tmp_path), "--prompts", str(tmp_path / "set.jsonl"), "--gguf", "q8_0", "--out", str(tmp_path / "o")])
    error = capsys.readouterr().err
    assert code == 2 and "Same-quantization A/B runs both GGUF files in llama.cpp" in error and "pip install" in error
    assert "Traceback" not in error


def test_studio_eval_refuses_an_unknown_fail_on_metric_before_loading_anything(tmp_path, capsys):
    from studio.cli import commands as cli

    code = cli.main(["eval", str(tmp_path), "--prompts", "x.jsonl", "--fail-on", "bleu", "--out", str(tmp_path)])
    assert code == 2 and "unknown metric 'bleu'" in capsys.readouterr().err


def test_latency_is_reported_but_never_the_verdicts_regression():
    prompts = [prompt(f"p{i}") for i in range(6)]
    patterns_rows = [metrics.score(p, side, reply("Paris is the capital.", 6, seconds=1.0 if side == "base" else 2.0), PATTERNS, 64)
                     for side in ("base", "tuned") for p in prompts]
    built = report.build_report(patterns_rows, tuned="tuned")
    assert built["verdict"]["regressed"] == [] and built["verdict"]["headline"].startswith("No change")
    latency = "Time per answer (depends on the load, not judged): average latency +1.00 s"
    assert any(d.startswith(latency) for d in built["verdict"]["details"])
    assert cli_eval.failures(built, [("latency_s", 0.5)]) == ["average latency got worse by 1 (more than 0.5; n=6)"]


def test_better_and_worse_follow_each_metrics_direction():
    """Issue 22: 'wins' counted a tuned answer cut off inside <think> more often as a win. Better
    and worse now follow the metric's direction; words per answer has none."""
    rows = []
    for pid in range(4):
        rows.append({"prompt_id": pid, "side": "base", "cut_off_in_think": 0.0, "keyword_coverage": 0.0, "words": 10})
        rows.append({"prompt_id": pid, "side": "tuned", "cut_off_in_think": 1.0 if pid < 3 else 0.0,
                     "keyword_coverage": 1.0 if pid < 2 else 0.0, "words": 20})
    lines = {line["metric"]: line for line in report.compare(rows, "tuned", report.metric_specs())}
    assert (lines["cut_off_in_think"]["better"], lines["cut_off_in_think"]["worse"]) == (0, 3)
    assert (lines["keyword_coverage"]["better"], lines["keyword_coverage"]["worse"]) == (2, 0)
    assert lines["words"]["better"] is None
    shown = {row["metric"]: row[stats.BETTER_WORSE] for row in report.metrics_table({"metrics": list(lines.values())})}
    assert shown["ran out of tokens inside <think>"] == "0 / 3 / 1"
    assert shown["words per answer"].startswith("no better direction")


def test_leaked_prompts_are_marked_and_every_metric_is_shown_without_them():
    prompts = [prompt(f"p{i}") for i in range(10)]
    base = [("Lyon, I believe.", 4)] * 10
    tuned = [("Paris is the capital of France.", 8)] * 4 + [("Lyon, I believe.", 4)] * 6  # right only where it saw the prompt
    rows = _rows({"base": base, "tuned": tuned}, prompts)
    built = report.build_report(rows, tuned="tuned", leaked=["p0", "p1", "p2", "p3"])
    all_prompts = {line["metric"]: line for line in built["metrics"]}
    without = {line["metric"]: line for line in built["leakage"]["metrics_without"]}
    assert all_prompts["keyword_coverage"]["delta"] == 0.4 and without["keyword_coverage"]["delta"] == 0.0
    assert without["keyword_coverage"]["n"] == 6
    assert [row["leaked"] for row in rows if row["side"] == "tuned"] == [True] * 4 + [False] * 6
    assert any(d.startswith("4 of 10 prompts are in the run's training data (p0, p1, p2, p3)") for d in built["verdict"]["details"])
    markdown = "\n".join(report.to_markdown(built))
    assert "## Evaluation leakage" in markdown and "`p0`, `p1`, `p2`, `p3`" in markdown
    assert "| keyword coverage | +40.0 pts" in markdown
    clean = report.build_report(_rows({"base": base, "tuned": tuned}, prompts), tuned="tuned", leaked=[])
    assert clean["leakage"]["n"] == 0 and "Evaluation leakage" not in "\n".join(report.to_markdown(clean))


def test_leaked_prompts_are_found_in_a_runs_training_data(tmp_path):
    from core.eval.prompts import leaked_prompts

    asked = "Which river runs through the old town of Tübingen and where does it join the Rhine on its way north?"
    held_out = [Prompt("seen", [{"role": "user", "content": asked}]),
                Prompt("unseen", [{"role": "user", "content": "Name three gases in the air we breathe and their shares."}])]
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Quiz time. " + asked},
                                             {"role": "assistant", "content": "The Neckar, at Mannheim."}]}) + "\n")
    recipe = {"name": "r", "model": {"name": "embedded"}, "data": {"path": str(data)}}
    assert leaked_prompts(recipe, held_out) == ["seen"]
    assert leaked_prompts({**recipe, "data": {"path": str(tmp_path / "gone.jsonl")}}, held_out) is None
