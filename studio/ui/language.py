"""The studio's interface languages. English is written next to each widget (house style); every
other language is a catalogue, `assets/i18n/<code>.yaml`, mapping the English text to its
translation. Two kinds of text go through it:

- what the page is built with (labels, help, button and tab names, fixed Markdown): `t(text)`
  marks it for gradio's own i18n, which translates it in the browser for the page's language;
- what a handler answers (status lines, findings, verdicts, errors): `say(text, **values)` or
  `translate(text)` translate it on the server for the language of the visitor being served.
  Catalogue entries may hold `{name}` fields: "Loaded {rows} rows." matches "Loaded 25 rows." and
  comes back as "Se cargaron 25 filas." A person's own data (a record's text, a path) never goes
  through it.

The visitor's choice is a cookie (`studio-language`), set by the picker in the header and kept
for a year; without one, the browser's language decides (gradio's rule, and Accept-Language on
the server). The page reads the cookie before gradio starts (`RememberLanguage`), so the browser
and the server always agree. Knows nothing about the tabs.
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
from http.cookies import SimpleCookie

import gradio as gr
import yaml
from gradio.context import LocalContext
from gradio.i18n import I18nData

from core.workspace import ASSETS

CATALOGUES = ASSETS / "i18n"
ENGLISH = "en"
LANGUAGES = {"en": "English", "es": "Español"}  # code -> the language's own name, as the picker shows it
COOKIE = "studio-language"
FIELD = re.compile(r"\{(\w+)\}")


@functools.cache
def catalogue(code: str) -> dict[str, str]:
    """English text -> its translation in `code` (empty for English)."""
    if code == ENGLISH:
        return {}
    data = yaml.safe_load((CATALOGUES / f"{code}.yaml").read_text(encoding="utf-8")) or {}
    return {str(english): str(translated) for english, translated in data.items()}


@functools.cache
def _templates(code: str) -> list[tuple[re.Pattern, str]]:
    """The catalogue's entries with `{fields}`, as patterns that match a filled-in English text;
    the longest first, so "Loaded {rows} rows from {name}." wins over "Loaded {rows} rows."."""
    found = []
    for english, translated in catalogue(code).items():
        if not FIELD.search(english):
            continue
        pattern, end = "", 0
        for match in FIELD.finditer(english):
            pattern += re.escape(english[end:match.start()]) + f"(?P<{match.group(1)}>.*?)"
            end = match.end()
        literal = {name for name in FIELD.findall(english) if f"`{{{name}}}`" in english}  # a path or a name: as it is
        lines = "\n" in english  # only a message written over several lines may match several lines
        found.append((re.compile(pattern + re.escape(english[end:]) + r"\Z", re.S if lines else 0), translated, literal,
                      lines))
    return sorted(found, key=lambda item: -len(item[0].pattern))


def t(text: str):
    """A fixed text of the page, for gradio's i18n (translated in the browser)."""
    if "}" in text:  # gradio's marker ends at the first closing brace: the key would show raw
        raise ValueError(f"a page text can't hold '}}': {text[:60]!r}")
    return I18nData(text)


def choices(values) -> list[tuple]:
    """A fixed list of choices shown in the page's language, each still standing for its English
    value (what handlers receive)."""
    def shown(text: str):
        return text if "}" in text else t(text)  # a file named with a brace is shown as it is

    return [(shown(value), value) if isinstance(value, str) else (shown(value[0]), value[1]) for value in values]


def translate(text: str, code: str | None = None) -> str:
    """`text`, written in English by us (or by core), in the visitor's language. A whole entry,
    else a filled-in entry, else line by line (a Markdown list, a report); what the catalogue
    lacks stays English."""
    code = code or current_language()
    if code == ENGLISH or not text:
        return text
    return _translated(text, code)


@functools.lru_cache(maxsize=8192)  # status lines repeat on every tick of a live view
def _translated(text: str, code: str) -> str:
    words = catalogue(code)
    if text in words:
        return words[text]
    several = "\n" in text
    for pattern, translated, literal, lines in _templates(code):
        match = pattern.match(text) if lines == several else None
        if match:
            return translated.format(**{key: value if key in literal else translate(value, code)
                                        for key, value in match.groupdict().items()})
    if several:
        return "\n".join(_translate_line(line, code) for line in text.split("\n"))
    if " · " in text:  # a line of parts ("Learning rate ✓ · LoRA rank ✓"): each part on its own
        parts = text.split(" · ")
        shown = [translate(part, code) for part in parts]
        if shown != parts:
            return " · ".join(shown)
    if ", " in text:  # a list of our words ("e-mail address, phone number"), when every item is one
        parts = text.split(", ")
        shown = [translate(part, code) for part in parts]
        if all(new != old for new, old in zip(shown, parts)):
            return ", ".join(shown)
    return text


def _translate_line(line: str, code: str) -> str:
    """One line of Markdown: its list or heading mark kept, its words translated."""
    mark = re.match(r"\s*(?:\[[\w -]+\]\s+)?(?:[-*]\s+|#+\s+|\d+\.\s+|>\s*)?", line).group(0)  # also a log's [step]
    end = line[len(line.rstrip()):]  # Markdown's two-space line break
    rest = line[len(mark):len(line) - len(end)]
    translated = translate(rest, code)
    if translated == rest and rest.startswith("**") and "** " in rest:  # "**Label** sentence"
        head, _, tail = rest[2:].partition("** ")
        translated = f"**{translate(head, code)}** {translate(tail, code)}"
    return mark + translated + end


def say(text: str, **values) -> str:
    """A message in the visitor's language, its `{fields}` filled in."""
    code = current_language()
    template = catalogue(code).get(text, text)
    return template.format(**values) if values else template


def current_language() -> str:
    """The language of the visitor whose event is being served: their choice (the cookie), else
    their browser's, else English. English outside an event (the CLI, tests calling handlers)."""
    return _SERVING.get() or request_language(LocalContext.request.get(None))


def language_of(cookie_header: str, accept_language: str) -> str:
    """The language a request asks for: the remembered choice, else the first of the browser's
    languages the studio has, else English."""
    cookie = SimpleCookie()
    try:
        cookie.load(cookie_header or "")
    except Exception:  # a malformed Cookie header from a browser is not our error to raise
        cookie = SimpleCookie()
    chosen = cookie.get(COOKIE)
    if chosen is not None and chosen.value in LANGUAGES:
        return chosen.value
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in LANGUAGES:
            return code
    return ENGLISH


def gradio_i18n():
    """The catalogues for gradio's `launch(i18n=...)`: the page's own texts only (`t()`), since
    gradio formats what it translates as ICU messages, where `{field}` means something."""
    return gr.I18n(**{code: {english: text for english, text in catalogue(code).items() if not FIELD.search(english)}
                      for code in LANGUAGES})


# Runs before gradio's own scripts: gradio takes the page's language from navigator.language when
# it starts, so the remembered choice is put there first. Without a choice the browser's language
# stays, and the server reads the same one from Accept-Language: page and answers agree.
_CHOOSE_SCRIPT = """<script>(() => {
  const known = %(known)s, name = %(cookie)s;
  const saved = (document.cookie.match(new RegExp('(?:^|; )' + name + '=([^;]*)')) || [])[1];
  if (!known.includes(saved)) return;
  for (const key of ['language', 'languages'])
    Object.defineProperty(navigator, key, {get: () => key === 'language' ? saved : [saved], configurable: true});
})();</script>"""

PICK_JS = """(code) => {
  document.cookie = '%s=' + code + '; path=/; max-age=31536000; SameSite=Lax';
  window.location.reload();
  return code;
}""".replace("%s", COOKIE)


def build_picker() -> gr.Dropdown:
    """The language picker, for the page's header: each language in its own name. Choosing one
    remembers it (a cookie) and reloads the page in it."""
    picker = gr.Dropdown(choices=[(name, code) for code, name in LANGUAGES.items()], value=None, show_label=False,
                         container=False, scale=0, min_width=130, elem_id="studio-language",
                         info=None, interactive=True)
    picker.input(None, picker, None, js=PICK_JS)
    return picker



def choose_script() -> bytes:
    return (_CHOOSE_SCRIPT % {"known": json.dumps(list(LANGUAGES)), "cookie": json.dumps(COOKIE)}).encode()


class RememberLanguage:
    """ASGI middleware: the page (`GET /`) gets `choose_script()` at the top of its <head>."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path", "/").rstrip("/") != \
                scope.get("root_path", "").rstrip("/"):
            return await self.app(scope, receive, send)
        start: dict = {}
        body = bytearray()

        async def keep(message):
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            html = bytes(body)
            headers = [(key, value) for key, value in start.get("headers", []) if key.lower() != b"content-length"]
            if any(key.lower() == b"content-type" and value.startswith(b"text/html") for key, value in headers):
                html = html.replace(b"<head>", b"<head>" + choose_script(), 1)
            headers.append((b"content-length", str(len(html)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": html})

        await self.app(scope, receive, keep)


# ---------------------------------------------------------------- what handlers answer

MESSAGES: set[int] = set()  # ids of the components whose values are the studio's own words
_SERVING: contextvars.ContextVar[str | None] = contextvars.ContextVar("studio_language", default=None)


def our_words(component):
    """Mark a component whose every value is the studio's words (a status line, a verdict), never
    a person's data: what handlers send it is translated for the visitor."""
    MESSAGES.add(component._id)
    return component


def request_language(request) -> str:
    request = request[0] if isinstance(request, list) and request else request
    headers = getattr(request, "headers", None) or {}
    return language_of(headers.get("cookie", ""), headers.get("accept-language", ""))


class TranslatedBlocks(gr.Blocks):
    """gr.Blocks whose events answer in the visitor's language: the values sent to `message()`
    components, and the label, help and placeholder of any update (always the studio's words),
    go through `translate`; so do a table's column names. The handlers themselves stay English
    (tests and the CLI call them as they are)."""

    async def process_api(self, block_fn, inputs, state=None, request=None, *args, **kwargs):
        token = _SERVING.set(request_language(request))
        try:
            return await super().process_api(block_fn, inputs, state, request, *args, **kwargs)
        finally:
            _SERVING.reset(token)

    async def postprocess_data(self, block_fn, predictions, state):
        code = _SERVING.get()
        if code and code != ENGLISH and block_fn.outputs:
            predictions = translate_outputs(block_fn, predictions, code)
        return await super().postprocess_data(block_fn, predictions, state)


def translate_outputs(block_fn, predictions, code: str):
    outputs = list(block_fn.outputs)
    if isinstance(predictions, dict) and predictions and not _is_update(predictions):
        return {block: _translate_value(block, value, code) for block, value in predictions.items()}
    if len(outputs) == 1 and not block_fn.batch:
        return _translate_value(outputs[0], predictions, code)
    if isinstance(predictions, (list, tuple)):
        return [_translate_value(outputs[index], value, code) if index < len(outputs) else value
                for index, value in enumerate(predictions)]
    return predictions


def _is_update(value) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update"


def _translate_value(block, value, code: str):
    ours = getattr(block, "_id", None) in MESSAGES
    if isinstance(value, gr.blocks.Block):  # a component returned as an update: gradio reads its constructor args
        value = {**value.constructor_args, "__type__": "update"}
    if _is_update(value):
        value = dict(value)
        for key in ("label", "info", "placeholder"):
            if isinstance(value.get(key), str):
                value[key] = translate(value[key], code)
        if isinstance(value.get("choices"), list):
            value["choices"] = [_translated_choice(choice, code) for choice in value["choices"]]
        if "value" in value:
            value["value"] = _translate_value(block, value["value"], code) if ours or _is_table(block) else value["value"]
        return value
    if ours and isinstance(value, str):
        return translate(value, code)
    if hasattr(value, "columns") and hasattr(value, "rename"):  # a table: its column names are ours
        return value.rename(columns={name: translate(name, code) for name in value.columns if isinstance(name, str)})
    if isinstance(block, gr.Plot) and hasattr(value, "update_layout"):
        return _translated_figure(value, code)
    if _is_table(block) and isinstance(value, list) and getattr(block, "headers", None) \
            and all(isinstance(row, (list, tuple)) and len(row) == len(block.headers) for row in value):
        return {"data": value, "headers": [translate(str(name), code) for name in block.headers]}
    return value


def _translated_figure(figure, code: str):
    """A chart's title, axis titles, notes and series names in the visitor's language (a copy:
    the handler's figure may be kept)."""
    figure = type(figure)(figure)
    layout = figure.layout
    if layout.title and layout.title.text:
        layout.title.text = translate(layout.title.text, code)
    present = layout.to_plotly_json()
    for axis in ("xaxis", "yaxis", "yaxis2"):
        title = layout[axis].title if axis in present else None
        if title and title.text:
            title.text = translate(title.text, code)
    for note in layout.annotations or ():
        if note.text:
            note.text = translate(note.text, code)
    for trace in figure.data:
        if getattr(trace, "name", None):
            trace.name = translate(trace.name, code)
    return figure


def _is_table(block) -> bool:
    return isinstance(block, gr.Dataframe)


def _translated_choice(choice, code: str):
    """A choice's shown name in the visitor's language; what it stands for (its value) unchanged."""
    if isinstance(choice, (list, tuple)) and len(choice) == 2 and isinstance(choice[0], str):
        return (translate(choice[0], code), choice[1])
    if isinstance(choice, str):
        shown = translate(choice, code)
        return (shown, choice) if shown != choice else choice
    return choice


def translate_tables(app: gr.Blocks) -> None:
    """Tables that start empty and that no page-load event fills show their column names in the
    visitor's language from the first look (gradio's i18n does not reach a table's header row)."""
    loaded = {block._id for fn in app.fns.values() if any(event == "load" for _, event in fn.targets)
              for block in fn.outputs}
    tables = [block for block in app.blocks.values() if _is_table(block) and block.headers and block._id not in loaded
              and not (block.value or {}).get("data")]
    if not tables:
        return

    def headers_for_visitor():
        code = current_language()
        if code == ENGLISH:
            return [gr.skip()] * len(tables)
        return [{"data": [], "headers": [translate(str(name), code) for name in table.headers]} for table in tables]

    app.load(headers_for_visitor, outputs=tables, show_progress="hidden")
