"""The repository root, the shared model copy, launching a built app on a free port, and the
studio processes a test session started (for the suite's leave-nothing-behind check)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# One converted copy of the embedded model shared by every test session on this machine:
# converting it takes ~20 s, and each test's own workspace links to it.
SHARED_MODELS = Path(os.environ.get("STUDIO_TEST_MODELS", ROOT / ".studio" / "test-models"))


def launch_on_free_port(app) -> int:
    """Launch a built app on a free loopback port without blocking; returns the port."""
    import socket

    from studio.ui.app import launch_kwargs

    for attempt in range(3):  # a port freed a moment ago can still answer for the last server
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
            return port
        except ValueError:
            app.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@contextmanager
def served_app(concurrency: int | None = 4):
    """The studio app built now (with the environment as the test set it), served on a free
    loopback port: yields (app, base URL); closed after."""
    from studio.ui.app import build_app

    app = build_app().queue(default_concurrency_limit=concurrency) if concurrency else build_app().queue()
    port = launch_on_free_port(app)
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        app.close()


def studio_processes(homes: list[Path]) -> list[tuple[int, str]]:
    """(pid, command line) of every process but this one whose STUDIO_HOME lies in one of
    `homes`: workers, followers and servers a test started."""
    prefixes = [str(home) for home in homes]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "multiprocessing.resource_tracker" in command or "multiprocessing.forkserver" in command:
            continue  # Python's own helpers of this process: they end with it
        for entry in environ:
            if entry.startswith(b"STUDIO_HOME="):
                home = entry[len(b"STUDIO_HOME="):].decode(errors="replace")
                if any(home == p or home.startswith(p + os.sep) for p in prefixes):
                    found.append((int(proc.name), command))
                break
    return found


def queue_call(base: str, session: str, fn_index: int, data: list, event_data=None, trigger_id=None, *, client=None) -> str:
    """Join gradio's queue like the page does and read the session's SSE stream to this event's
    end; returns the stream's data lines. `client`: an httpx.Client holding a login's cookies."""
    import httpx

    own = client is None
    client = client or httpx.Client(timeout=120)
    try:
        joined = client.post(f"{base}/gradio_api/queue/join", timeout=30, json={
            "data": data, "event_data": event_data, "fn_index": fn_index, "trigger_id": trigger_id, "session_hash": session})
        if joined.status_code != 200:
            return joined.text
        event_id = joined.json()["event_id"]
        seen = []
        with client.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session}, timeout=120) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                seen.append(line)
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    break
                if message.get("msg") in ("close_stream", "unexpected_error"):
                    break
        return "\n".join(seen)
    finally:
        if own:
            client.close()
