"""Export tab handlers, called directly: the form becomes a plan, the stream carries the log,
the verification table and the `ollama run` command, and the Hub token never comes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.export import pipeline
from studio.ui.export import tab as export_tab
from tests.helpers.models import make_lora_run

TOKEN = "hf_tabSecretToken987654"


@pytest.fixture
def tiny_run_in_workspace(tiny_model_dir, studio_home):
    return make_lora_run(tiny_model_dir, studio_home / "runs" / "tiny-tab", recipe_model=None)


def _form(run, **overrides):
    form = dict(run_path=getattr(run, "name", run), checkpoint="best", do_merge=True, do_hub=False, do_gguf=True, do_ollama=False,
                do_verify=True, gguf_type="q8_0", ollama_name="", ollama_host="", hub_repo="", hub_private=True,
                hub_token="", hub_what="auto")
    form.update(overrides)
    return list(form.values())


def test_the_tab_builds_and_reads_the_runs_whenever_it_is_shown():
    """Issue 22: the run list was built when the server started; page load and selecting the tab
    now read it again (and the ↻ button still does)."""
    import gradio as gr

    with gr.Blocks() as app:
        with gr.Tab("Export") as page:
            export_tab.build_export_tab(shown=[app.load, page.select])
    by_trigger = {(target[1]) for fn in app.fns.values() if fn.fn is export_tab.refresh_runs for target in fn.targets}
    assert {"load", "select", "click"} <= by_trigger


def test_refreshing_keeps_the_picked_run_and_checkpoint(tiny_run_in_workspace, studio_home):
    import shutil

    run, checkpoint = export_tab.refresh_runs(None)
    assert run["value"] == "tiny-tab" and checkpoint["value"] == "best"
    shutil.copytree(tiny_run_in_workspace, studio_home / "runs" / "tiny-later")  # finished since
    run, checkpoint = export_tab.refresh_runs("tiny-tab", "final")
    assert run["value"] == "tiny-tab" and checkpoint["value"] == "final"
    assert "tiny-later" in [value for _, value in run["choices"]]
    run, checkpoint = export_tab.refresh_runs("gone-run", "final")  # a deleted run: the newest one instead
    assert run["value"] in ("tiny-tab", "tiny-later") and checkpoint["value"] == "best"


def test_runs_and_checkpoints_are_listed(tiny_run_in_workspace):
    assert ("tiny-tab · completed", "tiny-tab") in export_tab.run_choices()
    assert export_tab.checkpoint_choices("tiny-tab")[0] == ("best (default)", "best")
    assert "final" in [value for _, value in export_tab.checkpoint_choices("tiny-tab")]


def test_form_mistakes_are_readable_messages(tiny_run_in_workspace):
    with pytest.raises(pipeline.ExportError, match="Pick a run"):
        export_tab.build_plan(*_form(""))
    with pytest.raises(pipeline.ExportError, match="Ollama needs a model name"):
        export_tab.build_plan(*_form(tiny_run_in_workspace, do_ollama=True))
    status, *_ = next(export_tab.run_export_stream(*_form("", do_hub=True)))
    assert status.startswith("**Cannot export:**")


def test_k_quant_note_explains_the_llama_extra(monkeypatch):
    from core.export import gguf

    monkeypatch.setattr(gguf, "llama_cpp_available", lambda: False)
    assert "install the llama extra" in export_tab.gguf_type_note("q4_k_m")


def test_the_hub_token_is_never_echoed(tiny_run_in_workspace, studio_home, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    outputs = list(export_tab.run_export_stream(*_form(tiny_run_in_workspace, do_merge=False, do_gguf=False, do_verify=False,
                                                       do_hub=True, hub_repo="me/tiny", hub_token=TOKEN)))
    assert "HF_HUB_OFFLINE" in outputs[-1][1]  # the push was refused, and said why
    assert all(TOKEN not in str(part) for out in outputs for part in out)
    assert not any(TOKEN in p.read_text(errors="ignore") for p in (studio_home / "exports").rglob("*") if p.is_file())


@pytest.mark.slow
def test_export_button_streams_log_table_and_ollama_command(tiny_run_in_workspace, ollama_stand_in, monkeypatch):  # noqa: F811
    host, seen = ollama_stand_in
    monkeypatch.setenv("STUDIO_OLLAMA_HOSTS", host)  # the operator allows the stand-in
    outputs = list(export_tab.run_export_stream(*_form(tiny_run_in_workspace, do_ollama=True, ollama_name="tiny-tab",
                                                       ollama_host=host)))
    status, log, table, command, summary = outputs[-1]
    assert len(outputs) > 2  # it streamed
    assert status.startswith("**Export finished**") and "prompts agree" in status
    assert "[merge] merge: done" in log and "[gguf] gguf: done" in log and "MB)" in log
    assert len(table) == len(pipeline.DEFAULT_PROMPTS) and table[0][3].startswith(("✓", "✗"))
    assert command == "ollama run tiny-tab" and seen.creates[0]["model"] == "tiny-tab"
    files, note = export_tab.export_downloads(summary)  # what it made, to download
    names = [Path(f).name for f in files["value"]]
    assert names[0].endswith("-q8_0.gguf") and names[1] == "Modelfile" and names[2].endswith(".zip") and not note
    import zipfile

    with zipfile.ZipFile(files["value"][2]) as archive:
        assert any(name.endswith("model.safetensors") for name in archive.namelist())
    again, _ = export_tab.export_downloads(summary)
    assert again["value"][2] == files["value"][2]  # the zip is reused while the folder is unchanged
    assert export_tab.export_downloads(None)[0]["visible"] is False


def test_per_tensor_lines_overwrite_each_other_in_the_log():
    log = ["[gguf] gguf: started"]
    for line in ("[gguf] blk.0.attn_q.weight, torch.float32 --> Q8_0", "[gguf] blk.0.attn_k.weight, torch.float32 --> Q8_0",
                 "[gguf] gguf: done"):
        export_tab.append_log(log, line)
    assert log == ["[gguf] gguf: started", "[gguf] blk.0.attn_k.weight, torch.float32 --> Q8_0", "[gguf] gguf: done"]


def test_a_typed_ollama_host_must_be_one_the_operator_allows(tiny_run_in_workspace, monkeypatch):
    monkeypatch.delenv("STUDIO_OLLAMA_HOSTS", raising=False)
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    outputs = list(export_tab.run_export_stream(*_form(tiny_run_in_workspace, do_ollama=True, ollama_name="x",
                                                       ollama_host="http://169.254.169.254:80")))
    assert len(outputs) == 1 and outputs[0][0].startswith("**Cannot export:**") and "STUDIO_OLLAMA_HOSTS" in outputs[0][0]
    assert export_tab.build_plan(tiny_run_in_workspace.name, "best", True, False, False, True, False, "q8_0", "x",
                                 "127.0.0.1:11434/", "", True, "", "auto").ollama_host == "http://127.0.0.1:11434"
    monkeypatch.setenv("STUDIO_OLLAMA_HOSTS", "http://gpu-box:11434, http://other:1")
    assert export_tab.build_plan(tiny_run_in_workspace.name, "best", True, False, False, True, False, "q8_0", "x",
                                 "HTTP://GPU-BOX:11434", "", True, "", "auto").ollama_host == "http://gpu-box:11434"
    assert export_tab.build_plan(tiny_run_in_workspace.name, "best", True, False, False, True, False, "q8_0", "x",
                                 "", "", True, "", "auto").ollama_host is None, "empty: the server's own OLLAMA_HOST"


def test_a_merged_model_too_large_for_the_browser_is_pointed_at(tmp_path):
    from core.export.downloads import downloads

    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "model.safetensors").write_bytes(b"0" * 4096)
    gguf = tmp_path / "gguf" / "m-q8_0.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    summary = {"steps": {"merge": {"state": "done", "path": str(merged)}, "gguf": {"state": "done", "path": str(gguf)},
                         "hub": {"state": "failed"}}}
    files, notes = downloads(summary, zip_limit=1024)
    assert files == [gguf] and "too large to download" in notes[0] and str(merged) in notes[0]
    files, notes = downloads(summary)
    assert files[-1].name == "merged.zip" and not notes


@pytest.mark.parametrize("tab_choices, cli_args", [
    (dict(do_merge=False, do_gguf=False), []),  # nothing ticked: a merge, on both sides
    (dict(do_merge=False, do_gguf=False, do_ollama=True, ollama_name=" tuned "), ["--ollama", "tuned"]),
    (dict(do_merge=False, do_gguf=True, gguf_type="f16", do_verify=False), ["--gguf", "f16", "--no-verify"]),
    (dict(do_merge=False, do_gguf=False, do_hub=True, hub_repo="me/tiny", hub_what="merged"), ["--hub", "me/tiny", "--hub-what", "merged"]),
])
def test_the_tab_and_the_cli_build_the_same_plan(tiny_run_in_workspace, monkeypatch, tab_choices, cli_args):
    from studio.cli import commands as cli

    seen = []
    monkeypatch.setattr(pipeline, "run_export", lambda plan: seen.append(plan) or iter(()))
    cli.main(["export", str(tiny_run_in_workspace), *cli_args])
    from_tab = export_tab.build_plan(*_form(tiny_run_in_workspace, **tab_choices))
    assert [step for step in ("merge", "gguf_type", "ollama_name", "hub_repo", "hub_what", "verify")
            if getattr(seen[0], step) != getattr(from_tab, step)] == []
    assert seen[0].merge == (not cli_args) and (seen[0].gguf_type is not None) == bool({"--gguf", "--ollama"} & set(cli_args))


def test_a_plan_that_asks_for_an_unknown_push_is_refused_in_words():
    with pytest.raises(pipeline.ExportError, match="one of auto, adapter, merged, gguf"):
        pipeline.make_plan("run", hub="me/x", hub_what="everything")
