"""The checks of ``ipsms check``: their ids, the IntelePeer rule each tests, and the messages
each sends.

A check is data here: its id (stable: CI reports and ``--only`` name it), the rule, what
passes, and its cases, each a variation of the plain delivery (other text, numbers, encoding or
signature). How a case is sent and judged is ``ipsms.check.runner``'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ipsms import defaults

DEFAULT_CONCURRENCY = 20  # deliveries at once in ``burst``
KEEP_ALIVE_DELIVERIES = 5  # deliveries on one connection in ``keep-alive``
REPLY_WAIT = 1.0  # seconds to let the app's replies reach the send API in ``replies-once``
WRONG_SECRET = "ipsms-check-wrong-secret"  # signs ``bad-signature``; never the real one


@dataclass(frozen=True)
class Case:
    """One message a check sends: a variation of the plain delivery."""

    label: str
    message: str = defaults.MESSAGE_TEXT
    from_number: str = defaults.FROM_NUMBER
    to_number: str = defaults.TO_NUMBER
    extra: Mapping[str, Any] = field(default_factory=dict)
    form: bool = False


@dataclass(frozen=True)
class CheckDef:
    id: str
    rule: str  # IntelePeer's rule the check tests
    passes: str  # what the app must do
    cases: tuple[Case, ...] = ()


PLAIN = Case("a plain JSON delivery")

_GSM = "The quick brown fox jumps over the lazy dog 0123456789 "  # GSM-7 only
_LONG_UNIT = "0123456789"


def _gsm(length: int) -> str:
    return (_GSM * (length // len(_GSM) + 1))[:length]


CHECKS: tuple[CheckDef, ...] = (
    CheckDef(
        "answers-200",
        "only HTTP 200 counts as delivered",
        "a plain valid JSON delivery gets exactly 200",
        (PLAIN,),
    ),
    CheckDef(
        "answers-in-time",
        "an answer that takes too long is a failed attempt",
        "every answer arrives within the timeout (a warning above half of it)",
    ),
    CheckDef(
        "no-redirect",
        "a 3xx is not a 200",
        "the app answers the delivery itself, without a redirect",
    ),
    CheckDef(
        "retried-refid",
        "a lost 200 makes IntelePeer resend the same refid, body and signature",
        "the second delivery of a refid also gets 200",
        (Case("the same message twice"),),
    ),
    CheckDef(
        "concurrent-refid",
        "a retry can overlap a slow first attempt",
        "two deliveries of one refid at once both get 200",
        (Case("the same message twice at once"),),
    ),
    CheckDef(
        "replies-once",
        "every attempt reaches the app; a reply per attempt texts the customer again",
        "the app sends at most one reply per refid across its retries",
        (Case("a message delivered twice"),),
    ),
    CheckDef(
        "form-body",
        "the same fields may arrive form-encoded",
        "a form-encoded delivery gets 200 (a warning when it does not)",
        (Case("form-encoded", form=True),),
    ),
    CheckDef(
        "unknown-fields",
        "providers add fields",
        "a delivery with extra fields gets 200",
        (
            Case(
                "extra fields",
                extra={
                    "timestamp": "2026-01-01T00:00:00Z",
                    "channel": "sms",
                    "segments": 1,
                    "media": [],
                },
            ),
        ),
    ),
    CheckDef(
        "numbers",
        "from and to can be E.164, a short code or the docs' +7708675309",
        "each shape gets 200",
        (
            Case("from a short code 1-1234", from_number="1-1234"),
            Case("to a short code 1-12345", to_number="1-12345"),
            Case("from +7708675309 (the docs' example)", from_number="+7708675309"),
            Case("from an international E.164 number", from_number="+442071838750"),
        ),
    ),
    CheckDef(
        "text-emoji",
        "the text is whatever the handset sent",
        "skin tones, ZWJ families and flags get 200",
        (
            Case("skin tones", message="ok \U0001f44d\U0001f3fd\U0001f44b\U0001f3ff"),
            Case(
                "a ZWJ family",
                message="\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 home",
            ),
            Case("flags", message="\U0001f1fa\U0001f1f8 \U0001f3f3\ufe0f\u200d\U0001f308"),
        ),
    ),
    CheckDef(
        "text-scripts",
        "the text is whatever the handset sent",
        "CJK, Arabic and Hebrew (bidi) and combining marks get 200",
        (
            Case("CJK", message="你好，世界。こんにちは 안녕하세요"),
            Case("Arabic and Hebrew", message="مرحبا بالعالم hello שלום עולם"),
            Case("combining marks", message="e\u0301 n\u0303 a\u0308\u0323 Z\u0324\u0354\u0367"),
        ),
    ),
    CheckDef(
        "text-segments",
        "GSM-7 and UCS-2 segment boundaries",
        "texts of 160/161 GSM-7 and 70/71 UCS-2 characters get 200",
        (
            Case("160 GSM-7 characters", message=_gsm(160)),
            Case("161 GSM-7 characters", message=_gsm(161)),
            Case("70 UCS-2 characters", message="短" * 70),
            Case("71 UCS-2 characters", message="短" * 71),
        ),
    ),
    CheckDef(
        "text-long",
        "a concatenated SMS",
        "a 1,600-character text gets 200",
        (Case("1,600 characters", message=_LONG_UNIT * 160),),
    ),
    CheckDef(
        "text-empty",
        "a message can have no text",
        "an empty text gets 200",
        (Case("an empty text", message=""),),
    ),
    CheckDef(
        "text-lone-surrogate",
        "a segment boundary can split a surrogate pair",
        "a JSON text with a lone \\ud83d gets 200",
        (Case("a lone high surrogate", message="split \ud83d"),),
    ),
    CheckDef(
        "text-whitespace",
        "the signature covers the exact text",
        "CR, CRLF, U+2028, leading and trailing spaces get 200",
        (
            Case("CR", message="one\rtwo"),
            Case("CRLF", message="one\r\ntwo"),
            Case("U+2028", message="one\u2028two"),
            Case("leading and trailing spaces", message="  padded text  "),
        ),
    ),
    CheckDef(
        "text-markup",
        "anyone can text the number",
        "HTML, SQL and shell-looking texts get 200",
        (
            Case("HTML", message="<script>alert('x')</script><b>hi</b> &amp;"),
            Case("SQL", message="'; DROP TABLE messages; --"),
            Case("shell", message="$(id) `uname` && echo $HOME | cat /etc/passwd"),
        ),
    ),
    CheckDef(
        "bad-signature",
        "with a secret, only IntelePeer's signature is genuine",
        "a wrong signature does not get 200",
        (Case("signed with another secret"),),
    ),
    CheckDef(
        "missing-signature",
        "with a secret, an unsigned delivery is not IntelePeer's",
        "a delivery without a signature does not get 200",
        (Case("no signature field"),),
    ),
    CheckDef(
        "no-secret-echo",
        "the secret is never sent back",
        "no answer of the app contains the secret",
    ),
    CheckDef(
        "burst",
        "IntelePeer delivers messages concurrently",
        "the concurrency's deliveries at once all get 200",
    ),
    CheckDef(
        "keep-alive",
        "a client reuses connections",
        "several deliveries on one connection all get 200",
    ),
)

BY_ID: dict[str, CheckDef] = {check.id: check for check in CHECKS}
IDS: tuple[str, ...] = tuple(BY_ID)
