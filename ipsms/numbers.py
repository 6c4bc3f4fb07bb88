"""IntelePeer number formats (intelepeer.md section 2.4): E.164 long codes, short codes,
alphanumeric sender ids, and the checks that explain what is wrong with a number.

A short code is written ``{countrycode}-{code}`` (``1-12345``), which is also how a North
American phone number is written by hand (``303-8675309``, ``555-1234``). Such a value is taken
for a short code only when it can be one: its country code is one in use (country codes are
prefix-free, so ``303`` and ``555`` are none) and, in North America (``1``), its code has 4 to 6
digits (5 or 6 in practice; IntelePeer's own example is ``1-1234``). A 3-digit area code followed
by a 7-digit number (``303-8675309``) is read as the phone number it is, whatever the 3 digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE_RE = re.compile(r"^[1-9]\d{0,2}-\d{3,8}$")  # the shape; check_number says more
# What people write inside a phone number that is not part of it: +1 (303) 867-5309.
PUNCTUATION = re.compile(r"[\s().-]")
ALPHANUMERIC_RE = re.compile(r"^[1-9]\d{0,2}-(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{1,11}$")

# One-digit country codes whose numbers always have the same length (digits after '+'):
# enough to catch the classic slip of a NANP number written without its 1, like the
# IntelePeer doc's own example "+7708675309" (a +7 number needs 11 digits).
FIXED_LENGTHS = {"1": 11, "7": 11}

# The country codes in use (ITU-T E.164 assignments, services such as 800 and 882 included).
# The set is prefix-free: no code is the start of another, so "303" (30 is Greece) is none.
_COUNTRY_CODES = """
1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 62 63
64 65 66 81 82 84 86 90 91 92 93 94 95 98
211 212 213 216 218 220 221 222 223 224 225 226 227 228 229 230 231 232 233 234 235 236 237
238 239 240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255 256 257 258 260 261
262 263 264 265 266 267 268 269 290 291 297 298 299
350 351 352 353 354 355 356 357 358 359 370 371 372 373 374 375 376 377 378 379 380 381 382
383 385 386 387 389 420 421 423
500 501 502 503 504 505 506 507 508 509 590 591 592 593 594 595 596 597 598 599
670 672 673 674 675 676 677 678 679 680 681 682 683 685 686 687 688 689 690 691 692
800 808 850 852 853 855 856 870 878 880 881 882 883 886 888
960 961 962 963 964 965 966 967 968 970 971 972 973 974 975 976 977 979 991 992 993 994 995
996 998
"""
COUNTRY_CODES = frozenset(_COUNTRY_CODES.split())
# A NANP area code (NPA), as 303 in 303-8675309.
_AREA_CODE = re.compile(r"^[2-9][0-8]\d$")
NANP_SHORT_CODE_DIGITS = range(4, 7)


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
        problem = _short_code_problem(value)
        if problem is not None:
            return NumberCheck(value, NumberKind.INVALID, problem)
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


def _short_code_problem(value: str) -> str | None:
    """Why ``value``, shaped like a short code, is more likely a phone number (or no number
    at all); None when it can be a short code. See the module docstring for the rule."""
    country, code = value.split("-")
    form = "a short code {countrycode}-{code}"
    if len(code) == 7 and _AREA_CODE.match(country) and code[0] in "23456789":
        return (
            f"{value!r} looks like a phone number written with a dash, not {form}; "
            f"write it in E.164: +1{country}{code}"
        )
    if country not in COUNTRY_CODES:
        if len(country) == 3 and len(code) == 4 and country[0] in "23456789":
            return (
                f"{value!r} looks like a 7-digit local phone number, not {form} "
                f"({country} is not a country code); write it in E.164 with its area "
                f"code: +1, the area code, then {country}{code}"
            )
        return (
            f"{value!r} is not {form}: {country} is not a country code "
            "(short codes look like 1-12345)"
        )
    if country == "1" and len(code) not in NANP_SHORT_CODE_DIGITS:
        looks = " (a local phone number without its area code?)" if len(code) == 7 else ""
        return (
            f"{value!r} is not a North American short code{looks}: those have 5 or 6 "
            "digits, e.g. 1-12345; write a phone number in E.164: +13038675309"
        )
    return None


def _explain_invalid(value: str) -> str:
    stripped = PUNCTUATION.sub("", value)
    if not value:
        return "the number is empty"
    if not value.startswith("+") and stripped.isdigit():
        if len(stripped) == 10:
            return f"{value!r} is not E.164: add the country code, e.g. +1{stripped}"
        if len(stripped) == 11 and stripped[0] == "1":  # 1-303-867-5309
            return f"{value!r} is not E.164: write it +{stripped}"
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
