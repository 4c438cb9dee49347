"""A stand-in Ollama server on 127.0.0.1 for tests and benchmarks: a small http.server thread
that speaks the documented `/api/chat` and `/api/generate` request and reply shapes
(https://github.com/ollama/ollama/blob/main/docs/api.md), non-streaming.

By default it answers every request with a valid pair built from the passages in the prompt
(so the studio's own overhead can be measured). A script of behaviours, consumed one request at a
time, makes it misbehave the ways real servers do: malformed JSON, the JSON inside `thinking`, a
budget spent thinking (`done_reason: length`), a reply slower than the client's timeout, a 500,
a body that isn't JSON, an evidence quote that isn't in the context, an unknown model (404).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_BLOCK = re.compile(r"\[(\d+)\] ([^\n]+)\n(.+?)(?=\n\n\[\d+\] |\n\n[A-Z][a-z]+ |\Z)", re.DOTALL)


def valid_pair(prompt: str) -> dict:
    """A pair that passes the studio's validation, built from the prompt's passages."""
    context = prompt.split("Context:\n", 1)[1]
    blocks = [(title.strip(), text) for _, title, text in _BLOCK.findall(context)]
    if "cited_titles: []" in prompt:
        title = blocks[0][0]
        return {"question": "What colour is the moon's far side in the unrelated passage?",
                "answer": f"I'm sorry, but the provided context ({title}) does not contain this information, "
                          "so I can't answer it without guessing.",
                "cited_titles": [], "evidence_quotes": []}
    if len(blocks) == 2 and "BOTH passages" in prompt:
        blocks = blocks[:2]
    else:
        blocks = blocks[:1]
    quotes = [_first_sentence(text) for _, text in blocks]
    titles = [title for title, _ in blocks]
    answer = " ".join(f"According to {t}, {q[0].lower() + q[1:]}" for t, q in zip(titles, quotes))
    return {"question": f"What do the sources say about {titles[0].lower()}?", "answer": answer,
            "cited_titles": titles, "evidence_quotes": quotes}


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return sentence if len(sentence.split()) >= 4 else " ".join(text.split()[:12])


class StandIn:
    """`with StandIn() as server:` ... `server.host` is what the client's `host=` takes."""

    def __init__(self, script: list[str] | None = None, *, delay_s: float = 0.0, slow_s: float = 3.0,
                 models: tuple[str, ...] | None = None, port: int = 0):
        self.script = list(script or [])
        self.delay_s, self.slow_s, self.models = delay_s, slow_s, models
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next_behaviour(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "valid"

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path in ("/", "/api/version"):
                    self._send(200, {"version": "0.0.0-standin"} if self.path != "/" else None, raw=b"Ollama is running")
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with outer.lock:
                    outer.requests.append({"path": self.path, **body})
                if self.path not in ("/api/chat", "/api/generate"):
                    return self._send(404, {"error": f"unknown endpoint {self.path}"})
                if outer.models is not None and body.get("model") not in outer.models:
                    return self._send(404, {"error": f"model '{body.get('model')}' not found, try pulling it first"})
                behaviour = outer.next_behaviour()
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if self.path == "/api/chat":
                    prompt = "\n\n".join(m.get("content", "") for m in body.get("messages", []))
                else:
                    prompt = body.get("prompt", "")
                self._reply(behaviour, body, prompt)

            def _reply(self, behaviour: str, body: dict, prompt: str):
                if behaviour == "slow":
                    time.sleep(outer.slow_s)
                if behaviour == "http500":
                    return self._send(500, {"error": "llama runner process has terminated"})
                if behaviour == "garbage_body":
                    return self._send(200, None, raw=b"<html>proxy error</html>")
                pair = valid_pair(prompt)
                content, thinking, reason = json.dumps(pair), None, "stop"
                if behaviour == "malformed":
                    content = '{"question": "What is it?", "answer": "It is'
                elif behaviour == "thinking":
                    content, thinking = "", "Let me draft it. " + json.dumps(pair) + " Done."
                elif behaviour == "budget":
                    content, thinking, reason = "", "Hmm, first I should consider every passage in turn and", "length"
                elif behaviour == "bad_quote":
                    pair["evidence_quotes"] = ["this sentence appears nowhere in the context at all"]
                    content = json.dumps(pair)
                self._send(200, _shape(self.path, body.get("model", ""), content, thinking, reason))

            def _send(self, status: int, payload, raw: bytes | None = None):
                data = raw if raw is not None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        return Handler


def _shape(path: str, model: str, content: str, thinking: str | None, reason: str) -> dict:
    common = {"model": model, "created_at": "2026-11-26T00:00:00Z", "done": True, "done_reason": reason,
              "total_duration": 1000, "eval_count": max(1, len(content) // 4)}
    if path == "/api/chat":
        message = {"role": "assistant", "content": content}
        if thinking is not None:
            message["thinking"] = thinking
        return {**common, "message": message}
    return {**common, "response": content, **({"thinking": thinking} if thinking is not None else {})}
