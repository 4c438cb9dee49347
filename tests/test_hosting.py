"""Hosting policy: demo limits, login from the environment, the ZeroGPU wrapper."""

from __future__ import annotations

import pytest

from core import hosting, recipes


def _recipe(**training):
    return recipes.from_dict({"data": {"path": "assets/friction_sample.jsonl", "max_length": 2048}, "training": training})


def test_demo_mode_from_env(monkeypatch):
    monkeypatch.delenv("STUDIO_DEMO", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert not hosting.demo_mode()
    monkeypatch.setenv("SPACE_ID", "someone/tuning-studio")
    assert hosting.demo_mode()
    monkeypatch.setenv("STUDIO_DEMO", "0")
    assert not hosting.demo_mode()


def test_demo_limits_clamp_steps_and_length(monkeypatch):
    monkeypatch.setenv("STUDIO_DEMO", "1")
    recipe = hosting.enforce_demo_limits(_recipe(epochs=50))
    assert recipe.training.max_steps == hosting.DEMO_MAX_STEPS
    assert recipe.data.max_length == hosting.DEMO_MAX_LENGTH
    small = hosting.enforce_demo_limits(_recipe(max_steps=5))
    assert small.training.max_steps == 5


def test_demo_refuses_other_models_and_qlora(monkeypatch):
    monkeypatch.setenv("STUDIO_DEMO", "1")
    other = recipes.from_dict({"model": {"name": "Qwen/Qwen3-4B"}, "data": {"path": "x.jsonl"}})
    with pytest.raises(recipes.RecipeError, match="model.name"):
        hosting.enforce_demo_limits(other)
    with pytest.raises(recipes.RecipeError, match="training.tuning"):
        hosting.enforce_demo_limits(_recipe(tuning="qlora"))


def test_outside_demo_recipes_are_untouched(monkeypatch):
    monkeypatch.setenv("STUDIO_DEMO", "0")
    recipe = _recipe(epochs=50)
    assert hosting.enforce_demo_limits(recipe).training.max_steps == -1


def test_auth_from_env(monkeypatch):
    monkeypatch.delenv("STUDIO_AUTH", raising=False)
    assert hosting.auth_from_env() is None
    monkeypatch.setenv("STUDIO_AUTH", "ana:s3cret:x")
    assert hosting.auth_from_env() == [("ana", "s3cret:x")]
    monkeypatch.setenv("STUDIO_AUTH", "nopassword")
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        hosting.auth_from_env()
    monkeypatch.setenv("STUDIO_AUTH", "ana:pw1, bob:pw:2")
    assert hosting.auth_from_env() == [("ana", "pw1"), ("bob", "pw:2")]
    monkeypatch.setenv("STUDIO_AUTH", "ana:pw1,ana:pw2")
    with pytest.raises(ValueError, match="twice"):
        hosting.auth_from_env()


def test_gpu_wrapper_is_a_no_op_without_spaces():
    import importlib.util

    from studio.ui.zerogpu import gpu

    def work(x):
        return x * 2

    wrapped = gpu(work)
    if importlib.util.find_spec("spaces") is None:
        assert wrapped is work
    assert wrapped(3) == 6


def test_starting_a_run_applies_the_demo_limits(monkeypatch, studio_home):
    """The limits hold wherever a run starts (Train tab, CLI): core.train.runs.start applies them."""
    from core.train import runs

    monkeypatch.setenv("STUDIO_DEMO", "1")
    other = recipes.from_dict({"model": {"name": "Qwen/Qwen3-4B"}, "data": {"path": "assets/friction_sample.jsonl"}})
    with pytest.raises(recipes.RecipeError, match="model.name: this demo studio trains only the embedded model"):
        runs.start(other)
    assert not list((studio_home / "runs").glob("*")), "a refused run left a folder behind"


def test_the_demo_header_does_not_show_the_servers_folders(monkeypatch, tmp_path):
    from studio.ui.app import header_markdown

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "secret-place"))
    monkeypatch.delenv("STUDIO_DEMO", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert "secret-place" in header_markdown(), "a studio you run yourself shows where its workspace is"
    monkeypatch.setenv("STUDIO_DEMO", "1")
    assert "secret-place" not in header_markdown() and "demo mode" in header_markdown()
