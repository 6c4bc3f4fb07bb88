"""Masking of secrets and personal data before anything is shown or exported."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from functools import cache
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-ipsms-token",
    }
)
MASK = "****"


# A secret this long is masked wherever a header value holds it; a shorter one only where it
# is the whole value (a 3-character secret would otherwise mask half the headers).
SECRET_IN_VALUE = 8


def mask_headers(
    headers: Iterable[tuple[str, str]], secret: str | None = None, masked: str = MASK
) -> list[tuple[str, str]]:
    """Credentials masked; for ``Authorization: Basic xyz`` the scheme is kept. With
    ``secret``, a value that is the secret, or holds it, becomes ``masked`` too, whatever the
    header's name (an ``X-Signature`` holding the shared code)."""
    out = []
    for name, value in headers:
        if name.lower() in SENSITIVE_HEADERS:
            scheme, _, rest = value.partition(" ")
            value = f"{scheme} {MASK}" if rest and name.lower().endswith("authorization") else MASK
        elif secret and (value == secret or (len(secret) >= SECRET_IN_VALUE and secret in value)):
            value = masked
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


# What a phone number looks like inside free text: 7 or more digits, optionally after a plus
# or an opening parenthesis, with at most four separators between two digits, so
# ``+1 (303) 555-0100``, ``303 - 555 - 0100`` and ``303.555.0100`` are caught whole, not only
# ``+13035550100``. What a reader takes for a number is caught however it is written:
# - a digit is any character with a decimal digit value: ASCII, full-width (３), other
#   scripts' (٣), superscript (³), circled (③);
# - a separator is a run of whitespace (NBSP and the other Unicode spaces included), any
#   dash (hyphen, en and em dash, minus sign, katakana ー...), a dot or bullet, a slash or bar,
#   an underscore, a bracket, a plus, a tilde (each in its full-width form too), a control
#   character, a lone surrogate, or a URL escape (``%20``, ``%2D``), so a number in a
#   percent-encoded path is caught as it is written;
# - what shows nothing (zero-width characters and every other format control, combining
#   marks, variation selectors, the Hangul and braille blanks) is skipped wherever it stands,
#   and left out of the masked number.
# Colons and commas do not separate: times (``12:30:45``), amounts (``1,250,000``) and
# host:port keep their meaning. Shorter runs (ports, sizes, "has 10 digits") are left alone.
# It over-masks dates and long ids in free text; a redacted export prefers that to a leak.
MIN_RUN_DIGITS = 7
MAX_SEPARATORS = 4  # between two digits: ") - (" in "+1 ) - (303"
_SEPARATOR_CHARS = (
    "./\\|_()[]{}+~\u00b7\u02d7\u2017\u2022\u2024\u2027\u2043\u2044\u207a\u207d\u207e\u208d"
    "\u208e\u2212\u2215\u2219\u223c\u22c5\u29f8\u3002\u30fb\u30fc\ufe62\uff08\uff09\uff0b\uff0e"
    "\uff0f\uff3b\uff3c\uff3d\uff3f\uff5b\uff5c\uff5d\uff5e\uff61\uff65\uff70"
)
_PLUS_OR_PAREN = "+(\u207a\ufe62\uff08\uff0b"
_BLANKS = frozenset((0x115F, 0x1160, 0x2800, 0x3164, 0xFFA0))  # letters and symbols that show
_PLANES = (range(0x20000), range(0xE0000, 0xE1000))  # where digits, marks and controls are


def _char_class(codes: list[int]) -> str:
    """A regex character class of ``codes`` (sorted), as ranges."""
    parts: list[str] = []
    start = prev = codes[0]
    for code in [*codes[1:], -1]:
        if code == prev + 1:
            prev = code
            continue
        parts.append(
            re.escape(chr(start))
            if start == prev
            else f"{re.escape(chr(start))}-{re.escape(chr(prev))}"
        )
        start = prev = code
    return "[" + "".join(parts) + "]"


@cache
def _phone_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The phone-like run, and what shows nothing (built on first use, from ``unicodedata``:
    a walk over every code point, paid by ``export --redact`` only)."""
    digits: list[int] = []
    hidden: list[int] = []
    separators: list[int] = []
    for plane in _PLANES:
        for code in plane:
            ch = chr(code)
            category = unicodedata.category(ch)
            if unicodedata.digit(ch, None) is not None:
                digits.append(code)
            elif ch.isspace():
                continue  # runs of whitespace are one separator: ``\s++``
            elif (
                category in ("Mn", "Me", "Cf")
                or code in _BLANKS
                or (code >= 0xE0000 and category == "Cn")
            ):
                hidden.append(code)
            elif category in ("Pd", "Cc", "Cs") or ch in _SEPARATOR_CHARS:
                separators.append(code)
    digit, skip, sep = _char_class(digits), _char_class(hidden), _char_class(separators)
    # Possessive quantifiers: a long run of spaces or hidden characters is read once.
    gap = f"{skip}*+(?:(?:\\s++|{sep}|%[0-9A-Fa-f]{{2}}){skip}*+){{0,{MAX_SEPARATORS}}}+"
    run = f"[{re.escape(_PLUS_OR_PAREN)}]?{digit}(?:{gap}{digit}){{{MIN_RUN_DIGITS - 1},}}"
    return re.compile(run), re.compile(skip)


def _masked_run(match: re.Match[str]) -> str:
    return redact_number(_phone_patterns()[1].sub("", match.group()))


def redact_numbers_in(text: str) -> str:
    """``text`` with every phone-like run masked as ``redact_number`` masks a number (what
    shows nothing inside a run is dropped): ``'call +1 303 555\u20130100'`` ->
    ``'call +1***********00'``."""
    return _phone_patterns()[0].sub(_masked_run, text)


_JSON_SIGNATURE_RE = re.compile(r'("signature"\s*:\s*)"(?:[^"\\]|\\.)*"')


def mask_in_text(text: str, secret: str, masked: str) -> str:
    """``text`` (a body) with the signature value replaced by ``masked``: the ``signature``
    field of a JSON object or form body however it is escaped, and then any other copy of
    ``secret`` raw, JSON-escaped or form-encoded."""
    text = _JSON_SIGNATURE_RE.sub(
        lambda m: m.group(1) + json.dumps(masked, ensure_ascii=False), text
    )
    pieces = text.split("&")
    for i, piece in enumerate(pieces):
        key, eq, _ = piece.partition("=")
        if eq and unquote_plus(key) == "signature":
            pieces[i] = f"{key}={masked}"
    text = "&".join(pieces)
    for form in {
        secret,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        quote_plus(secret),
        quote(secret, safe=""),
    }:
        if form:
            text = text.replace(form, masked)
    return text
