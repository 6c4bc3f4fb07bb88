"""IntelePeer number formats (intelepeer.md section 2.4): E.164 long codes, short codes,
alphanumeric sender ids, and the checks that explain what is wrong with a number."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE_RE = re.compile(r"^[1-9]\d{0,2}-\d{3,8}$")
# What people write inside a phone number that is not part of it: +1 (303) 867-5309.
PUNCTUATION = re.compile(r"[\s().-]")
ALPHANUMERIC_RE = re.compile(r"^[1-9]\d{0,2}-(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{1,11}$")

# One-digit country codes whose numbers always have the same length (digits after '+'):
# enough to catch the classic slip of a NANP number written without its 1, like the
# IntelePeer doc's own example "+7708675309" (a +7 number needs 11 digits).
FIXED_LENGTHS = {"1": 11, "7": 11}


class NumberKind(Enum):
    E164 = "e164"
    SHORT_CODE = "short_code"
    ALPHANUMERIC = "alphanumeric"
    INVALID = "invalid"


@dataclass(frozen=True)
class NumberCheck:
    value: str
    kind: NumberKind
    problem: str | None = None  # why it is invalid or suspicious; None when it looks right

    @property
    def ok(self) -> bool:
        return self.kind in (NumberKind.E164, NumberKind.SHORT_CODE) and self.problem is None


def check_number(value: str) -> NumberCheck:
    """Classify ``value`` and say what, if anything, is wrong with it."""
    if E164_RE.match(value):
        digits = value[1:]
        cc = digits[0]
        length = FIXED_LENGTHS.get(cc)
        if length is not None and len(digits) != length:
            hint = ""
            if cc != "1" and len(digits) == 10:
                hint = f" (a NANP number missing its country code? try +1{digits})"
            return NumberCheck(
                value,
                NumberKind.E164,
                f"{value!r} has {len(digits)} digits but +{cc} numbers have {length}{hint}",
            )
        return NumberCheck(value, NumberKind.E164)
    if SHORT_CODE_RE.match(value):
        return NumberCheck(value, NumberKind.SHORT_CODE)
    if ALPHANUMERIC_RE.match(value):
        return NumberCheck(
            value,
            NumberKind.ALPHANUMERIC,
            f"{value!r} is an alphanumeric sender id: it can send but cannot receive messages",
        )
    return NumberCheck(value, NumberKind.INVALID, _explain_invalid(value))


@lru_cache(maxsize=4096)
def number_problem(value: str) -> str | None:
    """``check_number(value).problem``, remembered: a listener sees the same few numbers in
    request after request, and the check (regexes, a frozen dataclass) is a visible part of
    parsing one. The bound keeps a flood of distinct numbers from growing memory."""
    return check_number(value).problem


def _explain_invalid(value: str) -> str:
    stripped = PUNCTUATION.sub("", value)
    if not value:
        return "the number is empty"
    if not value.startswith("+") and stripped.isdigit():
        if len(stripped) == 10:
            return f"{value!r} is not E.164: add the country code, e.g. +1{stripped}"
        return f"{value!r} is not E.164: it must start with + and the country code"
    if value.startswith("+") and stripped[1:].isdigit() and stripped != value:
        return f"{value!r} is not E.164: remove spaces and punctuation ({stripped})"
    if value.startswith("+0"):
        return f"{value!r} is not E.164: a country code never starts with 0"
    if value.startswith("+") and len(stripped) > 16:
        return f"{value!r} is not E.164: at most 15 digits after +"
    return (
        f"{value!r} is neither an E.164 number (+13038675309) "
        "nor a short code ({countrycode}-{code}, e.g. 1-1234)"
    )
