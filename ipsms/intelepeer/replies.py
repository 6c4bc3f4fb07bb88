"""Reading IntelePeer's replies leniently, and making their text safe to print.

Only the status codes are documented (intelepeer.md 2.2), so the parsers accept the likely
shapes of a body: a reason under one of several keys, a token under another, a 207 list of
per-number results named by number or in request order. Every string taken from a reply goes
through ``shown`` before it reaches a message, a table or an NDJSON line: a server (or whatever
answers at ``--api-base``) cannot move the cursor, recolour the terminal or reorder the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ipsms.text import printable

_REASON_KEYS = (
    "message",
    "error_description",
    "error",
    "reason",
    "detail",
    "description",
    "errors",
    "msg",
    "status",
)
_NUMBER_KEYS = ("endpoint", "number", "tn", "did", "telephoneNumber", "phoneNumber")
_STATUS_KEYS = ("code", "status", "statusCode", "status_code", "httpStatus", "http_status")
_LIST_KEYS = ("results", "endpoints", "data", "items", "responses", "statuses")
_OK_WORDS = frozenset({"ok", "success", "succeeded", "updated", "created", "set"})
_MAX_NESTING = 4  # how deep a reason or a token is looked for ({"error": {"message": ...}})


def shown(text: str) -> str:
    """Server text made printable: controls as visible escapes (``printable``), and a lone
    surrogate (``"\\ud800"`` in the JSON) as its escape, so it can always be written out."""
    return printable(text).encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class EndpointResult:
    number: str
    status: int  # 0 when the server's answer gave no status for this number
    reason: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def server_reason(body: Any, text: str = "", _depth: int = 0) -> str | None:
    """The server's own words: a message/error field, a string body, or the raw text."""
    if isinstance(body, dict):
        if _depth >= _MAX_NESTING:
            return None
        for key in _REASON_KEYS:
            value = body.get(key)
            if isinstance(value, list):  # e.g. {"errors": [{"message": ...}, "text"]}
                value = "; ".join(
                    p
                    for v in value[:10]
                    if (
                        p := server_reason(v, _depth=_depth + 1)
                        if isinstance(v, dict)
                        else _scalar(v)
                    )
                )
            elif isinstance(value, dict):
                value = server_reason(value, _depth=_depth + 1)
            if (
                isinstance(value, str)
                and value.strip()
                and not (key == "status" and value.strip().isdigit())
            ):
                return one_line(value)
        return None
    if isinstance(body, str) and body.strip():
        return one_line(body)
    if body is None and text.strip():
        return one_line(text, 200)
    return None


def _scalar(value: Any) -> str:
    """A list item as text; nested lists are not searched (``str`` of one could be huge)."""
    return value if isinstance(value, str) else "" if isinstance(value, list | dict) else str(value)


def extract_token(body: Any, _depth: int = 0) -> str | None:
    if isinstance(body, dict) and _depth < _MAX_NESTING:
        for key in ("token", "access_token", "accessToken", "authToken"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                value = value.strip()
                return value[7:].strip() if value.lower().startswith("bearer ") else value
        for key in ("data", "result"):
            if isinstance(body.get(key), dict):
                return extract_token(body[key], _depth + 1)
    return None


def provision_state(body: Any) -> str:
    if isinstance(body, dict):
        prov = body.get("provisioning")
        if isinstance(prov, dict) and isinstance(prov.get("state"), str):
            return shown(one_line(prov["state"], 80))
        if isinstance(body.get("state"), str):
            return shown(one_line(body["state"], 80))
    return "requested"


def _http_status(value: Any) -> int | None:
    """``201`` or ``"201"`` -> 201; anything that is not a three-digit status -> None."""
    if isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) == 3:
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 999:
        return value
    return None


def _item_status(item: Any) -> int:
    if isinstance(item, bool):
        return 201 if item else 0
    if not isinstance(item, dict):
        return _http_status(item) or 0
    for key in _STATUS_KEYS:
        value = item.get(key)
        if (status := _http_status(value)) is not None:
            return status
        if isinstance(value, str) and value.strip().lower() in _OK_WORDS:
            return 201
    if item.get("success") is True or item.get("ok") is True:
        return 201
    return 0


def number_key(number: str) -> str:
    """``+13035550101`` and ``13035550101`` name the same number; short codes are as given."""
    number = number.strip()
    return number[1:] if number.startswith("+") else number


def _item_number(item: Any) -> str | None:
    """The number an item names: a string, or an integer (``{"endpoint": 13035550101}``)."""
    if not isinstance(item, dict):
        return None
    for key in _NUMBER_KEYS:
        value = item.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
    return None


def parse_multi_status(body: Any, endpoints: Sequence[str]) -> list[EndpointResult] | None:
    """One result per requested number, matched by the number an item names (with or without
    the ``+``), else by order (the doc says the list is in request order). None when no list
    can be found."""
    items = body if isinstance(body, list) else None
    if isinstance(body, dict):
        for key in _LIST_KEYS:
            if isinstance(body.get(key), list):
                items = body[key]
                break
    if items is None:
        return None
    named = {number_key(n): item for item in items if (n := _item_number(item)) is not None}
    results = []
    for index, number in enumerate(endpoints):
        item = (
            named.get(number_key(number))
            if named
            else (items[index] if index < len(items) else None)
        )
        if item is None:
            results.append(EndpointResult(number, 0, "the answer has no result for this number"))
            continue
        status = _item_status(item)
        reason = server_reason(item) if isinstance(item, dict) else None
        if status == 0 and reason is None:
            reason = "the answer gives no status for this number"
        results.append(EndpointResult(number, status, reason))
    return results
