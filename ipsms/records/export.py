"""The JSON documents of the read side (every one is ``Request.to_dict``) and redaction
(``messages export --redact``)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode

from ipsms.inbound import KNOWN_FIELDS, BodyError, body_kind
from ipsms.redact import mask_secret, redact_number, redact_numbers_in
from ipsms.request import Request


# -- the JSON lines: every one is ``Request.to_dict``, the one shape of "type": "request" -----
def summary_dict(row: Request) -> dict[str, Any]:
    """One ``messages list`` line: no body (both body keys null), the signature masked."""
    return row.to_dict(bodies=False)


def detail_dict(row: Request) -> dict[str, Any]:
    """One attempt for ``messages show``: the body included, the signature masked in it and
    everywhere else (with the plain scheme it *is* the shared secret)."""
    return row.to_dict(bodies=True)


def show_document(refid: str, rows: list[Request]) -> dict[str, Any]:
    return {
        "type": "message",
        "refid": refid,
        "attempt_count": len(rows),
        "attempts": [detail_dict(r) for r in rows],
    }


def export_dict(row: Request, *, redact: bool = False) -> dict[str, Any]:
    """One ``messages export`` line: every stored field and the exact body, signature
    included. With ``redact``, see ``redacted_dict``."""
    if not redact:
        return row.to_dict(bodies=True, masked=False)
    return redacted_dict(row)


# -- redaction --------------------------------------------------------------------------------
# What ``messages export --redact`` masks (docs/ndjson.md says the same to users):
# - ``from``/``to`` keep the country code and the last two digits; ``message`` becomes
#   ``[redacted N chars]``; the signature is masked.
# - ``fields`` and ``body``: the same by field name (``from``, ``to``, ``message``,
#   ``signature``); every other value and field name has phone-like runs masked and any copy
#   of the numbers or the text replaced; a JSON number that reads as a phone number
#   (``"callback": 13035550100``) becomes its masked text (``"1********00"``), other numbers
#   keep their value and type. A body that cannot be read as fields is replaced whole.
# - The free text ipsms or the sender wrote: ``method``, ``path`` (its query string field by
#   field, like a form body), header names and values, ``content_type``, ``verdict_detail``,
#   ``flags[].detail``, ``error_detail``, ``forward.url`` and ``forward.detail``: copies of
#   the numbers and text (raw, quoted with repr, JSON- or URL-escaped) replaced, then every
#   phone-like run masked (``redact.redact_numbers_in``: any dash, space, dot, slash...,
#   invisible characters skipped). A flag's "try +17708675309" is a number the message never
#   held, so the run masking is what catches it. A path or URL whose %XX escapes spell a
#   number (``/sms/%2B1%20303%20555%200100``, escaped twice too) is redacted as what they
#   spell, and escaped again.
# - ``forward.body_preview`` (the app's answer may quote anything) is replaced whole, and
#   ``body_sha256`` is null: a hash of a short body lets anyone confirm a guessed number.
# - Kept: ``refid`` (so lines can be matched with IntelePeer's), ``remote`` (the address of
#   IntelePeer, the tunnel or a proxy, not of the texter), times, sizes, statuses and codes.
MIN_COPY = 3  # shorter numbers or texts are not searched for in free text ("a", "ok")
# A word of 4 or more characters; a %XX escape is matched first so "%20Door" yields "Door".
_WORD_RE = re.compile(r"%[0-9A-Fa-f]{2}|\w{4,}")


def redacted_text(text: str) -> str:
    return f"[redacted {len(text)} chars]"


def redacted_dict(row: Request) -> dict[str, Any]:
    """The export line of ``row`` with nothing of its numbers or text left (see above)."""
    red = _Redactor(row)
    out = row.to_dict(bodies=False)
    out["redacted"] = True
    out["from"] = None if row.from_number is None else redact_number(row.from_number)
    out["to"] = None if row.to_number is None else redact_number(row.to_number)
    out["message"] = None if row.message is None else redacted_text(row.message)
    out["fields"] = None if row.fields is None else red.fields(row.fields)
    out["method"] = redact_numbers_in(row.method)
    out["path"] = red.target(row.path)
    out["headers"] = [(red.text(k), red.text(v)) for k, v in row.headers]
    out["content_type"] = red.opt(row.content_type)
    out["body_sha256"] = None
    out["verdict_detail"] = red.opt(row.verdict_detail)
    out["flags"] = [{**f, "detail": red.text(f.get("detail") or "")} for f in row.flags or []]
    out["error_detail"] = red.opt(row.error_detail)
    out["body"] = red.body(row.body, row.content_type)
    if row.forward is not None:  # the app's answer may quote the message: replaced whole
        preview = row.forward.get("body_preview") or ""
        out["forward"] = {
            **row.forward,
            "body_preview": redacted_text(preview),
            "url": red.target(str(row.forward.get("url") or "")),
            "detail": red.opt(row.forward.get("detail")),
        }
    return out


class _Redactor:
    """Redaction of one row: it knows the row's numbers and text, so a copy of them anywhere
    (an extra field, a header, a flag that quotes the number) is replaced, not only the runs
    that look like numbers."""

    def __init__(self, row: Request) -> None:
        fields = row.fields or {}
        numbers = {
            v
            for v in (row.from_number, row.to_number, fields.get("from"), fields.get("to"))
            if isinstance(v, str)
        }
        texts = {v for v in (row.message, fields.get("message")) if isinstance(v, str)}
        copies: dict[str, str] = {}
        for values, mask in ((texts, redacted_text), (numbers, redact_number)):
            for value in values:
                if len(value) < MIN_COPY:
                    continue
                shown = mask(value)
                for form, masked in _forms(value, shown):
                    copies.setdefault(form, masked)
        # Longest first, so a number inside the message text is not half-replaced first.
        self._copies = sorted(copies.items(), key=lambda kv: -len(kv[0]))
        # A part of the text ("say=Blue+Door" of "Meet me at the Blue Door") is caught word
        # by word: every word of 4 or more characters of the text is masked in free text.
        self._words = {w for t in texts for w in _WORD_RE.findall(t) if w[0] != "%"}

    def text(self, text: str) -> str:
        for form, masked in self._copies:
            if form in text:
                text = text.replace(form, masked)
        # Phone-like runs before the text's words: a word of the text that is part of a run
        # ("1000" of "1000 00-000") masked first would leave the rest too short to look like a
        # number (found by hypothesis).
        text = redact_numbers_in(text)
        if self._words:
            text = _WORD_RE.sub(self._mask_word, text)
        return text

    def _mask_word(self, match: re.Match[str]) -> str:
        word = match.group()
        return "*" * len(word) if word in self._words else word

    def opt(self, text: Any) -> Any:
        return text if not isinstance(text, str) else self.text(text)

    def target(self, target: str) -> str:
        """A request target or URL: its query string redacted field by field, and what its
        %XX escapes spell redacted too (``/sms/%2B1%20303%20555%200100``)."""
        base, sep, query = target.partition("?")
        if not sep:
            return self._url_part(target)
        try:
            pairs = parse_qsl(query, keep_blank_values=True, errors="surrogatepass")
        except (ValueError, UnicodeDecodeError):
            return self._url_part(base) + "?" + self._url_part(query)
        return self._url_part(base) + "?" + self._form(pairs)

    def _url_part(self, raw: str) -> str:
        """``raw`` redacted as text, or, when what its escapes spell (escapes of escapes
        included) holds something to redact, that unescaped form redacted and escaped again
        (once): masking the escaped form could leave digits between the escapes."""
        if "%" not in raw:
            return self.text(raw)
        unescaped = _unescaped(raw)
        masked = self.text(unescaped)
        return self.text(raw) if masked == unescaped else _escaped(masked)

    def value(self, key: str, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            # A JSON number is its digits: "callback": 13035550100 is a phone number.
            written = json.dumps(value)
            masked = self.text(written)
            return value if masked == written else masked
        if isinstance(value, str):
            if key in ("from", "to"):
                return redact_number(value)
            if key == "message":
                return redacted_text(value)
            if key == "signature":
                return mask_secret(value)
            if key == "refid":
                return value
            return self.text(value)
        if isinstance(value, dict):
            return self.fields(value)
        if isinstance(value, list):
            return [self.value("", v) for v in value]
        return value

    def fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Known fields masked by meaning; every other name and value as free text."""
        return {
            k if k in KNOWN_FIELDS else self.text(k): self.value(k, v) for k, v in fields.items()
        }

    def _form(self, pairs: list[tuple[str, str]]) -> str:
        # '*' is left as is: "+1*******09" stays readable in a query string. A lone
        # surrogate (real SMS data) is written as the bytes the listener read it from.
        return urlencode(
            [(k if k in KNOWN_FIELDS else self.text(k), self.value(k, v)) for k, v in pairs],
            safe="*",
            errors="surrogatepass",
        )

    def body(self, body: bytes, content_type: str | None) -> str:
        """The body re-encoded with its fields redacted. A body that cannot be read as a JSON
        object or form fields is replaced whole: it may hold anything."""
        placeholder = f"[redacted {len(body)} bytes]"
        try:
            kind = body_kind(content_type, body)
            # As the listener reads it: a lone surrogate's three bytes are text.
            text = body.decode("utf-8", "surrogatepass")
        except (BodyError, UnicodeDecodeError):
            return placeholder
        if kind == "json":
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                return placeholder
            if not isinstance(data, dict):
                return placeholder
            return json.dumps(self.fields(data), ensure_ascii=False, separators=(",", ":"))
        try:
            pairs = parse_qsl(
                text, keep_blank_values=True, strict_parsing=True, errors="surrogatepass"
            )
        except (ValueError, UnicodeDecodeError):
            return placeholder
        return self._form(pairs)


def _forms(value: str, masked: str) -> list[tuple[str, str]]:
    """The ways ``value`` can be written inside free text, each with its masked twin: as is,
    quoted by ``repr`` (how flags quote a number), JSON-escaped, and URL-encoded."""
    out = [(value, masked), (repr(value)[1:-1], repr(masked)[1:-1])]
    for ascii_only in (False, True):
        out.append(
            (
                json.dumps(value, ensure_ascii=ascii_only)[1:-1],
                json.dumps(masked, ensure_ascii=ascii_only)[1:-1],
            )
        )
    # URL-encoded as the listener decodes it: a lone surrogate as its three UTF-8 bytes.
    out += [
        (quote_plus(value, errors="surrogatepass"), quote_plus(masked, errors="surrogatepass")),
        (
            quote(value, safe="", errors="surrogatepass"),
            quote(masked, safe="", errors="surrogatepass"),
        ),
    ]
    return [(form, shown) for form, shown in out if form]


MAX_ESCAPE_LAYERS = 4  # %252B is "+" escaped twice; past four layers nothing is unescaped


def _unescaped(text: str) -> str:
    """``text`` with its %XX escapes decoded, and those they spell, up to four layers (bytes
    that are no UTF-8 kept as surrogate escapes, so ``_escaped`` gives them back)."""
    for _ in range(MAX_ESCAPE_LAYERS):
        decoded = unquote(text, errors="surrogateescape")
        if decoded == text:
            break
        text = decoded
    return text


def _escaped(text: str) -> str:
    """``text`` percent-encoded again, once, leaving what a URL path may hold as it is."""
    safe = "/:@!$&'()*+,;=~"
    try:
        return quote(text, safe=safe, errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte decoded to
        return quote(text, safe=safe, errors="surrogatepass")


def redact_body(body: bytes, content_type: str | None) -> str:
    """The body alone re-encoded with its fields redacted (a body that cannot be read as
    fields is replaced whole); ``redacted_dict`` also replaces copies of the row's numbers
    and text."""
    row = Request(
        received_at=0.0,
        method="POST",
        path="/",
        remote=None,
        headers=[],
        content_type=content_type,
        body=body,
        status=0,
    )
    return _Redactor(row).body(body, content_type)
