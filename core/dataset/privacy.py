"""Personal data and secrets in a dataset's text: e-mail addresses, phone numbers, payment card
numbers, IBANs, IP addresses, and credentials (Hugging Face, OpenAI, AWS and GitHub tokens,
private keys). A model trained on them learns them and may repeat them to anyone.

Each kind's pattern runs only on texts that pass a cheap test (most texts have none of these
and cost a few substring tests); each candidate is then confirmed the way its kind is defined, so version
numbers, dates and order numbers are not reported: a card number must pass the Luhn check, an
IBAN its mod-97 check, a phone number Google's libphonenumber rules (the `phonenumbers`
package), an IP address must parse and not be a loopback or unspecified address.
Knows nothing about datasets, records or the UI: text in, spans out.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# kind -> (what a person reads, the typed placeholder a redaction writes, a secret rather than personal data)
KINDS = {
    "email": ("e-mail address", "[EMAIL]", False),
    "phone": ("phone number", "[PHONE]", False),
    "card": ("payment card number", "[CARD]", False),
    "iban": ("IBAN", "[IBAN]", False),
    "ip": ("IP address", "[IP]", False),
    "ip6": ("IP address", "[IP]", False),
    "hf_token": ("Hugging Face token", "[HF_TOKEN]", True),
    "openai_key": ("OpenAI API key", "[OPENAI_KEY]", True),
    "aws_key": ("AWS access key", "[AWS_KEY]", True),
    "github_token": ("GitHub token", "[GITHUB_TOKEN]", True),
    "private_key": ("private key", "[PRIVATE_KEY]", True),
}

_PATTERNS = {
    "private_key": r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|\Z)",
    "hf_token": r"\bhf_[A-Za-z0-9]{30,}\b",
    "openai_key": r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}\b",
    "aws_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "github_token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})\b",
    "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
    "iban": r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
    "card": r"\b\d(?:[ -]?\d){12,18}\b",
    "ip": r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])",
    "ip6": r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4}(?![\w:])",
    "phone": r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?!\w)",
}
_COMPILED = {kind: re.compile(pattern) for kind, pattern in _PATTERNS.items()}
# Each kind runs only on texts that pass its cheap test (one alternation of all the patterns is
# about 20 times slower than these separate passes): most texts pay a few substring tests.
# Numbers long enough to be a phone, card or IBAN (7 digits, maybe spaced), or shaped like an IPv4 address.
_DIGITS = re.compile(r"\d(?:[ ().-]?\d){6}|\d\.\d+\.\d+\.\d")
_HEX_COLONS = re.compile(r"[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}")
_GATES = {
    "private_key": lambda text, digits: "PRIVATE KEY" in text,
    "hf_token": lambda text, digits: "hf_" in text,
    "openai_key": lambda text, digits: "sk-" in text,
    "aws_key": lambda text, digits: "AKIA" in text or "ASIA" in text,
    "github_token": lambda text, digits: "gh" in text and "_" in text,
    "email": lambda text, digits: "@" in text,
    "iban": lambda text, digits: digits,
    "card": lambda text, digits: digits,
    "ip": lambda text, digits: digits and "." in text,
    "ip6": lambda text, digits: "::" in text or (text.count(":") >= 2 and _HEX_COLONS.search(text) is not None),
    "phone": lambda text, digits: digits,
}


@dataclass(frozen=True)
class Found:
    kind: str
    start: int
    end: int

    @property
    def label(self) -> str:
        return KINDS[self.kind][0]

    @property
    def secret(self) -> bool:
        return KINDS[self.kind][2]


def might_hold(text: str) -> bool:
    """False when `text` certainly holds none (most texts): a few substring tests and one
    digits pattern, so a caller can test a whole record at once before scanning its fields."""
    if "@" in text or "_" in text or "sk-" in text or "AKIA" in text or "ASIA" in text or "PRIVATE KEY" in text \
            or "::" in text:  # "_": hf_, ghp_, github_pat_; spelled out: a loop over them costs more than the tests
        return True
    if _enough_digits(text) and _DIGITS.search(text) is not None:
        return True
    return text.count(":") >= 2 and _HEX_COLONS.search(text) is not None


def _enough_digits(text: str) -> bool:
    """Digits enough for a phone, card or IBAN number (7), or an IPv4 address (4, with dots):
    ten C-level counts, so most texts skip the digits pattern."""
    digits = sum(map(text.count, "0123456789"))
    return digits >= 7 or (digits >= 4 and "." in text)


def scan(text: str) -> list[Found]:
    """Every confirmed piece of personal data or secret in `text`, in order."""
    if not text or not might_hold(text):
        return []
    digits = _DIGITS.search(text) is not None
    found: list[Found] = []
    for kind, pattern in _COMPILED.items():  # earlier kinds win a span (a token is not also an e-mail)
        if not _GATES[kind](text, digits):
            continue
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < f.end and f.start < end for f in found):
                continue
            if _confirmed(kind, match.group(0), text, start):
                found.append(Found(kind, start, end))
    return sorted(found, key=lambda f: f.start)


# Addresses set aside for examples and documentation (RFC 2606, RFC 5737, RFC 3849): placeholders, not anyone's.
_EXAMPLE_DOMAINS = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|[\w-]+\.(?:test|example|invalid|localhost))$", re.I)
_EXAMPLE_NETWORKS = [ipaddress.ip_network(net) for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]


def _confirmed(kind: str, value: str, text: str, start: int) -> bool:
    if kind == "email":
        return not _EXAMPLE_DOMAINS.search(value)
    if kind == "card":
        return _luhn(re.sub(r"\D", "", value))
    if kind == "iban":
        return _iban_ok(value.replace(" ", ""))
    if kind in ("ip", "ip6"):
        return _ip_ok(value, text[max(0, start - 8):start])
    if kind == "phone":
        return _phone_ok(value)
    return True


def _luhn(digits: str) -> bool:
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:  # 0000 0000 0000 0000 is a placeholder
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def _iban_ok(iban: str) -> bool:
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def _ip_ok(value: str, before: str) -> bool:
    if re.search(r"(?:v|version|ver\.?)\s*$", before, re.I):  # "version 1.2.3.4" is a version number
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if any(address in network for network in _EXAMPLE_NETWORKS if network.version == address.version):
        return False
    return not (address.is_loopback or address.is_unspecified or address.is_multicast or address.is_link_local)


def _phone_ok(value: str) -> bool:
    import phonenumbers  # only texts with a phone-shaped candidate get here

    digits = re.sub(r"\D", "", value)
    if not 8 <= len(digits) <= 15 or re.fullmatch(r"\d{4}[-.]\d{2}[-.]\d{2}", value.strip()):  # a date
        return False
    international = value.lstrip().startswith("+")
    if not international and not re.search(r"[ ().-]", value):  # a bare run of digits: an id, not a phone
        return False
    try:
        number = phonenumbers.parse(value, None if international else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def excerpt(text: str, item: Found, found: list[Found] | None = None, around: int = 30) -> str:
    """The finding in its context, with it and every other finding nearby masked (what a
    findings table may show)."""
    others = sorted(found or [item], key=lambda f: f.start)
    masked, shift, where = [], 0, 0
    for other in others:  # mask the whole text, remembering where `item` lands
        masked.append(text[shift:other.start])
        if other == item:
            where = sum(len(part) for part in masked)
        masked.append(KINDS[other.kind][1])
        shift = other.end
    masked.append(text[shift:])
    whole = "".join(masked)
    start, end = max(0, where - around), min(len(whole), where + len(KINDS[item.kind][1]) + around)
    return ("…" if start else "") + " ".join(whole[start:end].split()) + ("…" if end < len(whole) else "")


def mask(text: str, found: list[Found] | None = None) -> str:
    """`text` with each finding replaced by its typed placeholder ([EMAIL], [HF_TOKEN] ...)."""
    found = scan(text) if found is None else found
    for item in sorted(found, key=lambda f: f.start, reverse=True):
        text = text[:item.start] + KINDS[item.kind][1] + text[item.end:]
    return text
