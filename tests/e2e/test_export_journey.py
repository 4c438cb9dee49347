"""Export in the browser: a finished run to a merged model and a q8_0 GGUF, verified by loading
it back; the Hub push and Ollama fail clearly offline; the Hub token leaks nowhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.browser import ROOT, open_tab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "hf_e2eSecretTokenThatMustNotLeak42"


@pytest.fixture(scope="module")
def finished_run(studio):
    """A real two-step LoRA run of the smoke recipe in the studio's workspace, from the CLI."""
    env = {**os.environ, "STUDIO_HOME": str(studio.home), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "studio.cli", "train", "configs/smoke-cpu.yaml", "--set", "training.max_steps=2",
                          "--set", "training.eval_steps=1", "--set", "training.save_steps=1",
                          "--set", "eval.after_training=false"],  # the guard has its own tests; keep this one to export
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    runs = sorted((studio.home / "runs").iterdir())
    return runs[-1]


def _files_containing(root, secret: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and "models" not in path.relative_to(root).parts[:1]:
            try:
                if secret.encode() in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                pass
    return hits


def test_export_to_gguf_with_verification_and_no_token_leak(studio, finished_run, page, shot):
    page.goto(studio.url)
    open_tab(page, "Export")  # the run trained after the server started is listed without "Refresh runs"
    page.get_by_label("Run to export").click()
    page.get_by_role("option", name=finished_run.name).first.click()
    page.get_by_label("Push to the Hugging Face Hub").check()
    page.get_by_label("Create in Ollama").check()
    page.get_by_label("Ollama model name").fill("smoke-e2e")
    page.get_by_label("Ollama server address").fill("http://127.0.0.1:9")  # nothing listens there
    page.get_by_label("Hub repository").fill("someone/smoke-e2e")
    page.get_by_label("Hub token (write access; not stored; empty: the server's HF_TOKEN)").fill(TOKEN)
    shot(page, "ready")
    page.get_by_role("button", name="Export", exact=True).click()
    page.locator("#export-status").get_by_text("Export finished").wait_for(timeout=400_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('table')].some(t => t.innerText.includes('agree'))", timeout=60_000)
    shot(page, "verified")
    status = page.locator("#export-status").inner_text()
    assert "Steps that failed: hub, ollama" in status, status
    # No server took the model, so the page shows the command to run where Ollama is.
    assert "ollama create smoke-e2e" in page.locator("#export-command textarea").input_value()

    export_dir = studio.home / "exports" / finished_run.name
    manifest = json.loads((export_dir / "manifest.json").read_text())
    steps = {name: step["state"] for name, step in manifest["steps"].items()}
    assert steps["merge"] == "done" and steps["gguf"] == "done" and steps["verify"] == "done", steps
    assert steps["hub"] == "failed" and steps["ollama"] == "failed", steps
    assert list(export_dir.glob("gguf/*.gguf")) and (export_dir / "gguf" / "Modelfile").is_file()
    # What it made is offered for download: the GGUF, its Modelfile, the merged model as a zip.
    page.wait_for_function("() => { const f = document.querySelector('#export-files');"
                           " return f && f.innerText.includes('q8_0') && f.innerText.includes('Modelfile')"
                           " && f.innerText.includes('merged'); }", timeout=120_000)
    shot(page, "downloads")

    # The token typed into the page is in no file of the workspace, no log, and not on the page.
    assert _files_containing(studio.home, TOKEN) == []
    assert TOKEN not in studio.log.read_text(errors="replace")
    assert TOKEN not in page.evaluate("document.body.innerText")
    assert TOKEN not in page.locator("#export-log textarea").input_value()


def test_run_lists_are_current_without_refresh(studio, finished_run, page, shot):
    """Issue 22: a run that finished while the page was open appears in Export and Chat when their
    tab is shown, with no Refresh button pressed and no reload."""
    import shutil

    page.goto(studio.url)
    open_tab(page, "Export")
    page.get_by_label("Run to export").click()
    page.get_by_role("option", name=finished_run.name).first.wait_for()
    page.keyboard.press("Escape")
    later = finished_run.with_name(finished_run.name + "-later")  # "finishes" while the page is open
    shutil.copytree(finished_run, later, symlinks=True)
    try:
        open_tab(page, "Chat")
        open_tab(page, "Export")
        page.get_by_label("Run to export").click()
        page.get_by_role("option", name=later.name).first.wait_for()
        shot(page, "export-list-current")
        page.keyboard.press("Escape")
        open_tab(page, "Chat")
        page.get_by_label("Tuned side").click()
        page.get_by_role("option", name=later.name).first.wait_for()
        shot(page, "chat-list-current")
    finally:
        shutil.rmtree(later)
