"""Every tab on a phone (390 x 844): nothing pushes the page sideways, no dropdown cuts its
value, checkbox labels are whole, and wide tables scroll inside themselves. Screenshots of each
tab go to test-artifacts/e2e/ to be looked at."""

from __future__ import annotations

import pytest

from tests.helpers.browser import open_tab

pytestmark = pytest.mark.e2e

# What overflows: the page (sideways scrolling of everything), a dropdown's text, a checkbox label.
MEASURE = """() => {
  const page = document.documentElement.scrollWidth;
  const shown = el => el.offsetParent !== null;
  const cut_inputs = [...document.querySelectorAll('.gradio-container input[role="listbox"], .gradio-container .wrap-inner input')]
      .filter(shown).filter(el => el.value && el.scrollWidth > el.clientWidth + 2).map(el => el.value);
  const cut_labels = [...document.querySelectorAll('.gradio-container label span')]
      .filter(shown).filter(el => el.scrollWidth > el.clientWidth + 2).map(el => el.innerText);
  // a checkbox squeezed into a sliver wraps its label a syllable a line, cut at the box's edge
  const narrow_boxes = [...document.querySelectorAll('.gradio-container input[type="checkbox"]')]
      .filter(shown).map(el => el.closest('label') || el.parentElement)
      .filter(el => el.getBoundingClientRect().width < Math.min(200, el.innerText.trim().length * 7 + 30))
      .map(el => el.innerText.trim());
  const tables = [...document.querySelectorAll('.gradio-container table')].filter(shown).map(t => {
      let box = t.parentElement; while (box && getComputedStyle(box).overflowX === 'visible') box = box.parentElement;
      return {wide: t.scrollWidth > 390, scrolls: !!box && ['auto', 'scroll'].includes(getComputedStyle(box).overflowX)};
  });
  return {page, cut_inputs, cut_labels, narrow_boxes, tables};
}"""


# The same page in Spanish (longer words): what the test clicks and waits for, by language.
WORDS = {"en": {"Dataset": "Dataset", "Train": "Train", "Chat": "Chat", "Export": "Export", "open": "Open and check",
                "records": "Records"},
         "es": {"Dataset": "Datos", "Train": "Entrenar", "Chat": "Chat", "Export": "Exportar", "open": "Abrir y revisar",
                "records": "Registros"}}


@pytest.fixture
def phone(browser, studio, request):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.add_cookies([{"name": "studio-language", "value": request.param, "url": studio.url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.words = WORDS[request.param]
    yield page
    context.close()


@pytest.mark.parametrize("phone", ["en", "es"], indirect=True)
@pytest.mark.parametrize("tab", ["Dataset", "Train", "Chat", "Export"])
def test_each_tab_fits_a_phone(studio, phone, shot, tab):
    words = phone.words
    phone.goto(studio.url)
    open_tab(phone, words[tab])
    if tab == "Dataset":
        phone.get_by_role("button", name=words["open"]).click()
        phone.locator("#ds-cards").get_by_text(words["records"], exact=True).wait_for()
    phone.wait_for_timeout(1500)
    shot(phone, f"phone-{tab.lower()}")
    found = phone.evaluate(MEASURE)
    assert found["page"] <= 392, f"{tab}: the page is {found['page']} px wide on a 390 px screen"
    assert found["cut_inputs"] == [], f"{tab}: dropdowns cut their value: {found['cut_inputs']}"
    assert found["cut_labels"] == [], f"{tab}: labels cut: {found['cut_labels']}"
    assert found["narrow_boxes"] == [], f"{tab}: checkboxes too narrow to read: {found['narrow_boxes']}"
    assert all(t["scrolls"] for t in found["tables"] if t["wide"]), f"{tab}: a wide table does not scroll inside itself"
