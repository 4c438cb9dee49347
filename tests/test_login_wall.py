"""With a login on, a visitor who has not logged in gets the login page and nothing else: no API
description, no config, no install paths, no /openapi.json, no queue. After logging in the
studio works as before. Checked with an HTTP client against the real app on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from core.workspace import PROJECT_ROOT, workspace
from tests.helpers.server import served_app


@pytest.fixture
def served(monkeypatch):
    monkeypatch.setenv("STUDIO_AUTH", "ana:s3cret-pass")
    monkeypatch.setenv("STUDIO_DEMO", "0")
    with served_app(concurrency=None) as (_, base):
        yield base


CLOSED = [("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/gradio_api/openapi.json"), ("GET", "/openapi.json"),
          ("GET", "/docs"), ("GET", "/gradio_api/runs"), ("GET", "/gradio_api/run-history/records"),
("GET", "/gradio_api/app_id"), ("GET", "/monitoring"),
          ("GET", f"/gradio_api/file={PROJECT_ROOT / 'README.md'}"), ("GET", "/gradio_api/queue/data?session_hash=x"),
          ("POST", "/gradio_api/queue/join"), ("POST", "/gradio_api/upload"), ("GET", "/gradio_api/heartbeat/x")]


def test_before_login_only_the_login_page(served):
    with httpx.Client(base_url=served, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
        for secret in (str(PROJECT_ROOT), str(workspace().root), "check_plan", "start_run", "run_export_stream",
                       "Recipe YAML", "Hub token"):
            assert secret not in page.text, f"the login page gives away {secret!r}"
        for method, path in CLOSED:
            answer = client.request(method, path)
            assert answer.status_code in (401, 404), f"{method} {path}: {answer.status_code} {answer.text[:200]}"
            assert str(PROJECT_ROOT) not in answer.text and "start_run" not in answer.text, path
        assert client.get("/theme.css").status_code == 200  # what the login page itself needs still loads


def test_after_login_the_studio_works(served):
    with httpx.Client(base_url=served, timeout=30) as client:
        assert client.post("/login", data={"username": "ana", "password": "wrong"}).status_code == 400
        assert client.get("/config").status_code == 401
        assert client.post("/login", data={"username": "ana", "password": "s3cret-pass"}).status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and "start_run" in page.text  # the full page, with its API
        assert client.get("/config").status_code == 200
        assert client.get("/gradio_api/info").status_code == 200
        assert client.get("/openapi.json").status_code == 404  # FastAPI's own description stays off
