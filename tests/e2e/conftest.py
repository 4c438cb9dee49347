"""Browser fixtures: a real studio server in its own process and Debian's Chromium driven by
Playwright. Screenshots of every step go to test-artifacts/e2e/ for a person to look at."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
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
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "ui.log"
        self.env = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                    **(env_extra or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Studio:
        handle = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "ui", "--port", str(self.port)], cwd=ROOT,
                                     env=self.env, stdout=handle, stderr=subprocess.STDOUT)
        _wait_for(self.url, self.proc, self.log)
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

        from tests.conftest import studio_processes

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


@pytest.fixture(scope="module")
def studio_home_e2e(tmp_path_factory) -> Path:
    from tests.conftest import SHARED_MODELS

    home = tmp_path_factory.mktemp("e2e_home")
    SHARED_MODELS.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(SHARED_MODELS, target_is_directory=True)
    return home


# The make journey's stand-in Ollama server listens here; the studio allows it like any operator's host.
# pytest imports this file as `conftest` and the journeys import it as `tests.e2e.conftest`: the
# port is kept in the environment so both copies agree on it.
MAKE_OLLAMA_PORT = int(os.environ.setdefault("STUDIO_TEST_MAKE_OLLAMA_PORT", str(_free_port())))


@pytest.fixture(scope="module")
def studio(studio_home_e2e, embedded_dir, tiny_model_dir):
    # The tiny random model lives outside the workspace: the operator allows its folder, as a team
    # machine would allow /srv/models, so recipes that name it pass the visitor guard.
    # The export journey's Ollama server (nothing listens there) is one the operator allows.
    server = Studio(studio_home_e2e, {"STUDIO_MODEL_DIRS": str(tiny_model_dir),
                                      "STUDIO_OLLAMA_HOSTS": f"http://127.0.0.1:9,http://127.0.0.1:{MAKE_OLLAMA_PORT}"}).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `bash scripts/setup.sh --browser` (Debian package chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def shot(request):
    """shot(page, "step-name") saves a full-page screenshot named after the test."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    counter = {"n": 0}

    def take(page, name: str) -> Path:
        counter["n"] += 1
        path = ARTIFACTS / f"{request.node.name}-{counter['n']:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
