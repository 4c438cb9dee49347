"""Browser fixtures: a real studio server in its own process and Debian's Chromium driven by
Playwright. Screenshots of every step go to test-artifacts/e2e/ for a person to look at."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, MAKE_OLLAMA_PORT, Studio
from tests.helpers.server import SHARED_MODELS


@pytest.fixture(scope="module")
def studio_home_e2e(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("e2e_home")
    SHARED_MODELS.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(SHARED_MODELS, target_is_directory=True)
    return home


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
    page.set_default_timeout(60_000)  # a bound, not a wait: the other test worker may be training meanwhile
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


@pytest.fixture(scope="module")
def adapter_in_workspace(studio_home_e2e, embedded_dir):
    """A LoRA adapter on the embedded model whose weights really change the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(embedded_dir)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    folder = studio_home_e2e / "exports" / "e2e-adapter"
    peft_model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(embedded_dir).save_pretrained(folder)
    return folder
