"""The interface languages: the visitor's choice, the catalogue's completeness for everything the
page is built with, and the server translating what handlers answer (exact texts, filled-in
messages, Markdown line by line) without touching a person's data."""

from __future__ import annotations

import json
import re

import pytest

from studio.ui import language
from studio.ui.language import FIELD, catalogue, language_of, translate

SPANISH = "es"
OTHERS = [code for code in language.LANGUAGES if code != language.ENGLISH]


def test_the_remembered_choice_wins_then_the_browser_then_english():
    assert language_of("a=1; studio-language=es", "en-US,en") == "es"
    assert language_of("studio-language=en", "es-ES") == "en"
    assert language_of("", "fr-FR, es;q=0.8") == "es"  # the first of the browser's languages the studio has
    assert language_of("studio-language=../../etc", "de") == "en"  # a forged or unknown choice is ignored
    assert language_of('bad"cookie', "") == "en"


def test_translate_exact_filled_in_and_line_by_line():
    assert translate("Open a record first.", SPANISH) == "Primero abre un registro."
    # a message with fields: the values come back in place, themselves translated where they are ours
    status = ("**x.jsonl**: 25 records, 24 usable · format **chat** (messages) · checked in 0.1 s: "
              "**1 problem(s) found** (see Findings).")
    assert translate(status, SPANISH) == ("**x.jsonl**: 25 registros, 24 utilizables · formato **chat** (messages) · "
                                          "revisado en 0.1 s: **1 problema(s) encontrado(s)** (mira Hallazgos).")
    assert translate("- Open a record first.\n- Type a message first.", SPANISH) == \
        "- Primero abre un registro.\n- Primero escribe un mensaje."
    # what the catalogue lacks stays as it is, and English is never touched
    assert translate("A sentence nobody translated.", SPANISH) == "A sentence nobody translated."
    assert translate("Open a record first.", "en") == "Open a record first."


def test_say_fills_fields_in_the_language_being_served():
    token = language._SERVING.set(SPANISH)
    try:
        assert language.say("Note saved for record {n}.", n=4) == "Nota guardada en el registro 4."
    finally:
        language._SERVING.reset(token)
    assert language.say("Note saved for record {n}.", n=4) == "Note saved for record 4."  # no visitor: English


def test_every_text_the_page_is_built_with_has_a_translation(studio_home):
    """Walk the built page: every label, help text, placeholder, button, tab and fixed Markdown goes
    through gradio's i18n, and the catalogue has each one."""
    from studio.ui.app import build_app

    config = build_app().get_config_file()
    shown_as_is, keys = [], set()
    for component in config["components"]:
        props = component.get("props", {})
        for prop in ("label", "info", "placeholder", "value"):
            value = props.get(prop)
            if hasattr(value, "key"):
                keys.add(value.key)
            elif isinstance(value, str) and value.startswith("__i18n__"):
                keys.add(json.loads(value[len("__i18n__"):])["key"])
            elif isinstance(value, str) and (prop != "value" or component["type"] in ("markdown", "button", "html")) \
                    and len(re.findall(r"[A-Za-z]{3,}", value)) >= 2 and "{" not in value:
                shown_as_is.append((component["type"], prop, value[:80]))
    assert shown_as_is == [], f"page texts that skip the translation: {shown_as_is}"
    assert len(keys) > 250
    for code in OTHERS:  # adding a language is a row in LANGUAGES and a catalogue: this checks it is whole
        missing = sorted(key for key in keys if key not in catalogue(code))
        assert missing == [], f"no {code} for: {missing[:10]}"


@pytest.mark.parametrize("code", OTHERS)
def test_the_catalogue_is_well_formed(code):
    for english, translated in catalogue(code).items():
        assert set(FIELD.findall(english)) == set(FIELD.findall(translated)), f"fields differ: {english!r}"
        if not FIELD.search(english):  # the browser formats these as ICU messages: a brace would break it
            assert "{" not in translated and "}" not in english, english
        assert FIELD.sub("", english).strip(), f"an entry that is only fields would match anything: {english!r}"


def test_page_texts_with_a_closing_brace_are_refused():
    with pytest.raises(ValueError):
        language.t("a {field} here")
