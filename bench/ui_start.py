"""Cold start of the web studio: from `studio ui` to the first rendered tab in headless Chromium.

Measured side by side in one run, each in a fresh process with a fresh workspace (models/
linked to an already converted embedded model, as after the first start):
  floor   a bare gradio app (one Markdown, one Tab) launched the same way: what gradio itself costs
  studio  `python -m studio.cli ui`: the four tabs
For each: seconds until the port answers, and until Chromium shows the first tab's content
(the Dataset tab's upload box for the studio). Also printed: whether torch, transformers,
datasets or peft were imported by the time the page was built (they must not be).
Target (issue #15): the studio's first rendered tab under 8 s on 2 cores; read it with the load
printed beside it and the studio/floor ratio.

    python bench/ui_start.py [--repeats 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HEAVY = ("torch", "transformers", "datasets", "peft", "trl")
FLOOR_APP = """
import sys, gradio as gr
with gr.Blocks() as app:
    gr.Markdown("# Floor")
    with gr.Tabs():
        with gr.Tab("First"):
            gr.Textbox(label="Sample or workspace dataset")
app.launch(server_port=int(sys.argv[1]))
"""
HEAVY_CHECK = f"""
import sys
import studio.ui.app
studio.ui.app.build_app()
print("heavy:" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def time_start(browser, command: list[str], env: dict, port: int, ready_selector: str, log: Path) -> dict:
    """Start the command; seconds to the port answering and to `ready_selector` being visible."""
    page = browser.new_page()
    start = time.perf_counter()
    with open(log, "wb") as handle:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited early:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
            if time.perf_counter() - start > 300:
                raise RuntimeError(f"no answer on {url} within 300 s")
        listening = time.perf_counter() - start
        page.goto(url)
        page.locator(ready_selector).first.wait_for(state="visible", timeout=120_000)
        rendered = time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        page.close()
    return {"listening_s": round(listening, 2), "first_tab_s": round(rendered, 2)}


def fresh_env(scratch: Path, name: str) -> dict:
    home = scratch / name
    home.mkdir()
    models = Path(os.environ.get("STUDIO_TEST_MODELS", ROOT / ".studio" / "test-models"))
    if models.is_dir():
        (home / "models").symlink_to(models, target_is_directory=True)
    return {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONPATH": str(ROOT)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results: dict = {"load_before": load(), "floor": [], "studio": []}
    with tempfile.TemporaryDirectory() as scratch_name, sync_playwright() as playwright:
        scratch = Path(scratch_name)
        (scratch / "floor.py").write_text(FLOOR_APP)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        for repeat in range(args.repeats):
            port = free_port()
            results["floor"].append(time_start(browser, [sys.executable, str(scratch / "floor.py"), str(port)],
                                               fresh_env(scratch, f"floor{repeat}"), port, "text=Sample or workspace dataset",
                                               scratch / f"floor{repeat}.log"))
            port = free_port()
            results["studio"].append(time_start(browser, [sys.executable, "-m", "studio.cli", "ui", "--port", str(port)],
                                                fresh_env(scratch, f"studio{repeat}"), port, "text=Sample or workspace dataset",
                                                scratch / f"studio{repeat}.log"))
        browser.close()
        heavy = subprocess.run([sys.executable, "-c", HEAVY_CHECK], cwd=ROOT, env=fresh_env(scratch, "heavy"),
                               capture_output=True, text=True, check=False)
    marker = [line for line in heavy.stdout.splitlines() if line.startswith("heavy:")]
    results["heavy_imported_at_start"] = marker[-1][6:].split(",") if marker else [f"check failed: {heavy.stderr[-300:]}"]
    results["heavy_imported_at_start"] = [name for name in results["heavy_imported_at_start"] if name]
    results["load_after"] = load()
    best = {kind: min(r["first_tab_s"] for r in results[kind]) for kind in ("floor", "studio")}
    results["studio_first_tab_s"] = best["studio"]
    results["floor_first_tab_s"] = best["floor"]
    results["studio_over_floor"] = round(best["studio"] / best["floor"], 2)
    for kind in ("floor", "studio"):
        print(f"{kind:>7}: " + "  ".join(f"listening {r['listening_s']} s, first tab {r['first_tab_s']} s" for r in results[kind]))
    print(f"studio first tab {best['studio']} s (target < 8 s), {results['studio_over_floor']}x a bare gradio app; "
          f"heavy modules at start: {results['heavy_imported_at_start'] or 'none'}; "
          f"load {results['load_before']} -> {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
