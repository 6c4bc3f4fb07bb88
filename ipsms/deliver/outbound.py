"""The bytes ``simulate`` and ``replay`` post: IntelePeer-shaped messages, built or recorded.

A built message has the fields of intelepeer.md section 1 in the documented order (refid, from,
to, message, then any extra fields, then signature), is signed with ``ipsms.signature.sign`` so
``simulate`` and ``listen`` always agree, and is serialized once: every attempt posts exactly
those bytes.

Text with a lone UTF-16 surrogate (what a carrier can deliver when a segment boundary splits a
pair) is sent on purpose, never refused: JSON carries it as the escape ``\\ud800`` (valid JSON),
a form as its three surrogatepass bytes ``%ED%A0%80``, which is what the listener decodes. Such
text only comes from ``--payload`` JSON escapes: a command-line value cannot hold a surrogate,
and one that looks like it is bytes that were not UTF-8 (``reject_undecodable``).
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

from ipsms import defaults
from ipsms.deliver.engine import Delivery
from ipsms.errors import UsageError, setting
from ipsms.inbound import FORM_TYPE, JSON_TYPE, REFID_LENGTH, BodyError, parse_message
from ipsms.numbers import check_number
from ipsms.request import is_request_line, line_body
from ipsms.signature import DEFAULT_VARIANT, Mode, Variant, sign

# Settings named in errors; the CLI words them as its flags.
_ALLOW_INVALID = setting("allow_invalid")
_PAYLOAD = setting("payload")

DEFAULT_FROM = defaults.FROM_NUMBER
DEFAULT_TO = defaults.TO_NUMBER
DEFAULT_MESSAGE = defaults.MESSAGE_TEXT
REFID_ALPHABET = string.ascii_uppercase + string.digits  # like the doc's ABCDEF1234567890...
# Random bytes below 252 (= 7 * 36) map uniformly onto the alphabet; the rest are dropped.
_ACCEPTED = 252
_REFID_TABLE = bytes(
    ord(REFID_ALPHABET[b % len(REFID_ALPHABET)]) if b < _ACCEPTED else 0 for b in range(256)
)
_REJECTED = bytes(range(_ACCEPTED, 256))
_FIELDS = ("refid", "from", "to", "message")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # how Python decodes a non-UTF-8 argv byte


def new_refid() -> str:
    """A fresh random 32-character refid of A-Z and 0-9 (uniform, from ``os.urandom``)."""
    while True:  # 48 bytes hold 32 accepted ones all but about once in 10**17 draws
        raw = os.urandom(48).translate(_REFID_TABLE, _REJECTED)
        if len(raw) >= REFID_LENGTH:
            return raw[:REFID_LENGTH].decode("ascii")


@dataclass(frozen=True)
class Signing:
    """How ``simulate`` signs: no secret means no ``signature`` field. ``auto`` signs as
    ``plain`` (see ``ipsms.signature.sign``)."""

    secret: str | None = None
    mode: Mode = Mode.PLAIN
    variant: Variant = DEFAULT_VARIANT


@dataclass(frozen=True)
class MessageSpec:
    """What to send. A flag left as None falls back to ``base`` (``--payload``), then to the
    defaults; ``base`` fields other than the four documented ones are sent as they are."""

    from_number: str | None = None
    to_number: str | None = None
    message: str | None = None
    refid: str | None = None
    base: Mapping[str, Any] = field(default_factory=dict)
    form: bool = False
    allow_invalid: bool = False
    signing: Signing = Signing()


@dataclass(frozen=True)
class OutboundMessage:
    refid: str
    fields: dict[str, Any]
    body: bytes
    content_type: str
    signature: str | None

    def delivery(self, url: str) -> Delivery:
        return Delivery(url, self.body, self.content_type, self.refid, self.signature)


def load_payload(source: str, stdin: TextIO) -> dict[str, Any]:
    """Read ``--payload FILE`` or ``--payload -`` (stdin): one JSON object, the fields to
    start from. A request line ipsms wrote (``ipsms messages export``) stands for the message
    it recorded: its fields are those of its exact body, parsed as the listener and ``ipsms
    verify`` parse it, not the line's own keys."""
    where = "stdin" if source == "-" else source
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read {_PAYLOAD} {where}: {exc.strerror or exc}",
            hint="give a readable JSON file, or - for stdin",
        ) from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{_PAYLOAD} {where} is not UTF-8 text: {exc.reason}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = [line for line in text.splitlines() if line.strip()]
        if exc.msg == "Extra data" and len(lines) > 1 and _is_object(lines[0]):
            raise UsageError(
                f"{_PAYLOAD} {where} holds {len(lines)} lines: it takes one message",
                hint="pick one line, e.g. `grep REFID | head -1` "
                "(a refid retried has a line per attempt)",
            ) from None
        raise UsageError(
            f"{_PAYLOAD} {where} is not valid JSON: {exc.msg} at line "
            f"{exc.lineno} column {exc.colno}",
            hint='give a JSON object such as {"message": "hi"}',
        ) from None
    except RecursionError:
        raise UsageError(f"{_PAYLOAD} {where} is JSON nested too deeply to read") from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{_PAYLOAD} {where} is a JSON {_json_type(data)}, not an object",
            hint='give a JSON object such as {"message": "hi"}',
        )
    if is_request_line(data):
        return recorded_fields(data, f"{_PAYLOAD} {where}")
    return data


def recorded_fields(line: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields of the message a request line recorded, from its exact body; a
    ``UsageError`` saying why when the line cannot give them (the same lines ``ipsms verify``
    cannot check)."""
    refid = line.get("refid")
    replay = f"ipsms replay {refid}" if isinstance(refid, str) else "ipsms replay REFID"
    if line.get("redacted") is True:
        raise UsageError(
            f"{where} is a line of a redacted export: its numbers, text and signature are masked",
            hint=f"export without {setting('redact')}, "
            f"or deliver the recorded message again: {replay}",
        )
    if refid is None:
        raise UsageError(
            f"{where} is a request the listener rejected "
            f"({line.get('error') or 'no message'}): it holds no "
            "message to send",
            hint="give a line of an accepted message",
        )
    try:
        body = line_body(line)
    except ValueError:
        raise UsageError(f"{where}: its body_base64 is not valid base64") from None
    masked = line.get("signature_masked") is True and line.get("signature") is not None
    if body is None or masked:
        raise UsageError(
            f"{where} is a line without the message's body or signature (a "
            "line of `ipsms listen`, `messages list` or `messages show`)",
            hint="use its line of `ipsms messages export`, or deliver the "
            f"recorded message again: {replay}",
        )
    try:
        message = parse_message(body, line.get("content_type"))
    except BodyError as exc:
        raise UsageError(
            f"{where} records a body that is not an IntelePeer message: {exc.detail}"
        ) from None
    return dict(message.fields or {})


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


class PayloadTemplate:
    """Checks a ``MessageSpec`` once, then renders messages from it (one per refid).

    Load mode renders thousands of messages from one template, so everything that does not
    depend on the refid is done here.
    """

    def __init__(self, spec: MessageSpec) -> None:
        base = dict(spec.base)
        self.spec = spec
        self.from_number = _pick(spec.from_number, base, "from", DEFAULT_FROM)
        self.to_number = _pick(spec.to_number, base, "to", DEFAULT_TO)
        self.message = _pick(spec.message, base, "message", DEFAULT_MESSAGE)
        self.refid: str | None = None  # None: a fresh refid for every rendered message
        if spec.refid is not None or "refid" in base:
            self.refid = _pick(spec.refid, base, "refid", None)
        self.from_number, self.to_number, self.message = (
            _join_pairs(self.from_number),
            _join_pairs(self.to_number),
            _join_pairs(self.message),
        )
        if self.refid is not None:
            self.refid = _join_pairs(self.refid)
        if not spec.allow_invalid:
            for name, value in (("from", self.from_number), ("to", self.to_number)):
                check = check_number(value)
                if not check.ok:
                    raise UsageError(
                        f"invalid {name} number: {check.problem}",
                        hint=f"fix {setting(name)}, or pass {_ALLOW_INVALID} to send it on purpose",
                    )
        self.extra = {k: v for k, v in base.items() if k not in (*_FIELDS, "signature")}
        encode(self.extra, spec.form)  # fails here, not in a load-mode worker, when it cannot
        self.base_signature = base.get("signature")
        self.content_type = FORM_TYPE if spec.form else JSON_TYPE

    def warnings(self, *, fixed_refid: bool = True) -> list[str]:
        """What is sent on purpose although IntelePeer would not send it quite so: a given refid
        that is not 32 characters (``fixed_refid``: it is used, not replaced by fresh ones),
        text with lone surrogates."""
        notes: list[str] = []
        if fixed_refid and self.refid is not None and len(self.refid) != REFID_LENGTH:
            notes.append(
                f"refid {self.refid!r} has {len(self.refid)} characters, IntelePeer's "
                f"have {REFID_LENGTH}; sending it as given"
            )
        fields = {
            "refid": self.refid if fixed_refid else None,
            "from": self.from_number,
            "to": self.to_number,
            "message": self.message,
            **self.extra,
        }
        names = [
            name if name in _FIELDS else f"field {name!r}"
            for name, value in fields.items()
            if _has_surrogate(value)
        ]
        if names:
            how = (
                "as surrogatepass bytes (e.g. U+D800 as %ED%A0%80: not valid UTF-8)"
                if self.spec.form
                else "as JSON escapes (e.g. \\ud800: valid JSON)"
            )
            notes.append(
                f"{', '.join(names)} has a lone UTF-16 surrogate, as a long SMS split "
                f"between segments can; sending it {how}"
            )
        return notes

    def render(self, refid: str | None = None) -> OutboundMessage:
        if refid is None:
            refid = self.refid if self.refid is not None else new_refid()
        fields: dict[str, Any] = {
            "refid": refid,
            "from": self.from_number,
            "to": self.to_number,
            "message": self.message,
            **self.extra,
        }
        signing = self.spec.signing
        signature: str | None = None
        if signing.secret:
            signature = sign(signing.secret, refid, self.message, signing.mode, signing.variant)
        elif isinstance(self.base_signature, str):
            signature = self.base_signature  # sent as given: a signature on purpose
        if signature is not None:
            fields["signature"] = signature
        return OutboundMessage(
            refid, fields, encode(fields, self.spec.form), self.content_type, signature
        )


def build_payload(spec: MessageSpec) -> OutboundMessage:
    return PayloadTemplate(spec).render()


def encode(fields: Mapping[str, Any], form: bool) -> bytes:
    """JSON (``json.dumps``, UTF-8, not ASCII-escaped, except a lone surrogate: ``\\ud800``) or
    form encoding (UTF-8 percent-encoded, a lone surrogate as its surrogatepass bytes; non-string
    extra values written as JSON)."""
    try:
        if not form:
            text = json.dumps(fields, ensure_ascii=False)
            # A surrogate can only stand inside a JSON string, where its escape means the same.
            text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
            return text.encode("utf-8")
        pairs = [
            (k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            for k, v in fields.items()
        ]
    except RecursionError:  # a --payload nested just below the depth the parser could read
        raise UsageError("the message is JSON nested too deeply to send") from None
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode("ascii")


def reject_undecodable(option: str, value: str | None) -> None:
    """A ``UsageError`` for a command-line value that holds a surrogate: Python turns argv bytes
    that are not UTF-8 into U+DC80..U+DCFF, and a real argument cannot hold any other one."""
    match = _SURROGATE.search(value) if value is not None else None
    if match is None:
        return
    char = match.group()
    what = (
        f"byte 0x{ord(char) - 0xDC00:02X} that is not UTF-8"
        if _ESCAPED_BYTE.match(char)
        else f"a lone UTF-16 surrogate U+{ord(char):04X}"
    )
    raise UsageError(
        f"{option} has {what} (character {match.start() + 1})",
        hint="give UTF-8 text; to send a lone surrogate on purpose, write it as a "
        f'JSON escape in a {_PAYLOAD} file, e.g. {{"message": "\\ud83d"}}',
    )


def _join_pairs(text: str) -> str:
    """A high surrogate followed by a low one is the character they encode (U+1F600 rather
    than two lone halves), so JSON, form and the signature all see the same text."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _has_surrogate(value: Any) -> bool:
    """Whether any string in ``value`` (keys included) has a surrogate; iterative, so a payload
    nested as deep as the JSON parser allows cannot exhaust the stack here."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _pick(flag: str | None, base: Mapping[str, Any], name: str, default: str | None) -> str:
    if flag is not None:
        return flag
    if name in base:
        value = base[name]
        if not isinstance(value, str):
            raise UsageError(
                f"{_PAYLOAD} field {name!r} is a JSON {_json_type(value)}, "
                "IntelePeer sends strings",
                hint=f'write it as a string, e.g. "{name}": "{value}"',
            )
        return value
    assert default is not None
    return default


def _json_type(value: Any) -> str:
    names = {
        bool: "boolean",
        int: "number",
        float: "number",
        list: "array",
        dict: "object",
        str: "string",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)
