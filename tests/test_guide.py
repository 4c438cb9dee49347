"""The "Start here" guide: four steps in plain words, each taking the person to its tab, the smoke
recipe's time on this machine once it has run here, and a hide that the browser remembers."""

from __future__ import annotations

import json

from studio.ui import guide


def test_each_step_says_what_it_does_and_the_first_sample_is_clean():
    from core.dataset import checks

    texts = [guide.step_markdown(tab) for tab, _, _ in guide.STEPS]
    assert [tab for tab, _, _ in guide.STEPS] == ["dataset", "train", "chat", "export"]
    assert all(len(text) > 80 for text in texts) and "about 1.5 minutes on a 2-core CPU" in texts[1]
    report = checks.check(str(guide.FIRST_SAMPLE), "auto")
    assert report.ok and report.problems == 0


def test_the_smoke_time_is_this_machines_once_it_ran_here(studio_home):
    run = studio_home / "runs" / "smoke-1"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "completed", "step": 40, "total_steps": 40,
                                                 "started_at": "2026-12-06T10:00:00+00:00",
                                                 "ended_at": "2026-12-06T10:02:30+00:00"}))
    (run / "recipe.yaml").write_text("name: smoke-cpu\n")
    assert "it took 2.5 minutes on this machine last time" in guide.step_markdown("train")


def test_hide_and_show_and_the_page_load_honours_the_browser():
    assert guide.hide_guide()[0] is True and guide.unhide_guide()[0] is False
    guide_box, show_button = guide.show_guide(True)
    assert guide_box["visible"] is False and show_button["visible"] is True
    assert guide.show_guide(None)[0]["visible"] is True
    assert guide.go_to("train").selected == "train"


def test_the_app_wires_every_go_button_to_the_tabs():
    from studio.ui.app import build_app

    app = build_app()
    go = [fn for fn in app.fns.values() if fn.fn is not None and fn.fn.__name__.startswith("go_to_")]
    assert sorted(fn.fn.__name__ for fn in go) == ["go_to_chat", "go_to_dataset", "go_to_export", "go_to_train"]
    assert any(fn.fn is guide.show_guide for fn in app.fns.values())
    labels = {getattr(c["props"].get("label"), "key", c["props"].get("label")) for c in app.config["components"]}
    assert "Sample or workspace dataset" in labels
    sample = next(c for c in app.config["components"] if getattr(c["props"].get("label"), "key", None) == "Sample or workspace dataset")
    assert sample["props"]["value"].endswith("friction_sample.jsonl")
