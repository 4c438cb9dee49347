"""A visitor picks Spanish in the header: the page reloads in it (gradio's i18n for what the page
is built with), what the studio answers comes back in it (the check's status line and cards), and
the choice is remembered across a reload. At desktop and phone width; screenshots looked at."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("width", [1366, 390])
def test_spanish_is_chosen_answered_in_and_remembered(studio, browser, shot, width):
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(studio.url)
        page.get_by_role("button", name="Open and check").wait_for()  # an English browser gets English
        picker = page.locator("#studio-language input")
        picker.click()
        page.get_by_role("option", name="Español").click()
        page.get_by_role("button", name="Abrir y revisar").wait_for()  # the page came back in Spanish
        assert page.get_by_role("tab", name="Entrenar").count() == 1
        page.get_by_role("button", name="Abrir y revisar").click()
        status = page.locator("#ds-status")
        status.get_by_text("revisado en").wait_for()  # the server's answer, in the visitor's language
        assert "registros" in status.inner_text()
        assert "Ejemplos utilizables" in page.locator("#ds-cards").inner_text()
        shot(page, f"spanish-{width}")
        page.reload()
        page.get_by_role("button", name="Abrir y revisar").wait_for()  # remembered
        page.locator("#studio-header").get_by_text("Espacio de trabajo").wait_for()
        assert picker.input_value() == "Español"
        picker.click()
        page.get_by_role("option", name="English").click()
        page.get_by_role("button", name="Open and check").wait_for()
    finally:
        context.close()
