"""The app's start-up: queue settings are set while the page is still empty (gradio rebuilds its
server app on every queue() call), and building the page imports no heavy library."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers.server import ROOT


def test_queue_settings_survive_the_build():
    from studio.ui.app import build_app

    app = build_app()
    assert app._queue.max_size == 32 and app._queue.default_concurrency_limit == 1


def test_building_the_page_imports_no_heavy_library():
    code = ("import sys, studio.ui.app; studio.ui.app.build_app(); "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'peft', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_downloads_the_studio_offers_lie_in_folders_it_serves(studio_home):
    """gradio refuses to offer a file outside the working folder, the system's temporary folder and
    `allowed_paths`: a reviewed dataset's export and the A/B's results must be inside the latter
    (the browser journeys run their workspaces outside the temporary folder to catch the rest)."""
    from pathlib import Path

    from core.dataset.review import review_dir
    from core.workspace import workspace
    from studio.ui.app import launch_kwargs

    served = [Path(folder).resolve() for folder in launch_kwargs()["allowed_paths"]]
    offered = [review_dir(studio_home / "datasets" / "mine.jsonl") / "mine-reviewed.jsonl",
               workspace().exports / "ab-20261207-090000.csv", workspace().exports / "ab-20261207-090000-report" / "report.md"]
    for path in offered:
        assert any(path.resolve().is_relative_to(folder) for folder in served), path
    assert not any((studio_home / "runs").resolve().is_relative_to(folder) for folder in served)
