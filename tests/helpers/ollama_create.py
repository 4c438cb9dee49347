"""A stand-in for the Ollama server's model-creation API (blob upload and `create`), checking
the payloads against Ollama's documented API."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class OllamaStandIn(BaseHTTPRequestHandler):
    """Answers /api/blobs and /api/create as Ollama documents them, and records what came."""

    blobs: dict = {}
    creates: list = []
    errors: list = []

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        digest = self.path.rsplit("/", 1)[-1]
        self.send_response(200 if digest in self.blobs else 404)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/api/blobs/sha256:"):
            digest = self.path.rsplit("/", 1)[-1]
            actual = "sha256:" + hashlib.sha256(body).hexdigest()
            if digest != actual:
                self.errors.append(f"blob digest {digest} != content {actual}")
                return self._reply(400, {"error": "digest mismatch"})
            self.blobs[digest] = len(body)
            return self._reply(201, None)
        if self.path == "/api/create":
            payload = json.loads(body)
            self.creates.append(payload)
            missing = [d for d in (payload.get("files") or {}).values() if d not in self.blobs]
            if missing or not payload.get("model"):
                self.errors.append(f"create refers to unknown blobs {missing}")
                return self._reply(400, {"error": "unknown blob"})
            lines = [{"status": "parsing GGUF"}, {"status": "writing manifest"}, {"status": "success"}]
            return self._reply(200, "\n".join(json.dumps(x) for x in lines) + "\n", ndjson=True)
        self._reply(404, {"error": f"no route {self.path}"})

    def _reply(self, code, data, ndjson=False):
        raw = b"" if data is None else (data.encode() if ndjson else json.dumps(data).encode())
        self.send_response(code)
        self.send_header("Content-Type", "application/x-ndjson" if ndjson else "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def ollama_stand_in():
    OllamaStandIn.blobs, OllamaStandIn.creates, OllamaStandIn.errors = {}, [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), OllamaStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", OllamaStandIn
    server.shutdown()
