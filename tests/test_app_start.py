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
