"""A studio shared by several people: each visitor works in a workspace of their own. Two logins
(STUDIO_AUTH) through the real queue API see only their own runs and can't reach the other's with
forged ids; the one training slot is shared and its queue takes turns between visitors; an
anonymous visitor's work and workspace end with their session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from core.train import queue, runs, visits
from core.train.run_dir import UnknownRun, run_path
from core.workspace import (
    VISITOR_ENV,
    PathOutsideWorkspace,
    as_visitor,
    inside,
    server_root,
    set_visitor_source,
    visitor_key,
    workspace,
)
from tests.helpers.data import completed_run, tiny_recipe, wait_for, write_chats
from tests.helpers.server import launch_on_free_port, queue_call, served_app

# ---------------------------------------------------------------- the workspace rule


def test_each_visitor_has_a_workspace_of_their_own_sharing_only_the_models():
    ana, bob = visitor_key("user:ana"), visitor_key("user:bob")
    assert ana != bob and ana.startswith("user-ana-") and visitor_key("user:Ana") != ana
    with as_visitor(ana) as space:
        completed_run("ana-run")
        ana_root, ana_models = space.root, space.models
    with as_visitor(bob) as space:
        assert [info.run_id for info in runs.list_runs()] == []
        with pytest.raises(UnknownRun):
            run_path("ana-run")
        with pytest.raises(PathOutsideWorkspace):
            inside(ana_root / "runs" / "ana-run" / "status.json")
        assert space.models.resolve() == ana_models.resolve() == (server_root() / "models").resolve()
    assert [info.run_id for info in runs.list_runs()] == []  # the server's own workspace holds neither


def test_a_visitors_folder_name_cannot_be_guessed_from_their_name(monkeypatch, tmp_path):
    key = visitor_key("user:ana")
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "other-server"))
    assert visitor_key("user:ana") != key  # keyed with each server's own secret
    with pytest.raises(PathOutsideWorkspace):
        with as_visitor("../escape"):
            pass


# ---------------------------------------------------------------- one slot, taken in turns


def test_the_slot_is_shared_and_the_queue_takes_turns_between_visitors(tmp_path, tiny_model_dir, busy_slot):
    data = write_chats(tmp_path / "d.jsonl")
    ana, bob = visitor_key("user:ana"), visitor_key("user:bob")
    with as_visitor(ana):
        with pytest.raises(runs.RunBusy, match="Another person's run"):  # the slot is held in the server's workspace
            runs.refuse_if_busy()
        a1, started_a1 = queue.submit(tiny_recipe(tiny_model_dir, data))
        a2, _ = queue.submit(tiny_recipe(tiny_model_dir, data))
    with as_visitor(bob):
        b1, started_b1 = queue.submit(tiny_recipe(tiny_model_dir, data))
        assert [info.run_id for info in queue.waiting_runs()] == [b1.name]  # bob sees only his own queue
    assert not started_a1 and not started_b1
    assert queue.turn_order() == [ana, bob]  # nobody has had a turn: whoever waited longest
    queue._took_turn(ana)
    assert queue.turn_order() == [bob, ana]  # ana just trained: bob's turn, though ana queued first
    queue._took_turn(bob)
    assert queue.turn_order() == [ana, bob]
    with as_visitor(ana):  # ana's second run waits behind bob's one, not next to her first
        assert queue.places_in_line() == {a1.name: 1, a2.name: 3}
    with as_visitor(bob):
        assert queue.places_in_line() == {b1.name: 2}


@pytest.mark.slow
def test_a_freed_slot_starts_the_next_visitors_run_in_their_own_workspace(tmp_path, tiny_model_dir):
    data = write_chats(tmp_path / "d.jsonl")
    bob = visitor_key("user:bob")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        import psutil

        holder = runs.create_run(tiny_recipe(tiny_model_dir, data))  # the server's own run holds the slot
        runs.update_status(holder, state="running", pid=sleeper.pid, pid_started=psutil.Process(sleeper.pid).create_time())
        with as_visitor(bob):
            waiting, started = queue.submit(tiny_recipe(tiny_model_dir, data, max_steps=2, save_steps=100, eval_steps=None))
        assert not started
    finally:
        sleeper.kill()
        sleeper.wait()
    assert queue.start_next() == waiting  # the freed slot goes to bob, in bob's workspace
    with as_visitor(bob):
        status = runs.wait(waiting, timeout=180)
    assert status["state"] == "completed", status
    assert (waiting / "adapter").is_dir() and waiting.parent == server_root() / "visitors" / bob / "runs"


# ---------------------------------------------------------------- two logins through the real queue API


@pytest.fixture
def two_logins(monkeypatch):
    monkeypatch.setenv("STUDIO_AUTH", "ana:pw-of-ana,bob:pw-of-bob")
    monkeypatch.setenv("STUDIO_DEMO", "0")
    for user in ("ana", "bob"):
        with as_visitor(visitor_key(f"user:{user}")):
            completed_run(f"{user}-run")
    try:
        with served_app() as served:
            yield served
    finally:
        set_visitor_source(None)


def _login(base: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=120)
    assert client.post("/login", data={"username": user, "password": f"pw-of-{user}"}).status_code == 200
    return client


def _call(app, base, client, name, data, event_data=None, *, ok=True) -> str:
    index, fn = next((i, fn) for i, fn in app.fns.items() if fn.name == name)
    answer = queue_call(base, uuid.uuid4().hex, index, data, event_data, fn.targets[0][0] if fn.targets else None, client=client)
    assert not ok or '"success":true' in answer.replace(" ", ""), answer[-600:]
    return answer


def test_two_logins_see_only_their_own_runs_and_cannot_reach_the_others(two_logins):
    app, base = two_logins
    ana, bob = _login(base, "ana"), _login(base, "bob")
    try:
        for client, mine, theirs in ((ana, "ana-run", "bob-run"), (bob, "bob-run", "ana-run")):
            history = _call(app, base, client, "refresh_history", [])
            assert mine in history and theirs not in history
            choices = _call(app, base, client, "refresh_runs", [None, None])
            assert mine in choices and theirs not in choices
        # bob forges ana's run id: opening, deleting and exporting it all stay in bob's workspace
        opened = _call(app, base, bob, "open_run", [], {"index": [0, 0], "value": "ana-run", "row_value": ["ana-run"],
                                                         "col_value": ["ana-run"], "selected": True})
        assert '"ana-run"' not in opened.split("process_completed")[-1]
        _call(app, base, bob, "delete_run", ["ana-run"])
        export = _call(app, base, bob, "run_export_stream", ["ana-run", "best", True, False, False, False, False, "q8_0",
                                                             "", "", "", True, "", "auto"], ok=False)
        assert "not in the list of choices" in export or "not a run of this workspace" in export
        with as_visitor(visitor_key("user:ana")):
            assert (workspace().runs / "ana-run" / "status.json").is_file()
        assert str(server_root()) not in _call(app, base, bob, "header_markdown", [])  # no server paths shown
    finally:
        ana.close()
        bob.close()


# ---------------------------------------------------------------- an anonymous visit ends with its session


def test_an_anonymous_visit_ends_with_its_work_and_workspace():
    key = visitor_key("anon:session-1")
    assert key.startswith(visits.ANONYMOUS)
    with as_visitor(key) as space:
        completed_run("demo-run")
        root = space.root
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env={**os.environ, VISITOR_ENV: key})
    try:
        wait_for(lambda: visits.visitor_processes(key), timeout=10)
        signed_in = visitor_key("hf:ana")
        with as_visitor(signed_in):
            completed_run("kept")
        assert visits.end_visit(key) and not root.exists()
        assert worker.wait(timeout=10) is not None  # what the visit started is stopped with it
        assert not visits.end_visit(signed_in)  # a signed-in visitor comes back to their work
        with as_visitor(signed_in):
            assert [info.run_id for info in runs.list_runs()] == ["kept"]
    finally:
        worker.kill()
        worker.wait()


def test_a_restarted_server_sweeps_anonymous_workspaces_of_earlier_sessions(monkeypatch):
    from studio.ui import sessions

    monkeypatch.setenv("STUDIO_DEMO", "1")
    old, signed_in = visitor_key("anon:yesterday"), visitor_key("hf:ana")
    for key in (old, signed_in):
        with as_visitor(key):
            completed_run("r")
    try:
        assert sessions.install() == [old]
        assert not (server_root() / "visitors" / old).exists() and (server_root() / "visitors" / signed_in).is_dir()
    finally:
        set_visitor_source(None)


def test_the_visitor_is_read_from_the_request_gradio_serves(monkeypatch):
    import gradio as gr

    from studio.ui import sessions

    assert sessions.identity(gr.Request(username="ana", session_hash="s1")) == "user:ana"
    assert sessions.identity(gr.Request(session_hash="s1")) == "anon:s1"

    class Signed:  # a Space's sign-in: gradio keeps the OAuth info in the starlette session
        session = {"oauth_info": {"access_token": "hf_visitor_token", "userinfo": {"preferred_username": "ana"}}}

    request = gr.Request(request=Signed(), session_hash="s1")
    assert sessions.identity(request) == "hf:ana" and sessions.hub_token(request) == "hf_visitor_token"
    monkeypatch.setenv("STUDIO_DEMO", "0")
    monkeypatch.delenv("STUDIO_AUTH", raising=False)
    assert sessions.current_key() is None  # one person's studio: the one workspace
    time.sleep(0)


# ---------------------------------------------------------------- a visitor's pushes go on their own token


def test_a_visitor_never_pushes_on_the_servers_token_unless_the_operator_says_so(monkeypatch):
    from core.clients import resolve_token

    monkeypatch.setenv("HF_TOKEN", "hf_server_token")
    monkeypatch.delenv("STUDIO_SHARE_SERVER_TOKEN", raising=False)
    assert resolve_token(None) == "hf_server_token"  # one person's studio: their own machine's token
    with as_visitor(visitor_key("hf:ana")):
        assert resolve_token(None) is None and resolve_token("hf_visitor") == "hf_visitor"
        monkeypatch.setenv("STUDIO_SHARE_SERVER_TOKEN", "1")
        assert resolve_token(None) == "hf_server_token"


def test_the_export_and_jobs_use_the_signed_in_visitors_token(monkeypatch):
    import gradio as gr

    from core.export import pipeline
    from core.train import hf_jobs
    from studio.ui.export import tab as export_tab
    from studio.ui.train import jobs as train_jobs

    class Signed:
        session = {"oauth_info": {"access_token": "hf_ana_oauth", "userinfo": {"preferred_username": "ana"}}}

    request = gr.Request(request=Signed(), session_hash="s1")
    monkeypatch.setenv("STUDIO_DEMO", "0")  # Jobs are off in a demo: a team studio with several logins
    monkeypatch.setenv("STUDIO_AUTH", "ana:1,bob:2")
    seen = []
    finished = [pipeline.Event("export", "summary", "done")]
    monkeypatch.setattr(pipeline, "run_export", lambda plan: seen.append(plan.hub_token) or iter(finished))
    monkeypatch.setattr(export_tab, "build_plan", lambda *args: pipeline.make_plan("run", hub="ana/x", hub_token=args[12]))
    list(export_tab.run_export_stream("run", "best", False, True, False, False, False, "q8_0", "", "", "ana/x", True, "",
                                      "auto", request=request))
    monkeypatch.setattr(hf_jobs, "flavors", lambda token: seen.append(token) or [])
    train_jobs.list_flavors("", request)
    assert seen == ["hf_ana_oauth", "hf_ana_oauth"]


def test_the_demos_one_dataset_at_a_time_counts_every_visitor(monkeypatch):
    from core.dataset import make_worker
    from studio.ui.dataset import make as dataset_make

    monkeypatch.setenv("STUDIO_DEMO", "1")
    with as_visitor(visitor_key("anon:first")):
        job = dataset_make.made_folder() / "theirs.make" / "job.json"
        job.parent.mkdir(parents=True)
        job.write_text("{}")
    monkeypatch.setattr(make_worker, "is_running", lambda out: out.name == "theirs.jsonl")
    with as_visitor(visitor_key("anon:second")):
        assert dataset_make.running_outputs() == []  # nothing of theirs in my workspace ...
        with pytest.raises(dataset_make.DemoBusy):  # ... but the server makes one dataset at a time
            dataset_make._demo_limits(str(dataset_make.SAMPLE_DOCS), None)


# ---------------------------------------------------------------- quotas


def test_quotas_refuse_before_anything_is_written_and_say_what_to_delete(monkeypatch, tmp_path, tiny_model_dir, busy_slot):
    from core.train import quotas
    from studio.ui.dataset import make as dataset_make

    data = write_chats(tmp_path / "d.jsonl")
    monkeypatch.setenv("STUDIO_AUTH", "ana:1,bob:2")
    monkeypatch.setenv("STUDIO_QUOTA_RUNS", "2")
    monkeypatch.setenv("STUDIO_QUOTA_QUEUED", "1")
    assert quotas.quotas() == quotas.Quotas()  # the server's own workspace: no quotas
    with as_visitor(visitor_key("user:ana")):
        completed_run("old-run")
        queue.submit(tiny_recipe(tiny_model_dir, data))  # waits behind the busy slot
        before = sorted(p.name for p in workspace().runs.iterdir())
        with pytest.raises(quotas.OverQuota, match="keeps 2 runs.*`old-run`"):
            queue.submit(tiny_recipe(tiny_model_dir, data))
        assert sorted(p.name for p in workspace().runs.iterdir()) == before  # nothing half-written
        monkeypatch.setenv("STUDIO_QUOTA_RUNS", "0")  # 0: no limit
        with pytest.raises(quotas.OverQuota, match="1 runs waiting in the queue"):
            queue.submit(tiny_recipe(tiny_model_dir, data))
        monkeypatch.setenv("STUDIO_QUOTA_QUEUED", "0")
        monkeypatch.setenv("STUDIO_QUOTA_DISK_GB", "0.000001")
        with pytest.raises(quotas.OverQuota, match="Delete runs"):
            queue.submit(tiny_recipe(tiny_model_dir, data))
        monkeypatch.setenv("STUDIO_QUOTA_DISK_GB", "0")
        form = (str(dataset_make.SAMPLE_DOCS), None, "big", 5000, 1.0, 0.0, 0.0, 800, 100, 0, 1, "transformers (local)",
                "embedded", "", 0.2, 64, "model default")
        status = dataset_make.start_qa(*form)[1]
        assert "more than this studio makes for one person (500)" in status
        assert not list(dataset_make.made_folder().iterdir())


def test_closing_an_anonymous_page_removes_its_workspace_through_the_real_server(monkeypatch):
    """Gradio's unload: the page's heartbeat ends, the studio's `leave` runs for that session."""
    import threading

    from studio.ui.app import build_app

    monkeypatch.setenv("STUDIO_DEMO", "1")
    app = build_app().queue(default_concurrency_limit=4)
    port = launch_on_free_port(app)
    base, session = f"http://127.0.0.1:{port}", uuid.uuid4().hex
    key = visitor_key(f"anon:{session}")
    try:
        beating = threading.Event()

        def heartbeat():
            with httpx.stream("GET", f"{base}/gradio_api/heartbeat/{session}", timeout=30) as stream:
                for _ in stream.iter_lines():
                    beating.set()
                    if closing.is_set():
                        return

        closing = threading.Event()
        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        assert beating.wait(20)
        index, fn = next((i, fn) for i, fn in app.fns.items() if fn.name == "refresh_history")
        answer = queue_call(base, session, index, [], None, fn.targets[0][0])
        assert '"success":true' in answer.replace(" ", "")
        assert (server_root() / "visitors" / key / "runs").is_dir()  # the session's own workspace
        closing.set()  # the page closes: its heartbeat connection ends
        beat.join(30)
        wait_for(lambda: not (server_root() / "visitors" / key).exists(), timeout=60)
    finally:
        app.close()
        set_visitor_source(None)


def test_an_admin_and_the_operators_cli_see_every_visitors_runs(monkeypatch, capsys):
    import gradio as gr
    from gradio.context import LocalContext

    from studio.cli import commands as cli
    from studio.ui import sessions
    from studio.ui.train import live

    monkeypatch.setenv("STUDIO_AUTH", "ana:1,bob:2,root:3")
    monkeypatch.setenv("STUDIO_ADMINS", "root")
    for user in ("ana", "bob"):
        with as_visitor(visitor_key(f"user:{user}")):
            completed_run(f"{user}-run")
    set_visitor_source(sessions.current_key)
    try:
        for user, expected in (("bob", ["bob-run"]), ("root", ["user-ana / ana-run", "user-bob / bob-run"])):
            token = LocalContext.request.set(gr.Request(username=user, session_hash="s"))
            try:
                assert sorted(row[0] for row in live.refresh_history()) == expected
            finally:
                LocalContext.request.reset(token)
    finally:
        set_visitor_source(None)
    assert cli.main(["runs", "--all", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["runs"]
    assert sorted((row["owner"].rsplit("-", 1)[0], row["run_id"]) for row in listed) == [("user-ana", "ana-run"), ("user-bob", "bob-run")]


def test_each_visitors_push_reaches_the_hub_with_their_own_token(monkeypatch, tmp_path):
    """Two signed-in visitors push through core.export.hub to a stand-in Hub that knows ana's
    token: ana's push lands; bob's is sent with bob's own token (and refused), never the server's."""
    from huggingface_hub import constants

    from core.export import hub
    from tests.helpers.hub_standin import HubStandIn

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_server_token")
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "README.md").write_text("# a card\n")
    with HubStandIn("hf_ana_oauth") as standin:
        with as_visitor(visitor_key("hf:ana")):
            hub.push(folder, "ana/tuned", token="hf_ana_oauth", endpoint=standin.endpoint)
        with as_visitor(visitor_key("hf:bob")):
            with pytest.raises(hub.HubError, match="Pushing to bob/tuned failed"):
                hub.push(folder, "bob/tuned", token="hf_bob_oauth", endpoint=standin.endpoint)
            with pytest.raises(hub.HubError, match="No Hugging Face token"):  # an empty box: never the server's
                hub.push(folder, "bob/tuned", token=None, endpoint=standin.endpoint)
    assert standin.repo("model", "ana/tuned") is not None and standin.repo("model", "bob/tuned") is None
    sent = {auth for _, _, auth in standin.requests}
    assert sent == {"Bearer hf_ana_oauth", "Bearer hf_bob_oauth"}


def test_datasets_exports_and_chat_picks_are_each_visitors_own():
    from core.eval import preferences
    from studio.ui.dataset import tab as dataset_tab

    ana, bob = visitor_key("user:ana"), visitor_key("user:bob")
    with as_visitor(ana):
        (workspace().datasets / "uploads").mkdir(parents=True, exist_ok=True)
        (workspace().datasets / "uploads" / "ana-data.jsonl").write_text('{"text": "x"}\n')
        (workspace().exports / "ana-export.jsonl").write_text('{"text": "x"}\n')
        preferences.save_preference([{"role": "user", "content": "hi"}], "good", "bad", chosen_side="tuned")
        assert any("ana-data" in label for label, _ in dataset_tab.dataset_choices()) and preferences.read_picks()
    with as_visitor(bob):
        labels = " ".join(label for label, _ in dataset_tab.dataset_choices())
        assert "ana-data" not in labels and "ana-export" not in labels
        assert list(preferences.read_picks()) == []
