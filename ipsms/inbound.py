"""The inbound message IntelePeer POSTs (intelepeer.md section 1), parsed from exact bytes.

Parsing never rewrites the body: ``raw`` keeps the bytes that arrived, so a message can be
verified, stored and replayed exactly. Anomalies IntelePeer itself produces are *flags*, not
rejections; only bodies that cannot be a message are rejected (``BodyError``).
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ipsms.numbers import number_problem

REQUIRED_FIELDS = ("refid", "from", "to", "message")
KNOWN_FIELDS = (*REQUIRED_FIELDS, "signature")
REFID_LENGTH = 32
MAX_FORM_FIELDS = 1000  # IntelePeer sends five; a bound keeps a hostile body cheap to refuse
LONE_SURROGATE = "lone_surrogate"  # the flag of a message whose text has a lone surrogate
DUPLICATE_FIELDS = "duplicate_fields"  # the flag of a body that sends a field more than once
SIGNED_FIELDS = ("refid", "message", "signature")  # what a signature vouches for

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
    fields: dict[str, Any] | None = None  # every field, parsed (what fields_json holds)
    # Signed fields sent more than once with different values, said for the signature's
    # verdict ("message sent 2 times with different values (ipsms read the first; ...)"):
    # an app may read another value than the one checked. None for the usual body.
    ambiguity: str | None = None


@dataclass(frozen=True)
class Duplicate:
    """A field (or, in JSON, a key of a nested object: ``media.url``) the body sends more than
    once."""

    name: str
    count: int
    differ: bool  # its values are not all the same


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
        f"content type {mt[:100]!r} is not supported: send {JSON_TYPE} or {FORM_TYPE}",
    )


def parse_message(raw: bytes, content_type: str | None) -> InboundMessage:
    """Parse a request body into an ``InboundMessage`` or raise ``BodyError``."""
    kind = body_kind(content_type, raw)
    try:
        # surrogatepass: a lone surrogate encoded as its own three bytes is real SMS data (see
        # ``LONE_SURROGATE``); any other invalid byte is not a message.
        text = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise BodyError(
            400, "invalid_encoding", f"body is not valid UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    if kind == "json":
        data, kept_numbers, duplicates = _parse_json(text)
        # Only a \u escape or a non-ASCII byte can carry a lone surrogate.
        odd = kept_numbers or not text.isascii() or "\\u" in text
        return _to_message(data, raw, content_type or "", text, odd, duplicates)
    data, duplicates = _parse_form(text)
    return _to_message(data, raw, content_type or "", None, True, duplicates)


def content_coding_problem(values: list[str]) -> BodyError | None:
    """The 415 of a body sent with a ``Content-Encoding`` (``values``: every such header):
    IntelePeer is not documented to compress, and a body decompressed by the listener would
    cost it CPU a small request can multiply a thousandfold (a gzip bomb). ``identity`` (no
    coding) is accepted. None when the body is plain."""
    codings = [c.strip() for value in values for c in value.split(",")]
    codings = [c for c in codings if c and c.lower() != "identity"]
    if not codings:
        return None
    shown = ", ".join(codings)
    return BodyError(
        415,
        "unsupported_content_encoding",
        f"Content-Encoding {shown[:100]!r} is not accepted: send the body "
        "uncompressed (no Content-Encoding, or identity)",
    )


class _Unrepresentable(ValueError):
    """A JSON number Python cannot hold as it is: NaN/Infinity, an overflowing float."""


def _finite_float(token: str) -> float:
    value = float(token)
    if math.isinf(value):
        raise _Unrepresentable(token)
    return value


def _no_constant(token: str) -> Any:
    raise _Unrepresentable(token)


class _Seen(threading.local):
    """The objects of the body being parsed that repeat a key: the decoder is built once and
    may run in several threads (``ipsms verify``, tests), so this is per thread."""

    repeated: list[tuple[dict[str, Any], list[tuple[str, Any]]]] | None = None


_SEEN = _Seen()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as ``json`` builds it (a repeated key keeps its last value, in its first
    place), noting the objects that repeat a key: an app's parser may read another value."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = _SEEN.repeated
        if seen is None:
            seen = _SEEN.repeated = []
        seen.append((obj, pairs))
    return obj


# Built once (hot path); the C scanner still parses strings and integers.
_DECODER = json.JSONDecoder(
    parse_float=_finite_float, parse_constant=_no_constant, object_pairs_hook=_object
)


class NumberText(str):
    """A JSON number kept as its own text because Python cannot represent it: ``NaN``,
    ``Infinity``, ``1e400``, an integer over Python's digit limit. A ``str`` so it stays
    printable and serialisable; its own type so it never passes as a text field."""


def _parse_json(text: str) -> tuple[dict[str, Any], bool, list[Duplicate]]:
    """The object, whether numbers had to be kept as ``NumberText``, and the keys it repeats."""
    if not text.strip():
        raise BodyError(400, "empty_body", "body is empty: expected a JSON object")
    _SEEN.repeated = None
    try:
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise BodyError(
            400,
            "invalid_json",
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except RecursionError:
        raise BodyError(400, "invalid_json", "body is JSON nested too deeply to read") from None
    except ValueError:  # NaN, Infinity, 1e400, or an integer past Python's 4300-digit limit
        _SEEN.repeated = None  # noted again by the second parse
        data, kept = _parse_json_keeping_numbers(text), True
    else:
        kept = False
    finally:
        repeated, _SEEN.repeated = _SEEN.repeated, None  # the body's objects are not kept
    if not isinstance(data, dict):
        raise BodyError(
            400, "not_an_object", f"body is JSON {type(data).__name__}, expected an object"
        )
    return data, kept, _json_duplicates(data, repeated) if repeated else []


def _parse_json_keeping_numbers(text: str) -> Any:
    """The rare body with numbers Python cannot hold: each is kept as ``NumberText`` and the
    message gets an ``unrepresentable_number`` flag (see ``_flags``)."""

    def keep_int(token: str) -> int | NumberText:
        try:
            return int(token)
        except ValueError:
            return NumberText(token)

    def keep_float(token: str) -> float | NumberText:
        value = float(token)
        return NumberText(token) if math.isinf(value) else value

    decoder = json.JSONDecoder(
        parse_int=keep_int,
        parse_float=keep_float,
        parse_constant=NumberText,
        object_pairs_hook=_object,
    )
    try:
        return decoder.decode(text)
    except RecursionError:
        raise BodyError(400, "invalid_json", "body is JSON nested too deeply to read") from None


def _repeats(pairs: list[tuple[str, Any]]) -> dict[str, tuple[int, bool]]:
    """``{name: (count, values differ)}`` of the names ``pairs`` repeats; linear, however many
    names repeat."""
    values: dict[str, list[Any]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    return {
        key: (len(vs), any(v != vs[0] for v in vs[1:])) for key, vs in values.items() if len(vs) > 1
    }


def _json_duplicates(
    data: dict[str, Any], repeated: list[tuple[dict[str, Any], list[tuple[str, Any]]]]
) -> list[Duplicate]:
    """The repeated keys of the body's objects, named by their place (``message``,
    ``media.url``, ``items[].id``); the body's own fields first."""
    found = {id(obj): _repeats(pairs) for obj, pairs in repeated}
    duplicates: list[Duplicate] = []
    # Breadth first, in the body's order, and iterative (as ``_walk``): a body nested to the
    # parser's limit must not overflow the stack here.
    queue: list[tuple[str, Any]] = [("", data)]
    for path, value in queue:
        if not found:
            break
        if isinstance(value, dict):
            for key, (count, differ) in found.pop(id(value), {}).items():
                duplicates.append(Duplicate(_name(path, key), count, differ))
            queue.extend(
                (_name(path, key), item)
                for key, item in value.items()
                if isinstance(item, dict | list)
            )
        else:
            queue.extend((f"{path}[]", item) for item in value if isinstance(item, dict | list))
    return duplicates


def _parse_form(text: str) -> tuple[dict[str, Any], list[Duplicate]]:
    if not text.strip():
        raise BodyError(400, "empty_body", "body is empty: expected form fields")
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            errors="surrogatepass",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        if "Max number of fields" in str(exc):
            raise BodyError(
                400,
                "invalid_form",
                f"body has more than {MAX_FORM_FIELDS} form fields: an IntelePeer message has five",
            ) from None
        raise BodyError(400, "invalid_form", f"body is not valid form encoding: {exc}") from None
    data: dict[str, Any] = {}
    for key, value in pairs:
        data.setdefault(key, value)  # the first value is read (see ``_duplicates_flag``)
    if len(data) == len(pairs):
        return data, []
    return data, [Duplicate(key, count, differ) for key, (count, differ) in _repeats(pairs).items()]


# Which of a repeated field's values ipsms reads, and which apps read another.
_READ = {
    "form": ("first", "as Flask and Go do; Django, PHP and Rails read the last"),
    "json": ("last", "as most JSON parsers do; some read the first or refuse the body"),
}


def _duplicates_flag(duplicates: list[Duplicate], kind: str) -> tuple[Flag, str | None]:
    """The ``duplicate_fields`` flag, and the ambiguity of the signed fields for the verdict
    (None when every repeated signed field repeats one value)."""
    read, others = _READ[kind]
    shown = [
        f"{d.name} ({d.count} values, {'differing' if d.differ else 'all the same'})"
        for d in duplicates
    ]
    flag = Flag(
        DUPLICATE_FIELDS,
        f"sent more than once: {_some(shown)}; ipsms shows and checks the {read} value, {others}",
    )
    signed = [d for d in duplicates if d.differ and d.name in SIGNED_FIELDS]
    if not signed:
        return flag, None
    names = " and ".join(f"{d.name} ({d.count} times)" for d in signed)
    return flag, (f"{names} sent with different values (ipsms checked the {read}, {others})")


def _to_message(
    data: dict[str, Any],
    raw: bytes,
    content_type: str,
    json_text: str | None,
    odd: bool,
    duplicates: list[Duplicate],
) -> InboundMessage:
    get = data.get  # not a generator over REQUIRED_FIELDS: this runs once per request
    refid, from_, to, message, signature = (
        get("refid"),
        get("from"),
        get("to"),
        get("message"),
        get("signature"),
    )
    if not (type(refid) is type(from_) is type(to) is type(message) is str) or not (
        signature is None or type(signature) is str
    ):
        _reject_fields(data)
    flags = _flags(data, odd)
    extra = (
        {k: v for k, v in data.items() if k not in KNOWN_FIELDS}
        if len(data) > len(KNOWN_FIELDS) or "signature" not in data
        else {}
    )
    if extra:
        names = sorted(extra)
        shown = ", ".join(name[:40] for name in names[:20])
        more = f" and {len(names) - 20} more" if len(names) > 20 else ""
        flags.append(Flag("extra_fields", f"unknown fields kept: {shown}{more}"))
    ambiguity = None
    if duplicates:
        flag, ambiguity = _duplicates_flag(duplicates, "json" if json_text is not None else "form")
        flags.append(flag)
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
        fields=data,
        ambiguity=ambiguity,
    )


def _reject_fields(data: dict[str, Any]) -> None:
    missing = [name for name in REQUIRED_FIELDS if name not in data]
    if missing:
        raise BodyError(400, "missing_fields", "missing required field(s): " + ", ".join(missing))
    wrong = [
        f"{name} is {_json_type(data[name])}"
        for name in (*REQUIRED_FIELDS, "signature")
        if name in data
        and type(data[name]) is not str
        and not (name == "signature" and data[name] is None)
    ]
    raise BodyError(400, "wrong_field_types", "fields must be strings: " + ", ".join(wrong))


def _json_type(value: Any) -> str:
    if isinstance(value, NumberText) or type(value) in (int, float):
        return "a number"
    return {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _walk(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Fields (``message``, ``extra.note``) whose text has a lone surrogate (at most 11), and
    numbers kept as ``NumberText``. Iterative: a body nested to the JSON parser's limit must
    not overflow the stack here. Names are built only for what is found, so a body of 100,000
    keys costs a fraction of its parse."""
    surrogates: list[str] = []
    numbers: list[str] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        pairs = value.items() if isinstance(value, dict) else (("[]", v) for v in value)
        for key, item in pairs:
            if (
                len(surrogates) <= 10
                and not key.isascii()
                and isinstance(value, dict)
                and _SURROGATE.search(key)
            ):
                surrogates.append(f"the name of {_name(path, key)}")
            if isinstance(item, NumberText):
                numbers.append(
                    f"{_name(path, key)}={item if len(item) <= 20 else f'({len(item)} digits)'}"
                )
            elif isinstance(item, str):
                if len(surrogates) <= 10 and not item.isascii() and _SURROGATE.search(item):
                    surrogates.append(_name(path, key))
            elif isinstance(item, dict | list):
                stack.append((_name(path, key), item))
    return list(dict.fromkeys(surrogates)), numbers


def _name(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _some(names: list[str] | tuple[str, ...], most: int = 10) -> str:
    """``'a, b, c and 7 more'``: a flag names a few places, each cut to 60 characters."""
    shown = ", ".join(name[:60] for name in names[:most])
    return shown + (" and more" if len(names) > most else "")


def _flags(data: dict[str, Any], odd: bool) -> list[Flag]:
    """``odd``: the body may hold lone surrogates or kept numbers, worth a walk of its values
    (on the hot path, most bodies are plain ASCII JSON and need none)."""
    flags: list[Flag] = []
    surrogates, numbers = _walk(data) if odd else ((), ())
    if surrogates:
        flags.append(
            Flag(
                LONE_SURROGATE,
                f"lone UTF-16 surrogate in {_some(surrogates)} (a long SMS split "
                "between segments can cut a pair: the app must cope)",
            )
        )
    if numbers:
        flags.append(
            Flag(
                "unrepresentable_number",
                "numbers kept as text (not representable in JSON/Python): " + _some(numbers),
            )
        )
    refid = data["refid"]
    if len(refid) != REFID_LENGTH:
        flags.append(
            Flag(
                "refid_length",
                f"refid has {len(refid)} characters, IntelePeer sends {REFID_LENGTH}",
            )
        )
    for name in ("from", "to"):
        value = data[name]
        if len(value) > 64:  # no number is this long; don't quote it whole in the flag
            flags.append(
                Flag(
                    f"{name}_format",
                    f"{name}: {len(value)} characters is not a phone number or short code",
                )
            )
            continue
        problem = number_problem(value)
        if problem is not None:
            flags.append(Flag(f"{name}_format", f"{name}: {problem}"))
    return flags
