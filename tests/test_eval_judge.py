"""The pairwise judge through the official ollama client against a stand-in Ollama server on
127.0.0.1: asked in both orders, position bias cancels to a tie, rationales kept, agreement with
the person's picks from the Chat tab."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.eval import judge, preferences

CONVERSATION = [{"role": "user", "content": "What is the capital of France?"}]


class OllamaJudgeStandIn(BaseHTTPRequestHandler):
    """Answers /api/chat as Ollama does (stream false): picks the answer that says Paris, or,
    when `biased`, always answer A."""

    biased = False
    asked: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.asked.append(body)
        text = body["messages"][-1]["content"]
        first = text.split("Answer A:")[1].split("Answer B:")[0]
        winner = "A" if self.biased or "Paris" in first else "B"
        reply = {"model": body["model"], "created_at": "2026-11-26T00:00:00Z", "done": True, "done_reason": "stop",
                 "message": {"role": "assistant", "content": json.dumps({"winner": winner, "rationale": f"{winner} names Paris."})}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def ollama_host():
    OllamaJudgeStandIn.asked, OllamaJudgeStandIn.biased = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), OllamaJudgeStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def rows(base: str, tuned: str) -> list[dict]:
    return [{"prompt_id": "capital", "side": "base", "answer": base}, {"prompt_id": "capital", "side": "tuned", "answer": tuned}]


def test_the_judge_is_asked_in_both_orders_and_keeps_its_rationale(ollama_host, studio_home):
    ask = judge.judge_for("ollama:judge-model", host=ollama_host)
    result = judge.judge_rows(ask, rows("Lyon.", "<think>easy</think>Paris."), {"capital": CONVERSATION},
                              model="judge-model", tuned="tuned")
    assert (result["tuned"], result["base"], result["ties"], result["n"]) == (1, 0, 0, 1)
    orders = result["per_prompt"][0]["orders"]
    assert [(o["order"], o["picked"], o["side"]) for o in orders] == [("base as A", "B", "tuned"), ("tuned as A", "A", "tuned")]
    assert orders[0]["rationale"] == "B names Paris."
    asked = OllamaJudgeStandIn.asked
    assert len(asked) == 2 and asked[0]["model"] == "judge-model" and asked[0]["format"] == "json"
    assert "Answer A:\nLyon." in asked[0]["messages"][-1]["content"] and "<think>" not in asked[1]["messages"][-1]["content"]
    assert "correctness" in asked[0]["messages"][0]["content"]  # the rubric is the system message


def test_a_judge_that_always_picks_a_gives_a_tie(ollama_host):
    OllamaJudgeStandIn.biased = True
    result = judge.judge_rows(judge.judge_for("judge-model", host=ollama_host), rows("Lyon.", "Paris."),
                              {"capital": CONVERSATION}, model="judge-model", tuned="tuned")
    assert (result["tuned"], result["base"], result["ties"]) == (0, 0, 1)


def test_agreement_with_the_persons_picks_from_the_chat_tab(ollama_host, studio_home):
    preferences.save_preference(CONVERSATION, "Paris.", "Lyon.", chosen_side="tuned")  # judge agrees
    preferences.save_preference(CONVERSATION, "Lyon.", "Paris.", chosen_side="base")   # judge disagrees
    preferences.save_preference(CONVERSATION, "Nice.", "Lyon.")                          # no side recorded: not counted
    picks = preferences.read_picks()
    assert [p["person"] for p in picks] == ["tuned", "base"] and picks[0]["tuned"] == "Paris."
    result = judge.judge_rows(judge.judge_for("judge-model", host=ollama_host), rows("Lyon.", "Paris."),
                              {"capital": CONVERSATION}, model="judge-model", tuned="tuned", picks=picks)
    assert result["agreement"] == 0.5 and result["agreement_n"] == 2


def test_replies_are_parsed_leniently_and_an_unreachable_judge_says_what_to_do():
    assert judge.parse_reply('Sure! {"winner": "tie", "rationale": "both fine"}') == ("tie", "both fine")
    assert judge.parse_reply("winner: B because it is shorter")[0] == "B"
    assert judge.parse_reply("I like both")[0] == "tie"
    ask = judge.judge_for("judge-model", host="http://127.0.0.1:9")
    with pytest.raises(judge.JudgeError, match="did not answer.*ollama pull judge-model"):
        ask([{"role": "user", "content": "hi"}])


@pytest.mark.slow
def test_the_local_model_judge_answers_in_both_orders(embedded_dir):
    """`embedded` (or hf:PATH): a transformers model on this machine judges, no Ollama needed."""
    ask = judge.judge_for("embedded")
    result = judge.compare_pair(ask, judge.load_rubric(), CONVERSATION, "Paris is the capital of France.", "I like turtles.")
    assert result["winner"] in ("base", "tuned", "tie") and [o["order"] for o in result["orders"]] == ["base as A", "tuned as A"]
    assert all(o["picked"] in ("A", "B", "tie") and o["rationale"] for o in result["orders"])
