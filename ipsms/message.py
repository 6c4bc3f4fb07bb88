"""The inbound message IntelePeer POSTs (intelepeer.md section 1), parsed from exact bytes.

Parsing never rewrites the body: ``raw`` keeps the bytes that arrived, so a message can be
verified, stored and replayed exactly. Anomalies IntelePeer itself produces are *flags*, not
rejections; only bodies that cannot be a message are rejected (``BodyError``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ipsms.numbers import check_number

REQUIRED_FIELDS = ("refid", "from", "to", "message")
KNOWN_FIELDS = (*REQUIRED_FIELDS, "signature")
REFID_LENGTH = 32

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


class BodyError(Exception):
    """A request body that cannot be an inbound message; ``status`` is the HTTP answer."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Flag:
    """Something unusual about a message that IntelePeer can still send (never a rejection)."""

    code: str
    detail: str


@dataclass(slots=True)
class InboundMessage:
    refid: str
    from_: str
    to: str
    message: str
    signature: str | None
    extra: dict[str, Any]
    raw: bytes
    content_type: str
    flags: tuple[Flag, ...] = field(default=())
    fields_json: str = "{}"  # every field as a JSON object (for JSON bodies: the body text)


def media_type(content_type: str | None) -> str:
    """``'Application/JSON; charset=utf-8'`` -> ``'application/json'``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def body_kind(content_type: str | None, raw: bytes) -> str:
    """``'json'`` or ``'form'``; sniffs only when no content type was sent at all."""
    mt = media_type(content_type)
    if mt == JSON_TYPE or (mt.startswith("application/") and mt.endswith("+json")):
        return "json"
    if mt == FORM_TYPE:
        return "form"
    if not mt:
        return "json" if raw.lstrip()[:1] == b"{" else "form"
    raise BodyError(
        415,
        "unsupported_content_type",
        f"content type {mt!r} is not supported: send {JSON_TYPE} or {FORM_TYPE}",
    )


def parse_message(raw: bytes, content_type: str | None) -> InboundMessage:
    """Parse a request body into an ``InboundMessage`` or raise ``BodyError``."""
    kind = body_kind(content_type, raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(400, "invalid_encoding", f"body is not valid UTF-8: {exc.reason} "
                        f"at byte {exc.start}") from None
    if kind == "json":
        data = _parse_json(text)
        return _to_message(data, raw, content_type or "", text)
    data = _parse_form(text)
    return _to_message(data, raw, content_type or "", None)


def _parse_json(text: str) -> dict[str, Any]:
    if not text.strip():
        raise BodyError(400, "empty_body", "body is empty: expected a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(400, "invalid_json",
                        f"body is not valid JSON: {exc.msg} at line {exc.lineno} "
                        f"column {exc.colno}") from None
    except RecursionError:
        raise BodyError(400, "invalid_json", "body is JSON nested too deeply to read") from None
    if not isinstance(data, dict):
        raise BodyError(400, "not_an_object",
                        f"body is JSON {type(data).__name__}, expected an object")
    return data


def _parse_form(text: str) -> dict[str, Any]:
    if not text.strip():
        raise BodyError(400, "empty_body", "body is empty: expected form fields")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                          errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(400, "invalid_form", f"body is not valid form encoding: {exc}") from None
    data: dict[str, Any] = {}
    for key, value in pairs:
        data.setdefault(key, value)  # first value wins, as most frameworks do
    return data


def _to_message(data: dict[str, Any], raw: bytes, content_type: str,
                json_text: str | None) -> InboundMessage:
    refid, from_, to, message = (data.get(name) for name in REQUIRED_FIELDS)
    signature = data.get("signature")
    if not (type(refid) is type(from_) is type(to) is type(message) is str) or not (
            signature is None or type(signature) is str):
        _reject_fields(data)
    flags = _flags(data)
    extra = {k: v for k, v in data.items() if k not in KNOWN_FIELDS} \
        if len(data) > len(KNOWN_FIELDS) or "signature" not in data else {}
    if extra:
        flags.append(Flag("extra_fields", "unknown fields kept: " + ", ".join(sorted(extra))))
    return InboundMessage(
        refid=data["refid"],
        from_=data["from"],
        to=data["to"],
        message=data["message"],
        signature=signature,
        extra=extra,
        raw=raw,
        content_type=content_type,
        flags=tuple(flags),
        fields_json=json_text if json_text is not None else json.dumps(data, ensure_ascii=False),
    )


def _reject_fields(data: dict[str, Any]) -> None:
    missing = [name for name in REQUIRED_FIELDS if name not in data]
    if missing:
        raise BodyError(400, "missing_fields", "missing required field(s): " + ", ".join(missing))
    wrong = [
        f"{name} is {type(data[name]).__name__}"
        for name in (*REQUIRED_FIELDS, "signature")
        if name in data and not isinstance(data[name], str)
        and not (name == "signature" and data[name] is None)
    ]
    raise BodyError(400, "wrong_field_types", "fields must be strings: " + ", ".join(wrong))


def _flags(data: dict[str, Any]) -> list[Flag]:
    flags: list[Flag] = []
    refid = data["refid"]
    if len(refid) != REFID_LENGTH:
        flags.append(Flag("refid_length",
                          f"refid has {len(refid)} characters, IntelePeer sends {REFID_LENGTH}"))
    for name in ("from", "to"):
        check = check_number(data[name])
        if check.problem is not None:
            flags.append(Flag(f"{name}_format", f"{name}: {check.problem}"))
    return flags
