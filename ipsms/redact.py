"""Masking of secrets and personal data before anything is shown or exported."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

SENSITIVE_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
    "x-auth-token", "x-ipsms-token",
})
MASK = "****"


def mask_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Credentials masked; for ``Authorization: Basic xyz`` the scheme is kept."""
    out = []
    for name, value in headers:
        if name.lower() in SENSITIVE_HEADERS:
            scheme, _, rest = value.partition(" ")
            value = f"{scheme} {MASK}" if rest and name.lower().endswith("authorization") else MASK
        out.append((name, value))
    return out


_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_HEX_DIGESTS = {40: "sha1", 64: "sha256", 128: "sha512"}
_BASE64_DIGESTS = {28: "sha1", 44: "sha256", 88: "sha512"}


def digest_shape(value: str) -> tuple[str, str | None]:
    """``('hex', 'sha256')`` for a 64-char hex string; ``('text', None)`` for a passphrase."""
    if _HEX_RE.fullmatch(value):
        return "hex", _HEX_DIGESTS.get(len(value))
    if _BASE64_RE.fullmatch(value) and len(value) % 4 == 0:
        return "base64", _BASE64_DIGESTS.get(len(value))
    return "text", None


def mask_secret(value: str | None, keep: int = 4) -> str | None:
    """A signature or secret for display. An HMAC-shaped value keeps its first characters
    (``'40f3…(64)'``) so attempts can be told apart; anything else may be a shared secret
    itself (IntelePeer's plain scheme) and shows only its length: ``'****(11)'``."""
    if value is None:
        return None
    if digest_shape(value)[1] is None:
        return f"{MASK}({len(value)})"
    return f"{value[:keep]}…({len(value)})"


def mask_url(url: str) -> str:
    """Hide the password of ``https://user:pass@host/``; the rest of the URL stays readable."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_number(number: str) -> str:
    """Keep the country code and last two digits: ``+13038675309`` -> ``+1*******09``."""
    if len(number) <= 4:
        return "*" * len(number)
    head = 2 if number.startswith("+") else 1
    return number[:head] + "*" * (len(number) - head - 2) + number[-2:]


# What a phone number looks like inside free text: 7 or more digits, optionally after '+' or
# '(', with at most two separators (space, '.', '-', parentheses) between digits, so
# ``+1 (303) 555-0100`` and ``303.555.0100`` are caught whole, not only ``+13035550100``.
# Shorter runs (ports, sizes, "has 10 digits") are left alone. It over-masks dates and long
# ids in free text; a redacted export prefers that to a leak.
PHONE_IN_TEXT_RE = re.compile(r"[+(]?\d(?:[\s.()\-]{0,2}\d){6,}")


def redact_numbers_in(text: str) -> str:
    """``text`` with every phone-like run masked as ``redact_number`` masks a number."""
    return PHONE_IN_TEXT_RE.sub(lambda m: redact_number(m.group()), text)


_JSON_SIGNATURE_RE = re.compile(r'("signature"\s*:\s*)"(?:[^"\\]|\\.)*"')


def mask_in_text(text: str, secret: str, masked: str) -> str:
    """``text`` (a body) with the signature value replaced by ``masked``: the ``signature``
    field of a JSON object or form body however it is escaped, and then any other copy of
    ``secret`` raw, JSON-escaped or form-encoded."""
    text = _JSON_SIGNATURE_RE.sub(lambda m: m.group(1) + json.dumps(masked, ensure_ascii=False),
                                  text)
    pieces = text.split("&")
    for i, piece in enumerate(pieces):
        key, eq, _ = piece.partition("=")
        if eq and unquote_plus(key) == "signature":
            pieces[i] = f"{key}={masked}"
    text = "&".join(pieces)
    for form in {secret, json.dumps(secret, ensure_ascii=False)[1:-1],
                 json.dumps(secret)[1:-1], quote_plus(secret), quote(secret, safe="")}:
        if form:
            text = text.replace(form, masked)
    return text
