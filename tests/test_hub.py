"""Hub: the model card (through huggingface_hub) and a real upload_folder against a local
stand-in endpoint that answers the routes HfApi uses (validate-yaml, repos/create,
preupload, commit). The token must reach the server and nowhere else."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.export import hub
from core.train.run_dir import read_metrics_file

TOKEN = "hf_standInSecretToken123456"


def _facts(**extra) -> hub.CardFacts:
    recipe = {"name": "smoke", "model": {"name": "embedded"}, "data": {"path": "my-org/friction-data"},
              "training": {"learning_rate": 0.001}}
    return hub.CardFacts(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", kind="adapter", name="smoke-run",
                         recipe=recipe, datasets=hub.hub_datasets(recipe), **extra)


def test_card_names_the_real_base_peft_datasets_recipe_and_losses(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in [
        {"step": 1, "split": "train", "loss": 2.5}, {"step": 10, "split": "eval", "loss": 2.0},
        {"step": 20, "split": "eval", "loss": 2.2}, {"step": 20, "split": "train", "loss": 1.25}, "not json"]))
    losses = hub.losses(read_metrics_file(metrics))
    assert losses == {"final_train_loss": 1.25, "final_train_step": 20, "final_eval_loss": 2.2, "final_eval_step": 20,
                      "best_eval_loss": 2.0, "best_eval_step": 10}
    card = hub.model_card(_facts(losses=losses))
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.library_name == "peft"
    assert card.data.datasets == ["my-org/friction-data"]
    assert "| best eval loss | 2.0000 | 10 |" in card.text
    assert "learning_rate: 0.001" in card.text


def test_a_local_dataset_is_named_in_text_not_metadata():
    recipe = {"data": {"path": "../assets/friction_sample.jsonl"}}
    facts = hub.CardFacts(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", kind="model", name="x", recipe=recipe,
                          datasets=hub.hub_datasets(recipe))
    card = hub.model_card(facts)
    assert card.data.datasets is None and card.data.library_name == "transformers"
    assert "friction_sample.jsonl" in card.text


class HubStandIn(BaseHTTPRequestHandler):
    requests: list = []
    files: dict = {}

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.requests.append((self.path, self.headers.get("Authorization")))
        if self.path == "/api/validate-yaml":
            return self._json({"errors": [], "warnings": []})
        if self.path == "/api/repos/create":
            payload = json.loads(body)
            self.created = payload
            HubStandIn.created = payload
            return self._json({"url": f"http://{self.headers['Host']}/{payload['organization']}/{payload['name']}"})
        if "/preupload/" in self.path:
            names = [f["path"] for f in json.loads(body)["files"]]
            return self._json({"files": [{"path": n, "uploadMode": "regular", "shouldIgnore": False} for n in names]})
        if "/commit/" in self.path:
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    HubStandIn.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            return self._json({"commitUrl": f"http://{self.headers['Host']}/me/smoke-adapter/commit/{'a' * 40}", "commitOid": "a" * 40})
        self._json({"error": f"stand-in has no route {self.path}"}, 404)

    def _json(self, data, code=200):
        raw = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def hub_stand_in(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the stand-in is local; the real Hub stays unreachable
    HubStandIn.requests, HubStandIn.files, HubStandIn.created = [], {}, None
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", HubStandIn
    server.shutdown()


def _adapter_like(tmp_path: Path) -> Path:
    source = tmp_path / "adapter"
    source.mkdir()
    (source / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (source / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    return source


def test_push_creates_the_repo_and_uploads_every_file_with_the_card(tmp_path, hub_stand_in, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    endpoint, seen = hub_stand_in
    folder = hub.prepare_folder(_adapter_like(tmp_path), tmp_path / "hub", _facts())
    url = hub.push(folder, "me/smoke-adapter", token=TOKEN, private=True, endpoint=endpoint)
    assert url.endswith("a" * 40)
    assert seen.created == {"name": "smoke-adapter", "organization": "me", "visibility": "private", "type": "model"}
    assert set(seen.files) == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    assert b"base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in seen.files["README.md"]
    assert all(auth == f"Bearer {TOKEN}" for _, auth in seen.requests)
    assert not any(TOKEN in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_no_token_keeps_the_prepared_folder_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    folder = hub.prepare_folder(_adapter_like(tmp_path), tmp_path / "hub", _facts())
    with pytest.raises(hub.HubError, match="No Hugging Face token") as caught:
        hub.push(folder, "me/smoke-adapter")
    assert str(folder) in str(caught.value) and (folder / "README.md").is_file()


def test_offline_is_a_clear_message_and_the_token_never_shows(tmp_path):
    folder = hub.prepare_folder(_adapter_like(tmp_path), tmp_path / "hub", _facts())
    with pytest.raises(hub.HubError) as caught:
        hub.push(folder, "me/smoke-adapter", token=TOKEN)
    assert "HF_HUB_OFFLINE" in str(caught.value) and TOKEN not in str(caught.value)


def test_a_failing_server_error_is_scrubbed_of_the_token(tmp_path, hub_stand_in):
    folder = hub.prepare_folder(_adapter_like(tmp_path), tmp_path / "hub", _facts())
    with pytest.raises(hub.HubError) as caught:
        hub.push(folder, "me/smoke-adapter", token=TOKEN, endpoint="http://127.0.0.1:9")
    assert "Pushing to me/smoke-adapter failed" in str(caught.value) and TOKEN not in str(caught.value)
