"""Making grounded Q&A: documents and chunks, the mix plan, row validation, and whole runs through
the real `ollama` client against a stand-in server on 127.0.0.1 (malformed JSON, JSON in the
thinking field, a spent budget, a timeout, connection refused, resume after a stop)."""

from __future__ import annotations

import itertools
import json
import os
import socket
import urllib.request
from pathlib import Path

import pytest

from core.dataset.make_backends import (
    PAIR_SCHEMA,
    BadReply,
    OllamaBackend,
    Reply,
    first_json_object,
    parse_reply,
)
from core.dataset.make_docs import Chunk, DocumentError, chunk_text, load_documents
from core.dataset.make_qa import (
    MakeError,
    QASettings,
    Slot,
    kind_counts,
    make_plan,
    validate_pair,
)
from core.dataset.make_run import read_manifest, request_stop, run_qa, sidecar
from core.workspace import ASSETS
from tests.helpers.ollama_standin import StandIn, valid_pair

DOCS = ASSETS / "make" / "docs"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rejected(out: Path) -> list[dict]:
    log = sidecar(out) / "rejected.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# ---------------------------------------------------------------- documents and plan


def test_bundled_documents_have_titles_and_chunks():
    docs = load_documents(DOCS)
    assert len(docs) == 5 and all(d.title and not d.title.endswith(".md") for d in docs)
    assert "Keeping a Sourdough Starter" in [d.title for d in docs]
    assert all(not d.text.startswith("#") for d in docs)


def test_chunks_overlap_and_cut_on_boundaries():
    text = " ".join(f"Sentence number {i} says something." for i in range(60))
    pieces = chunk_text(text, 200, 60)
    assert all(len(p) <= 200 for p in pieces) and len(pieces) > 5
    assert all(p.endswith(".") for p in pieces)  # cut at a sentence end
    for before, after in itertools.pairwise(pieces):
        assert after.split(". ")[0] in before  # each chunk starts with the end of the one before
    with pytest.raises(ValueError, match="overlap"):
        chunk_text(text, 100, 100)


def test_jsonl_and_pdf_documents(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"title": "Tides", "text": "Tides follow the moon."}) + "\n")
    (tmp_path / "scan.pdf").write_bytes(_tiny_pdf("Harbour rules: boats leave before dawn."))
    docs = load_documents(tmp_path)
    assert [(d.title, d.text) for d in docs] == [("Tides", "Tides follow the moon."),
                                               ("Scan", "Harbour rules: boats leave before dawn.")]
    (tmp_path / "corpus.jsonl").write_text('{"title": "x", "text": "ok"}\n{broken\n')
    with pytest.raises(DocumentError, match=r"corpus.jsonl:2: not valid JSON"):
        load_documents(tmp_path)


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text, written by hand (offsets computed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_plan_mix_is_exact_and_repeatable():
    chunks = [Chunk(f"Doc {d}", f"text {d} {i}", d, i) for d in range(3) for i in range(4)]
    assert kind_counts(QASettings(count=10)) == {"grounded": 6, "synthesis": 2, "refusal": 2}
    plan = make_plan(chunks, QASettings(count=50))
    assert [s.kind for s in plan].count("grounded") == 30 and plan == make_plan(chunks, QASettings(count=50))
    for slot in plan:
        if slot.kind == "synthesis":
            assert chunks[slot.context[0]].doc != chunks[slot.context[1]].doc
        if slot.kind == "refusal":
            assert chunks[slot.topic].doc != chunks[slot.context[0]].doc
    with pytest.raises(MakeError, match="at least two documents"):
        make_plan(chunks[:4], QASettings(count=5))
    with pytest.raises(MakeError, match="add up to 1"):
        QASettings(grounded=0.5).check()


# ---------------------------------------------------------------- validation


CHUNKS = [Chunk("Tide Tables", "Tides follow the moon. Spring tides come at full moon.", 0, 0),
          Chunk("Bees", "Bees dance to show where flowers are. The dance points at the sun.", 1, 0)]
GROUNDED = Slot(0, "grounded", (0,))
SYNTHESIS = Slot(1, "synthesis", (0, 1))
REFUSAL = Slot(2, "refusal", (0,), topic=1)


def _pair(**changes) -> dict:
    pair = {"question": "When are spring tides?", "answer": "According to Tide Tables, spring tides come at full moon.",
            "cited_titles": ["Tide Tables"], "evidence_quotes": ["Spring tides come at full moon."]}
    return pair | changes


@pytest.mark.parametrize("slot, pair, reason", [
    (GROUNDED, _pair(answer=""), "empty answer"),
    (GROUNDED, _pair(question=3), "schema: 'question'"),
    (GROUNDED, _pair(cited_titles=["Bees"]), "not in the context"),
    (GROUNDED, _pair(evidence_quotes=["Spring tides come at new moon."]), "not found in the context"),
    (GROUNDED, _pair(evidence_quotes=["moon"]), "too short"),
    (GROUNDED, _pair(answer="Spring tides come at full moon."), "names none of the context's titles"),
    (GROUNDED, _pair(answer="Tide Tables does not contain that."), "refuses although"),
    (SYNTHESIS, _pair(cited_titles=["Tide Tables", "Bees"], answer="Tide Tables and Bees agree."), "from each passage"),
    (SYNTHESIS, _pair(answer="Tide Tables and Bees agree."), "cite both"),
    (REFUSAL, _pair(answer="Spring tides come at full moon."), "does not refuse"),
])
def test_invalid_pairs_are_named(slot, pair, reason):
    problems = validate_pair(pair, slot, CHUNKS)
    assert any(reason in p for p in problems), problems


def test_valid_pairs_pass():
    assert validate_pair(_pair(evidence_quotes=["spring  tides come at FULL moon"]), GROUNDED, CHUNKS) == []
    synthesis = _pair(cited_titles=["Tide Tables", "Bees"], answer="Tide Tables ties water to the moon; Bees ties dances to the sun.",
                      evidence_quotes=["Tides follow the moon.", "The dance points at the sun."])
    assert validate_pair(synthesis, SYNTHESIS, CHUNKS) == []
    refusal = _pair(answer="Sorry, the provided context does not contain anything about bees.", cited_titles=[],
                    evidence_quotes=[])
    assert validate_pair(refusal, REFUSAL, CHUNKS) == []


def test_json_is_taken_from_thinking_and_a_spent_budget_is_named():
    assert parse_reply(Reply("", 'draft {"a": 1} final {"a": 2}')) == ({"a": 2}, "thinking")
    assert first_json_object("no json here") is None
    with pytest.raises(BadReply, match="whole num_predict budget \\(64 tokens\\) in its thinking"):
        parse_reply(Reply("", "thinking and thinking", "length"), 64)
    with pytest.raises(BadReply, match="malformed JSON"):
        parse_reply(Reply('{"question": "x", "answer'))


# ---------------------------------------------------------------- runs against the stand-in server


def test_run_keeps_valid_rows_and_retries_bad_ones_alone(tmp_path):
    out = tmp_path / "qa.jsonl"
    script = ["malformed", "thinking", "budget", "bad_quote", "http500", "garbage_body"]
    with StandIn(script) as server:
        backend = OllamaBackend("qwen3:4b", host=server.host, num_predict=512, think=False, timeout_s=5)
        manifest = run_qa(DOCS, out, QASettings(count=12), backend)
        first = server.requests[0]
    assert first["path"] == "/api/chat" and first["format"] == PAIR_SCHEMA and first["think"] is False
    assert first["options"] == {"temperature": 0.7, "num_predict": 512}
    rows = _rows(out)
    assert manifest["state"] == "completed" and manifest["total"] == 12
    assert len(rows) == manifest["kept"] == 11 and manifest["gave_up"] == [1]  # slot 1 met 4 bad replies in a row
    assert manifest["from_thinking"] == 1 and manifest["rejected"] == 5
    reasons = [r["reasons"][0] for r in _rejected(out)]
    assert any("malformed JSON" in r for r in reasons) and any("num_predict budget" in r for r in reasons)
    assert any("not found in the context" in r for r in reasons) and any("500" in r for r in reasons)
    assert any("unreadable reply" in r for r in reasons)
    assert {r["category"] for r in rows} == {"grounded", "synthesis", "refusal"}
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][1]["content"].startswith("Context:\n[1] ")


def test_a_budget_spent_thinking_turns_thinking_off(tmp_path):
    out = tmp_path / "qa.jsonl"
    with StandIn(["budget"]) as server:
        manifest = run_qa(DOCS, out, QASettings(count=2), OllamaBackend("m", host=server.host, num_predict=64))
        sent = [r.get("think") for r in server.requests]
    assert sent == [None, False, False] and manifest["kept"] == 2
    assert manifest["backend"]["thinking_turned_off"] is True


def test_generate_endpoint_and_timeout(tmp_path):
    out = tmp_path / "qa.jsonl"
    with StandIn(["slow"], slow_s=2.0) as server:
        backend = OllamaBackend("m", host=server.host, timeout_s=0.5, api="generate")
        manifest = run_qa(DOCS, out, QASettings(count=3), backend)
        paths = {r["path"] for r in server.requests}
    assert paths == {"/api/generate"} and manifest["kept"] == 3
    assert "timeout" in _rejected(out)[0]["reasons"][0]


def test_connection_refused_and_missing_model_stop_the_run_clearly(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "qa.jsonl"
    with pytest.raises(MakeError, match=f"no Ollama server answers at http://127.0.0.1:{port}"):
        run_qa(DOCS, out, QASettings(count=3), OllamaBackend("m", host=f"127.0.0.1:{port}", timeout_s=2))
    assert read_manifest(out)["state"] == "failed"
    with StandIn(models=("qwen3:4b",)) as server, pytest.raises(MakeError, match="ollama pull llama9"):
        run_qa(DOCS, tmp_path / "b.jsonl", QASettings(count=3), OllamaBackend("llama9", host=server.host))


def test_stop_then_resume_makes_each_pair_once(tmp_path):
    out = tmp_path / "qa.jsonl"
    with StandIn() as server:
        backend = OllamaBackend("m", host=server.host)
        seen = []
        stopped = run_qa(DOCS, out, QASettings(count=10), backend, should_stop=lambda: len(seen) >= 4,
                         on_progress=lambda m: seen.append(m["done"]))
        assert stopped["state"] == "stopped" and len(_rows(out)) == 3
        with out.open("a") as handle:  # a crash in the middle of writing a row
            handle.write('{"id": "qa-0000')
        request_stop(out)  # a stale stop request from the UI is cleared by a new start
        done = run_qa(DOCS, out, QASettings(count=10), backend)
    slots = [r["slot"] for r in _rows(out)]
    assert done["state"] == "completed" and sorted(slots) == list(range(10)) and done["sessions"] == 2
    with StandIn() as server, pytest.raises(MakeError, match=r"count changed"):
        run_qa(DOCS, out, QASettings(count=20), OllamaBackend("m", host=server.host))


def test_stop_file_stops_a_running_generation(tmp_path):
    out = tmp_path / "qa.jsonl"
    with StandIn() as server:
        manifest = run_qa(DOCS, out, QASettings(count=10), OllamaBackend("m", host=server.host),
                          on_progress=lambda m: m["done"] == 2 and request_stop(out))
    assert manifest["state"] == "stopped" and len(_rows(out)) == 2


def test_cli_make_qa(tmp_path, capsys):
    from studio.cli.commands import main

    out = tmp_path / "qa.jsonl"
    with StandIn(["malformed"]) as server:
        code = main(["make", "qa", str(DOCS), "--out", str(out), "--count", "5", "--host", server.host, "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["kept"] == 5
    assert main(["make", "qa", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert main(["make", "qa", str(DOCS), "--out", str(tmp_path / "x.jsonl"), "--grounded", "0.9"]) == 2
    assert "add up to 1" in capsys.readouterr().err


def _ollama_answers() -> bool:
    host = os.environ.get("OLLAMA_HOST")
    if not host:
        return False
    url = host if host.startswith("http") else f"http://{host}"
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _ollama_answers(), reason="no Ollama server at OLLAMA_HOST")
def test_real_ollama_server(tmp_path):
    model = os.environ.get("STUDIO_TEST_OLLAMA_MODEL", "qwen3:4b")
    manifest = run_qa(DOCS, tmp_path / "qa.jsonl", QASettings(count=3, retries=2),
                      OllamaBackend(model, num_predict=2048, timeout_s=600))
    assert manifest["state"] == "completed" and manifest["kept"] >= 1


@pytest.mark.slow
def test_embedded_model_smoke(tmp_path, embedded_dir):
    """The embedded 135M model end to end: it runs, and each slot is kept or logged with a reason."""
    from core.dataset.make_backends import TransformersBackend

    out = tmp_path / "qa.jsonl"
    manifest = run_qa(DOCS, out, QASettings(count=1, retries=0), TransformersBackend("embedded", num_predict=32))
    assert manifest["state"] == "completed" and manifest["done"] == 1
    assert len(_rows(out)) + len(_rejected(out)) == 1
    assert all(r["reasons"] for r in _rejected(out))


def test_stand_in_pairs_are_valid():
    """The stand-in's own answers pass validation, so the benchmark measures the studio, not retries."""
    chunks = load_documents(DOCS)
    assert chunks and valid_pair("Context:\n[1] T\nOne two three four five.\n\nWrite one")["cited_titles"] == ["T"]


@pytest.mark.slow
def test_made_dataset_is_named_in_a_recipe(tmp_path, capsys, embedded_dir):
    """A made file trains like any dataset: the CPU smoke recipe's dry run accepts it."""
    from studio.cli.commands import main

    out = tmp_path / "qa.jsonl"
    with StandIn() as server:
        run_qa(DOCS, out, QASettings(count=8), OllamaBackend("m", host=server.host))
    assert main(["make", "qa", str(DOCS), "--out", str(out), "--count", "8", "--host", "127.0.0.1:9",
                 "--token-stats", "embedded", "--max-length", "256"]) == 0  # complete: nothing asked of the server
    printed = capsys.readouterr().out
    assert "tokens (embedded): min " in printed and "of 8 over 256" in printed
    code = main(["train", "configs/smoke-cpu.yaml", "--set", f"data.path={out}", "--set", "data.format=messages",
                 "--set", "data.format_template=", "--dry-run", "--json"])
    plan = json.loads(capsys.readouterr().out)
    assert code == 0 and str(out) in json.dumps(plan)


@pytest.mark.parametrize("answer", ["The provided context does not mention bees, so I can't say.",
                                    "There is no information about bees in the context provided.",
                                    "That is not covered in the given passage; the text is about tides.",
                                    "I cannot answer that from the context: it only describes tides."])
def test_a_made_refusal_reads_as_a_refusal_to_the_evaluation_too(answer):
    """One refusal list (assets/patterns.yaml): the maker accepts exactly the refusals the A/B counts."""
    from core.eval.metrics import load_patterns

    assert validate_pair(_pair(answer=answer, cited_titles=[], evidence_quotes=[]), REFUSAL, CHUNKS) == []
    assert load_patterns().refusal.matches(answer)
    assert any("refuses although" in p for p in validate_pair(_pair(answer=answer), GROUNDED, CHUNKS))
