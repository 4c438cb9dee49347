"""What the studio answers, in Spanish, through the real queue API: the app is launched, a visitor
whose browser remembers Spanish (the cookie) posts every event once with the page's own values
(a sample dataset opened first, a finished run in the workspace), then again with a person's
mistakes in every field (a missing file, a bad recipe, a negative number), and every answer sent to one of
the studio's own message components is read back. None may still be English prose: each went
through the catalogue (assets/i18n/es.yaml) on the way out."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from studio.ui.language import MESSAGES
from tests.helpers.data import completed_run
from tests.helpers.server import queue_call, served_app

# Handlers that start long work (training, a generation, an export, model answers): their messages
# are in the catalogue like the rest, and the browser journeys run them; the walk leaves them out.
LONG = {"start_run", "resume_run", "queue_sweep", "start_qa", "resume_qa", "run_export_stream", "run_ab_report",
        "send_message", "retry_last", "preview_rewards"}

# Words that only English prose is made of; two of them in one answer mean it was not translated.
ENGLISH = re.compile(r"\b(the|and|is|are|of|to|with|this|first|was|not|can.t|it|its|in|for|from|has|yet|you|your)\b", re.I)


def _prose(value) -> list[str]:
    """The texts in an answer a person reads: a string, or an update's value, label and help."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and value.get("__type__") == "update":
        return [v for key in ("value", "label", "info") for v in [value.get(key)] if isinstance(v, str)]
    return []


def _english_pieces(text: str) -> list[str]:
    """The lines or markup-free pieces of an answer that read as English prose."""
    text = re.sub(r"`[^`]*`|\([^)]*[/_.][^)]*\)|https?://\S+", " ", text)  # code and paths are as they are
    pieces = re.split(r"<[^>]+>|\n", text)
    return [piece.strip() for piece in pieces if len(ENGLISH.findall(piece)) >= 2]


@pytest.fixture
def spanish_server(studio_home):
    completed_run("finished-run")  # a finished run, so run pickers and the history have one
    with served_app() as served:
        yield served


@pytest.mark.slow  # every event twice: about a minute on 2 cores
def test_every_answer_to_a_message_component_comes_back_in_spanish(spanish_server):
    import httpx

    app, base = spanish_server
    props = {c["id"]: c.get("props", {}) for c in app.config["components"]}

    def value_of(block, wrong: bool):
        """The page's own value, or (wrong) a person's mistake: a file that is not there, a recipe
        with a bad field, a negative number."""
        value = None if block.stateful else props[block._id].get("value")
        kind = type(block).__name__
        if wrong and kind == "Code":
            return "model: {name: embedded}\ndata: {path: no-such-file.jsonl}\ntraining: {epochs: 0, batch_size: 0}\n"
        if wrong and kind in ("Textbox", "Dropdown") and not props[block._id].get("multiselect"):
            return "no-such-file.jsonl"
        if wrong and kind == "Number":
            return -1
        return getattr(value, "key", value)  # a page text: what the page sends is the English key

    fns = [(index, fn) for index, fn in app.fns.items() if fn.fn is not None]
    opening = [item for item in fns if item[1].fn.__name__ in ("open_dataset", "open_and_check")]
    fns = opening + [item for item in fns if item not in opening]  # a dataset open first: its views fill
    found, answered = [], 0
    with httpx.Client(timeout=120, cookies={"studio-language": "es"}) as client:
        session = uuid.uuid4().hex
        for (index, fn), wrong in [(item, False) for item in fns] + [(item, True) for item in fns]:
            ours = [position for position, block in enumerate(fn.outputs) if block._id in MESSAGES]
            if not ours or fn.fn.__name__ in LONG:
                continue
            trigger = fn.targets[0][0] if fn.targets else None
            event = {"index": [0, 0], "value": "1", "row_value": ["1"], "col_value": ["1"], "selected": True}
            inputs = [value_of(block, wrong) for block in fn.inputs]
            stream = queue_call(base, session, index, inputs, event, trigger, client=client)
            for line in stream.splitlines():
                message = json.loads(line[5:])
                if message.get("msg") not in ("process_completed", "process_generating"):
                    continue
                data = (message.get("output") or {}).get("data") or []
                answered += 1
                for position in ours:
                    if position < len(data):
                        found += [(fn.name, piece[:160]) for text in _prose(data[position]) for piece in _english_pieces(text)]
    assert answered > 40, "the walk must reach most message-producing events"
    assert sorted(set(found)) == [], "answers still in English:\n" + "\n".join(f"{name}: {text}" for name, text in sorted(set(found)))
