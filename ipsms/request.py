"""One received request: the single model the listener builds, the recorder writes, the store
reads back, and every command prints as its one ``"type": "request"`` JSON shape.

The shape is documented key by key in ``docs/ndjson.md``; ``to_dict`` is the only place it is
built (``messages export --redact`` replaces values in it, never keys).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ipsms.redact import mask_headers, mask_in_text, mask_secret
from ipsms.signature import reason_of, verdict_label
from ipsms.text import iso_time


@dataclass(slots=True)
class Request:
    """A request ``listen`` received, answered and (usually) recorded. Not frozen: one is built
    for every request on the listener's hot path, and a frozen dataclass costs an
    ``object.__setattr__`` per field; treat one you did not build as read-only. The listener
    builds one positionally (``listener._record``): a field added goes at the end, or there."""

    received_at: float  # unix time, seconds
    method: str
    path: str  # the request target exactly as sent, query string included
    remote: str | None
    headers: list[tuple[str, str]]  # credentials already masked
    content_type: str | None
    body: bytes  # the exact bytes received (of a rejected request, maybe only the start)
    status: int  # the HTTP status ipsms answered
    refid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    message: str | None = None
    fields: dict[str, Any] | None = None  # every parsed field
    # The same fields as the JSON text the store holds. For a JSON body it is the body's own
    # text, so the hot path serialises nothing.
    fields_json: str | None = None
    verdict: str | None = None  # valid / invalid / missing / unchecked
    verdict_detail: str | None = None  # which scheme matched, or why it failed
    flags: list[dict[str, str]] | None = None  # [{code, detail}, ...]
    error: str | None = None  # machine code of the rejection: "invalid_json", ...
    error_detail: str | None = None  # its explanation, for people
    body_size: int | None = None  # bytes that arrived, when ``body`` is only their start
    body_sha256: str | None = None  # of everything that arrived, when the body was cut
    id: int | None = None  # row id in the store; None until recorded (or if never)
    attempt: int | None = None  # 1, 2, ... per refid, counted by the store
    # listen --forward-to: what the app answered ({url, status, latency_ms, body_preview,
    # error, detail}), or None when the request was not relayed
    forward: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 200

    @property
    def size(self) -> int:
        """Bytes received (not only those kept)."""
        return len(self.body) if self.body_size is None else self.body_size

    @property
    def body_truncated(self) -> bool:
        return self.body_size is not None and self.body_size > len(self.body)

    @property
    def signature(self) -> str | None:
        sig = (self.fields or {}).get("signature")
        return sig if isinstance(sig, str) and sig else None

    @property
    def verdict_label(self) -> str | None:
        """``'valid (plain)'``, ``'invalid (case)'``, ...: the verdict with the scheme that
        matched or the short reason it failed (derived from the stored explanation)."""
        return verdict_label(self.verdict, self.verdict_detail)

    @property
    def verdict_reason(self) -> str | None:
        """``'case'``, ``'wrong mode'``...: why an invalid signature failed, in short."""
        return reason_of(self.verdict, self.verdict_detail)

    @property
    def error_text(self) -> str | None:
        """``'invalid_json: body is not valid JSON...'``: code and detail in one line (the
        store's ``error`` column)."""
        if self.error is None:
            return None
        return f"{self.error}: {self.error_detail}" if self.error_detail else self.error

    def to_dict(self, *, bodies: bool, masked: bool = True) -> dict[str, Any]:
        """The one JSON form of a request. ``bodies``: include the body (text when UTF-8, else
        base64); without it ``body`` and ``body_base64`` are both null. ``masked``: the
        signature is masked wherever it appears (``signature``, ``fields``, the body), since
        with the plain scheme it *is* the shared secret; only ``messages export`` keeps it."""
        sig = self.signature
        fields = self.fields
        headers = self.headers
        shown = sig
        if masked and sig is not None:
            shown = mask_secret(sig)
            if fields is not None:
                fields = {**fields, "signature": shown}
            if sig:  # a header holding the signature (the shared code, in plain mode) too
                headers = mask_headers(headers, sig, shown or "")
        body: str | None = None
        body_base64: str | None = None
        if bodies:
            body, body_base64 = _body_forms(self.body, sig if masked else None, shown)
        return {
            "type": "request",
            "id": self.id,
            "received_at": iso_time(self.received_at),
            "method": self.method,
            "path": self.path,
            "remote": self.remote,
            "headers": headers,
            "content_type": self.content_type,
            "size": self.size,
            "body_truncated": self.body_truncated,
            "body_sha256": self.body_sha256,
            "body": body,
            "body_base64": body_base64,
            "refid": self.refid,
            "attempt": self.attempt,
            "from": self.from_number,
            "to": self.to_number,
            "message": self.message,
            "fields": fields,
            "signature": shown,
            "signature_masked": masked,
            "verdict": self.verdict,
            "verdict_detail": self.verdict_detail,
            "flags": self.flags or [],
            "status": self.status,
            "error": self.error,
            "error_detail": self.error_detail,
            "forward": self.forward,
            "redacted": False,
        }


def is_request_line(doc: dict[str, Any]) -> bool:
    """Whether a JSON object is a request line ipsms wrote (``to_dict``: ``messages export``,
    ``messages list`` and ``show``, ``listen`` in JSON), read back by ``verify`` and by
    ``simulate --payload``."""
    return doc.get("type") == "request" and "received_at" in doc


def line_body(doc: dict[str, Any]) -> bytes | None:
    """The body a request line carries (``body`` as UTF-8, or ``body_base64``), or None when
    it carries none (``listen``, ``messages list``). ``ValueError`` for base64 that is not."""
    if isinstance(doc.get("body"), str):
        return str(doc["body"]).encode("utf-8", "surrogatepass")
    if doc.get("body_base64") is None:
        return None
    return base64.b64decode(str(doc["body_base64"]), validate=True)


def _body_forms(
    body: bytes, secret: str | None, masked: str | None
) -> tuple[str | None, str | None]:
    """``(text, None)`` for a UTF-8 body, ``(None, base64)`` otherwise; with ``secret`` its
    copies are replaced by ``masked`` in either form."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        if secret is not None:
            # A body with a lone surrogate (real SMS data) is still a message with a
            # signature: mask it in the surrogate-passing text, and encode that back.
            try:
                odd = body.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                pass
            else:
                body = mask_in_text(odd, secret, masked or "").encode("utf-8", "surrogatepass")
        return None, base64.b64encode(body).decode("ascii")
    if secret is not None:
        text = mask_in_text(text, secret, masked or "")
    return text, None
