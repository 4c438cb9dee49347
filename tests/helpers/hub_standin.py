"""A local stand-in of the Hugging Face Hub and its Jobs API, for `HfApi(endpoint=...)`.

It answers the routes huggingface_hub 2.x calls for what the studio does with Jobs: whoami,
repos/create, validate-yaml, preupload + commit (every file "regular", sent inline as base64), repo info, the
tree listing and resolve (HEAD and GET) for snapshot_download / hf_hub_download, and the Jobs
routes: hardware, run, inspect, logs (a server-sent event stream, replayed from the start on each
request, as the Hub does), cancel. Every route but the hardware list wants the one token.

A "job" runs its submitted command for real, in a local subprocess in its own session: the
secrets become environment variables beside the visible environment, as in a container. The
stand-in's "image" is this virtual environment: its python first on PATH, and
STUDIO_JOB_PREINSTALLED=1 set, so the job's two `pip install` steps are skipped (the image holds
the dependencies already; the studio itself still runs from the source the job downloaded).
Not a Hub: no LFS or Xet, no branches, no pagination, one user.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

HARDWARE = [
    {"name": "cpu-basic", "prettyName": "CPU Basic", "cpu": "2 vCPU", "ram": "16 GB", "accelerator": None,
     "unitCostMicroUSD": 167, "unitCostUSD": 0.000167, "unitLabel": "minute"},
    {"name": "a10g-small", "prettyName": "Nvidia A10G - small", "cpu": "4 vCPU", "ram": "15 GB",
     "accelerator": {"type": "gpu", "model": "A10G", "quantity": "1", "vram": "24 GB", "manufacturer": "Nvidia"},
     "unitCostMicroUSD": 16667, "unitCostUSD": 0.016667, "unitLabel": "minute"},
]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class Repo:
    def __init__(self, repo_id: str, private: bool):
        self.repo_id, self.private = repo_id, private
        self.files: dict[str, bytes] = {}
        self.sha = "0" * 40


class Job:
    """One submitted job: SCHEDULING for a moment, then its command in a subprocess."""

    def __init__(self, hub: HubStandIn, namespace: str, spec: dict):
        self.hub, self.namespace, self.spec = hub, namespace, spec
        self.id = uuid.uuid4().hex[:24]
        self.created = _now()
        self.stage, self.message = "SCHEDULING", None
        self.lines: list[tuple[str, str]] = [(_now(), "===== Job started =====")]
        self.changed = threading.Condition()
        self.process: subprocess.Popen | None = None
        self.cancelled = False
        self.scratch = Path(tempfile.mkdtemp(prefix=f"standin-job-{self.id[:8]}-"))
        threading.Thread(target=self._run, daemon=True).start()

    def environment(self) -> dict:
        env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin", "HOME": str(self.scratch),
               "TMPDIR": str(self.scratch), "HF_HOME": str(self.scratch / "hf"), "LANG": "C.UTF-8",
               "STUDIO_JOB_PREINSTALLED": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
        env.update({key: str(value) for key, value in (self.spec.get("environment") or {}).items()})
        env.update({key: str(value) for key, value in (self.spec.get("secrets") or {}).items()})
        return env

    def _run(self) -> None:
        time.sleep(self.hub.schedule_s)
        with self.changed:
            if self.cancelled:
                return
            self.stage = "RUNNING"
            self.process = subprocess.Popen(self.spec["command"] + list(self.spec.get("arguments") or []), cwd=self.scratch,
                                            env=self.environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        for raw in self.process.stdout:
            with self.changed:
                self.lines.append((_now(), raw.decode("utf-8", errors="replace").rstrip("\n")))
                self.changed.notify_all()
        code = self.process.wait()
        with self.changed:
            if not self.cancelled:
                self.stage = "COMPLETED" if code == 0 else "ERROR"
                self.message = None if code == 0 else f"Job failed with exit code: {code}"
            self.changed.notify_all()

    def cancel(self) -> None:
        with self.changed:
            self.cancelled = True
            self.stage = "CANCELED"
            process = self.process
            self.changed.notify_all()
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @property
    def ended(self) -> bool:
        return self.stage in ("COMPLETED", "ERROR", "CANCELED", "DELETED")

    def info(self) -> dict:
        return {"id": self.id, "createdAt": self.created, "dockerImage": self.spec.get("dockerImage"),
                "command": self.spec["command"], "arguments": self.spec.get("arguments") or [],
                "environment": self.spec.get("environment") or {},
                "secrets": {key: "[hidden]" for key in self.spec.get("secrets") or {}},
                "flavor": self.spec.get("flavor"), "labels": self.spec.get("labels"),
                "status": {"stage": self.stage, "message": self.message},
                "owner": {"id": "u-standin", "name": self.namespace, "type": "user"}}


class HubStandIn:
    def __init__(self, token: str, *, user: str = "standin-user", schedule_s: float = 0.5):
        self.token, self.user, self.schedule_s = token, user, schedule_s
        self.repos: dict[tuple[str, str], Repo] = {}
        self.jobs: dict[str, Job] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for job in self.jobs.values():
            job.cancel()
            shutil.rmtree(job.scratch, ignore_errors=True)
        self.server.shutdown()
        self.server.server_close()

    def repo(self, kind: str, repo_id: str) -> Repo | None:
        return self.repos.get((kind, repo_id))


def _handler(hub: HubStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection; a stream ends when the job does

        def log_message(self, *args):
            pass

        # ------------------------------------------------------------ plumbing

        def _answer(self, code: int, data=None, headers: dict | None = None, body: bytes | None = None) -> None:
            payload = body if body is not None else json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json" if body is None else "application/octet-stream")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization")
            hub.requests.append((self.command, self.path, auth))
            if auth == f"Bearer {hub.token}":
                return True
            self._answer(401, {"error": "Invalid credentials in Authorization header"})
            return False

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _parts(self) -> list[str]:
            return [unquote(part) for part in urlparse(self.path).path.strip("/").split("/")]

        # ------------------------------------------------------------ verbs

        def do_GET(self):
            parts = self._parts()
            if parts[:3] == ["api", "jobs", "hardware"]:
                return self._answer(200, HARDWARE)
            if not self._authorized():
                return None
            if parts[:2] == ["api", "whoami-v2"]:
                return self._answer(200, {"type": "user", "id": "u-standin", "name": hub.user, "fullname": "Stand-in",
                                          "orgs": [], "auth": {"type": "access_token"}})
            if parts[:2] == ["api", "jobs"] and len(parts) >= 4:
                job = hub.jobs.get(parts[3])
                if job is None or job.namespace != parts[2]:
                    return self._answer(404, {"error": "Job not found"})
                return self._logs(job) if parts[4:] == ["logs"] else self._answer(200, job.info())
            if parts[0] == "api" and len(parts) >= 4:
                return self._repo_api(parts[1][:-1], "/".join(parts[2:4]), parts[4:])
            return self._resolve(parts)

        def do_HEAD(self):
            if self._authorized():
                self._resolve(self._parts())

        def do_POST(self):
            if not self._authorized():
                return None
            parts, body = self._parts(), self._body()
            if parts == ["api", "validate-yaml"]:  # a README's metadata, checked before a commit holding it
                return self._answer(200, {"errors": [], "warnings": []})
            if parts == ["api", "repos", "create"]:
                payload = json.loads(body)
                kind = payload.get("type") or "model"
                repo_id = f"{payload.get('organization') or hub.user}/{payload['name']}"
                if (kind, repo_id) in hub.repos:
                    return self._answer(409, {"error": "You already created this repo"})
                hub.repos[(kind, repo_id)] = Repo(repo_id, payload.get("visibility") == "private")
                prefix = "" if kind == "model" else f"{kind}s/"
                return self._answer(200, {"url": f"{hub.endpoint}/{prefix}{repo_id}", "name": repo_id, "id": repo_id})
            if parts[:2] == ["api", "jobs"] and len(parts) == 3:
                job = Job(hub, parts[2], json.loads(body))
                hub.jobs[job.id] = job
                return self._answer(200, job.info())
            if parts[:2] == ["api", "jobs"] and parts[4:] == ["cancel"]:
                job = hub.jobs.get(parts[3])
                if job is None:
                    return self._answer(404, {"error": "Job not found"})
                job.cancel()
                return self._answer(200, {})
            if parts[0] == "api" and len(parts) >= 6:
                return self._repo_write(parts[1][:-1], "/".join(parts[2:4]), parts[4], body)
            return self._answer(404, {"error": f"stand-in has no route POST {self.path}"})

        # ------------------------------------------------------------ repos

        def _missing(self):
            return self._answer(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

        def _repo_write(self, kind: str, repo_id: str, action: str, body: bytes):
            repo = hub.repo(kind, repo_id)
            if repo is None:
                return self._missing()
            if action == "preupload":
                files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                         for f in json.loads(body)["files"]]
                return self._answer(200, {"files": files})
            if action == "commit":
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        repo.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] in ("deletedFile", "deletedFolder"):
                        gone = item["value"]["path"].rstrip("/")
                        repo.files = {p: c for p, c in repo.files.items() if p != gone and not p.startswith(gone + "/")}
                repo.sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
                prefix = "" if kind == "model" else f"{kind}s/"
                return self._answer(200, {"commitUrl": f"{hub.endpoint}/{prefix}{repo_id}/commit/{repo.sha}",
                                          "commitOid": repo.sha, "success": True})
            return self._answer(404, {"error": f"stand-in has no route {action}"})

        def _repo_api(self, kind: str, repo_id: str, rest: list[str]):
            repo = hub.repo(kind, repo_id)
            if repo is None:
                return self._missing()
            if not rest or rest[0] == "revision":
                siblings = [{"rfilename": path} for path in sorted(repo.files)]
                return self._answer(200, {"id": repo_id, "sha": repo.sha, "private": repo.private, "siblings": siblings})
            if rest[0] == "tree":
                under = "/".join(rest[2:])
                recursive = parse_qs(urlparse(self.path).query).get("recursive", ["False"])[0].lower() == "true"
                entries = []
                for path, content in sorted(repo.files.items()):
                    if under and not path.startswith(under + "/"):
                        continue
                    if not recursive and "/" in path[len(under) + 1 if under else 0:]:
                        continue
                    entries.append({"type": "file", "oid": _blob_id(content), "size": len(content), "path": path})
                return self._answer(200, entries)
            return self._answer(404, {"error": f"stand-in has no route {self.path}"})

        def _resolve(self, parts: list[str]):
            kind = "model"
            if parts and parts[0] in ("datasets", "spaces"):
                kind, parts = parts[0][:-1], parts[1:]
            if len(parts) < 5 or parts[2] != "resolve":
                return self._answer(404, {"error": f"stand-in has no route {self.path}"})
            repo = hub.repo(kind, "/".join(parts[:2]))
            if repo is None:
                return self._missing()
            content = repo.files.get("/".join(parts[4:]))
            if content is None:
                return self._answer(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            return self._answer(200, body=content, headers={"X-Repo-Commit": repo.sha, "ETag": f'"{_blob_id(content)}"'})

        # ------------------------------------------------------------ job logs

        def _logs(self, job: Job):
            """Server-sent events, one per log line, from the first; open until the job ends."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            sent = 0
            try:
                while True:
                    with job.changed:
                        if sent >= len(job.lines) and not job.ended:
                            job.changed.wait(timeout=5.0)
                        fresh, ended = job.lines[sent:], job.ended
                    for stamp, text in fresh:
                        self.wfile.write(f"data: {json.dumps({'data': text, 'timestamp': stamp})}\n\n".encode())
                    sent += len(fresh)
                    if not fresh and not ended:
                        self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    if ended and sent >= len(job.lines):
                        return
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler
