"""Personal data and secrets: each kind found where it is planted, the traps (version numbers,
dates, order numbers, placeholder addresses, a card number failing Luhn) left alone, and the
findings in a dataset check named by record, field and span with the text masked, in the
report, `studio check` and the Dataset tab's cards."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.dataset import checks
from core.dataset.privacy import mask, scan
from tests.helpers.server import ROOT

PLANTED = {
    "write to ana.garcia@mailbox.org today": ("email", "ana.garcia@mailbox.org"),
    "call +44 20 7946 0958 after nine": ("phone", "+44 20 7946 0958"),
    "the office is (415) 555-2671": ("phone", "(415) 555-2671"),
    "paid with 4111 1111 1111 1111 yesterday": ("card", "4111 1111 1111 1111"),
    "transfer to DE89 3704 0044 0532 0130 00 please": ("iban", "DE89 3704 0044 0532 0130 00"),
    "the server at 81.2.69.160 answered": ("ip", "81.2.69.160"),
    "use hf_abcdefghijklmnopqrstuvwxyzABCDEFGH to push": ("hf_token", "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"),
    "OPENAI=sk-proj-abcdefghijklmnopqrstuvwxyz123456 ok": ("openai_key", "sk-proj-abcdefghijklmnopqrstuvwxyz123456"),
    "aws AKIAIOSFODNN7EXAMPLE key": ("aws_key", "AKIAIOSFODNN7EXAMPLE"),
    "token ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ12 leaked": ("github_token", "ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ12"),
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----": (
        "private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"),
}

TRAPS = [
    "version 1.2.3.4 is out", "on 2024-01-15 at 10:30:45", "order 1234567890123 shipped", "ask 127.0.0.1 or ::1",
    "pi is 3.14159265358979", "card 4111 1111 1111 1112 fails Luhn", "12,500 people in 1999", "Call 555 now",
    "temperature 0.7, top-p 0.9, 512 tokens", "ISBN 978-3-16-148410-0", "write to team@example.com",
    "docs use 203.0.113.7 and 2001:db8::1", "0000 0000 0000 0000 is a placeholder", "skills-based learning",
    "the ask-the-expert hf_hub download", "DE00 1234 not an iban",
]


@pytest.mark.parametrize("text", list(PLANTED))
def test_each_kind_is_found_where_it_is_planted(text):
    kind, value = PLANTED[text]
    found = scan(text)
    assert [(f.kind, text[f.start:f.end]) for f in found] == [(kind, value)]
    assert value not in mask(text) and mask(text).count("[") == 1


@pytest.mark.parametrize("text", TRAPS)
def test_traps_are_left_alone(text):
    assert scan(text) == [], [(f.kind, text[f.start:f.end]) for f in scan(text)]


def _dataset(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "How do I reach support?"},
                      {"role": "assistant", "content": "Mail ana.garcia@mailbox.org or call +44 20 7946 0958."}]},
        {"messages": [{"role": "user", "content": "My key is hf_abcdefghijklmnopqrstuvwxyzABCDEFGH, is that ok?"},
                      {"role": "assistant", "content": "Revoke it now."}]},
        {"messages": [{"role": "user", "content": "Which version?"}, {"role": "assistant", "content": "Version 1.2.3.4, out 2024-01-15."}]},
    ]
    path = tmp_path / "private.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_check_names_record_field_and_span_and_masks_the_text(tmp_path):
    report = checks.check(str(_dataset(tmp_path)), "auto")
    assert report.counts["personal_data"] == 2 and report.counts["secrets"] == 1 and not report.ok
    found = {(item["line"], item["field"], item["kind"]) for item in report.personal_data}
    assert found == {(1, "messages[1].content", "email"), (1, "messages[1].content", "phone"),
                     (2, "messages[0].content", "hf_token")}
    email = next(item for item in report.personal_data if item["kind"] == "email")
    text = "Mail ana.garcia@mailbox.org or call +44 20 7946 0958."
    assert text[email["start"]:email["end"]] == "ana.garcia@mailbox.org"
    shown = json.dumps(report.to_json()) + json.dumps(report.findings)
    assert "mailbox.org" not in shown and "hf_abcdef" not in shown and "[EMAIL]" in shown  # nothing found is repeated
    assert 2 not in report.findings  # the version number and the date are not personal data
    assert any(message.startswith("secret: Hugging Face token in messages[0].content") for message in report.findings[1])


def test_studio_check_exits_nonzero_and_prints_masked(tmp_path):
    done = subprocess.run([sys.executable, "-m", "studio.cli", "check", str(_dataset(tmp_path))], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "personal data" in done.stdout and "secret" in done.stdout and "[HF_TOKEN]" in done.stdout
    assert "hf_abcdef" not in done.stdout and "mailbox.org" not in done.stdout


def test_the_dataset_tab_shows_a_card_and_what_to_do(tmp_path):
    from studio.ui.dataset import render, summary

    report = checks.check(str(_dataset(tmp_path)), "auto")
    cards = render.cards_html(report)
    assert "Personal data and secrets" in cards and "✗ bad" in cards
    rows = summary.findings_rows(report)
    kinds = {row[2] for row in rows}
    assert {"personal data", "secret"} <= kinds
    assert all(row[4] for row in rows if row[2] in ("personal data", "secret"))  # each says what to do


def test_the_train_tab_and_cli_warn_before_start(tmp_path):
    from core import recipes
    from core.train.preflight import dataset_summary

    recipe = recipes.from_dict({"name": "private", "model": {"name": "embedded"}, "data": {"path": str(_dataset(tmp_path))}})
    summary = dataset_summary(recipe)
    assert summary["private_records"] == 2
    warning = next(w for w in summary["warnings"] if "personal data or secrets" in w)
    assert "e-mail address" in warning and "Hugging Face token" in warning and "first: line 1" in warning
    assert "mailbox.org" not in warning and "hf_abc" not in warning
