"""Browser tests' helpers: a real `studio ui` process with its own workspace, Debian's Chromium
settings, where screenshots go, and small page actions the journeys share."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


ARTIFACTS = ROOT / "test-artifacts" / "e2e"


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



def wait_until_up(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"studio ui exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"studio ui did not answer on {url} within {seconds} s:\n{log.read_text()[-3000:]}")



class Studio:
    """A running `studio ui` process with its own workspace."""

    def __init__(self, home: Path, env_extra: dict | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "ui.log"
        self.env = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                    **(env_extra or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Studio:
        handle = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "ui", "--port", str(self.port)], cwd=ROOT,
                                     env=self.env, stdout=handle, stderr=subprocess.STDOUT)
        wait_until_up(self.url, self.proc, self.log)
        return self

    def stop(self) -> None:
        """Stop the server; what it started (training workers, evaluations) goes on, as in real use."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def close(self) -> None:
        """Stop the server and then what it started that outlives it by design (training workers,
        evaluations, make workers run in sessions of their own): a test module leaves nothing running."""
        import signal

        from tests.helpers.server import studio_processes

        self.stop()
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 2)):
            left = studio_processes([self.home])
            for pid, _ in left:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.time() + wait_s
            while left and time.time() < deadline and studio_processes([self.home]):
                time.sleep(0.2)


MAKE_OLLAMA_PORT = int(os.environ.setdefault("STUDIO_TEST_MAKE_OLLAMA_PORT", str(free_port())))



def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()



def set_slider(page, label: str, value: int) -> None:
    box = page.get_by_label(label).first
    box.fill(str(value))
    box.press("Enter")
