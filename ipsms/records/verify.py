"""The core of ``ipsms verify``: load payloads, check their signatures, explain mismatches.

A payload comes from a file or stdin (a webhook body as JSON or form fields, or NDJSON lines
of ``ipsms messages export``) or from the store by refid.
Bodies are parsed with ``ipsms.inbound.parse_message``, exactly as the listener parses them,
and checked with ``ipsms.signature.Verifier``. Nothing here prints the secret: results carry
its fingerprint only.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from ipsms.errors import UsageError, setting
from ipsms.inbound import FORM_TYPE, JSON_TYPE, BodyError, parse_message
from ipsms.request import Request
from ipsms.signature import (
    DEFAULT_VARIANT,
    Mode,
    Variant,
    Verdict,
    Verification,
    Verifier,
    fingerprint,
)
from ipsms.text import printable

INPUT_HINT = (
    "give a webhook body (a JSON object or form fields), a line of `ipsms messages "
    f"export`, or {setting('refid')} REFID to check a recorded message"
)


@dataclass(frozen=True)
class VerifyConfig:
    secret: str
    mode: Mode = Mode.AUTO
    variant: Variant = DEFAULT_VARIANT

    def verifier(self) -> Verifier:
        return Verifier(self.secret, self.mode, self.variant)

    @property
    def mode_label(self) -> str:
        return self.variant.name if self.mode is Mode.HMAC else self.mode.value


@dataclass(frozen=True)
class SignedText:
    """What a signature is checked over, and where it came from (for messages)."""

    source: str  # "payload.json", "stdin line 3", "store id 12"
    refid: str
    message: str
    signature: str | None
    attempt: int | None = None
    ambiguity: str | None = None  # signed fields sent twice with different values (inbound)


@dataclass(frozen=True)
class Loaded:
    payloads: list[SignedText]
    skipped: list[str] = field(default_factory=list)  # why some NDJSON lines were not checked


@dataclass(frozen=True)
class VerifyResult:
    payload: SignedText
    verification: Verification

    @property
    def valid(self) -> bool:
        return self.verification.verdict is Verdict.VALID

    def to_dict(self, config: VerifyConfig) -> dict[str, Any]:
        v = self.verification
        return {
            "type": "verification",
            "source": self.payload.source,
            "refid": self.payload.refid,
            "attempt": self.payload.attempt,
            "verdict": v.verdict.value,
            "reason": v.reason,
            "matched": v.matched,
            "explanation": v.explanation,
            "mode": config.mode_label,
            "secret_fingerprint": fingerprint(config.secret),
        }

    def line(self) -> str:
        """One human line: ``valid    refid ABC… attempt 2 (payload.json): matched plain``;
        an invalid one starts with its short reason, as the tables show it:
        ``invalid (case) refid ABC… (payload.json): ...``."""
        v = self.verification
        where = f"refid {printable(self.payload.refid)}"
        if self.payload.attempt is not None:
            where += f" attempt {self.payload.attempt}"
        why = f"matched {v.matched}" if v.verdict is Verdict.VALID else v.explanation or ""
        label = v.verdict.value if v.reason is None else f"{v.verdict.value} ({v.reason})"
        return f"{label:<8} {where} ({printable(self.payload.source)}): {printable(why)}"


def verify_all(payloads: list[SignedText], config: VerifyConfig) -> list[VerifyResult]:
    verifier = config.verifier()
    return [
        VerifyResult(p, verifier.verify(p.refid, p.message, p.signature, p.ambiguity))
        for p in payloads
    ]


# -- loading ----------------------------------------------------------------------------------
def load_input(data: bytes, source: str) -> Loaded:
    """Payloads from the bytes of a file or stdin; malformed input is a ``UsageError``."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # the BOM some Windows editors write
    if not data.strip():
        raise UsageError(f"{source} is empty: nothing to verify", hint=INPUT_HINT)
    start = data.lstrip()[:1]
    if start not in (b"{", b"["):
        # Form fields. A file saved by an editor ends with a newline IntelePeer never sends.
        return Loaded([_parse_body(data.rstrip(b"\r\n"), FORM_TYPE, source)])
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        lines = [ln for ln in data.splitlines() if ln.strip()]
        if len(lines) > 1 and _is_json_object(lines[0]):
            return _load_lines(lines, source)
        return Loaded([_parse_body(data, JSON_TYPE, source)])  # raises with the position
    if isinstance(doc, dict) and _is_record(doc):
        payload, _ = _from_record(doc, source, single=True)  # single: raises, never None
        if payload is not None:
            return Loaded([payload])
    return Loaded([_parse_body(data, JSON_TYPE, source)])


def load_recorded(rows: list[Request]) -> Loaded:
    """Payloads from recorded attempts, parsed from the exact bytes the listener received."""
    return Loaded(
        [_parse_body(r.body, r.content_type, f"store id {r.id}", attempt=r.attempt) for r in rows]
    )


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def _is_record(doc: dict[str, Any]) -> bool:
    """A request line written by ipsms (``messages export``, ``messages list``, ``listen``
    in JSON)."""
    return doc.get("type") == "request" and "received_at" in doc


def _load_lines(lines: list[bytes], source: str) -> Loaded:
    payloads: list[SignedText] = []
    skipped: list[str] = []
    for number, line in enumerate(lines, 1):
        where = f"{source} line {number}"
        try:
            doc = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"{where} is not valid JSON: {exc}", hint=INPUT_HINT) from None
        if not isinstance(doc, dict):
            raise UsageError(
                f"{where} is JSON {type(doc).__name__}, expected an object", hint=INPUT_HINT
            )
        if _is_record(doc):
            payload, skip = _from_record(doc, where, single=False)
            if payload is None:
                skipped.append(skip)
            else:
                payloads.append(payload)
        elif isinstance(doc.get("type"), str) and "refid" not in doc:
            skipped.append(f"{where}: a {printable(doc['type'])!r} line, not a message")
        else:
            payloads.append(_parse_body(line, JSON_TYPE, where))
    if not payloads:
        raise UsageError(
            f"{source} holds no message to verify ({len(skipped)} lines skipped: "
            f"{'; '.join(skipped[:3])})",
            hint=INPUT_HINT,
        )
    return Loaded(payloads, skipped)


class MaskedRecord(UsageError):
    """An ipsms request line that cannot be verified because what is checked is not in it:
    ``redacted`` (``messages export --redact``), or ``signature_masked`` (listen, messages
    list and show). ``refid`` lets the CLI point at the recorded message instead."""

    def __init__(self, where: str, refid: str, *, redacted: bool) -> None:
        if redacted:
            super().__init__(
                f"{where} comes from a redacted export: its message and signature "
                "are masked, so it cannot be verified",
                hint=f"export without {setting('redact')}, or use {setting('refid')} {refid}",
            )
        else:
            super().__init__(
                f"{where} has its signature masked (a line of `ipsms listen`, "
                "`messages list` or `messages show`)",
                hint=f"verify the recorded message instead: ipsms verify "
                f"{setting('refid')} {refid}, or use a line of `ipsms messages "
                "export`",
            )
        self.where = where
        self.refid = refid
        self.redacted = redacted


def _from_record(doc: dict[str, Any], where: str, *, single: bool) -> tuple[SignedText | None, str]:
    """A payload from an ipsms request line, or ``None`` and why it was skipped. The line says
    itself whether it can be checked: ``redacted`` and ``signature_masked``."""
    if doc.get("redacted") is True:
        raise MaskedRecord(where, str(doc.get("refid")), redacted=True)
    if doc.get("refid") is None:
        reason = (
            f"{where} is a request the listener rejected "
            f"({printable(str(doc.get('error') or 'no message'))}): no message to verify"
        )
        if single:
            raise UsageError(reason, hint=INPUT_HINT)
        return None, reason
    masked = doc.get("signature_masked") is True and doc.get("signature") is not None
    if masked or (doc.get("body") is None and doc.get("body_base64") is None):
        raise MaskedRecord(where, printable(str(doc["refid"])), redacted=False)
    attempt = doc.get("attempt") if isinstance(doc.get("attempt"), int) else None
    return _parse_body(
        _export_body(doc, where), doc.get("content_type"), where, attempt=attempt
    ), ""


def _export_body(doc: dict[str, Any], where: str) -> bytes:
    if isinstance(doc.get("body"), str):
        return str(doc["body"]).encode("utf-8")
    try:
        return base64.b64decode(str(doc.get("body_base64")), validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{where}: body_base64 is not valid base64", hint=INPUT_HINT) from None


def _parse_body(
    raw: bytes, content_type: str | None, where: str, attempt: int | None = None
) -> SignedText:
    try:
        msg = parse_message(raw, content_type)
    except BodyError as exc:
        raise UsageError(
            f"{where} is not an IntelePeer message: {exc.detail}", hint=INPUT_HINT
        ) from None
    return SignedText(where, msg.refid, msg.message, msg.signature, attempt, msg.ambiguity)
