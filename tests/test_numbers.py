"""The short-code rule (ipsms.numbers, docs/intelepeer.md section 2.4): `{countrycode}-{code}`
is a short code only when it can be one; what reads as a phone number written with a dash is
said to be one, with the E.164 form to write instead."""

from __future__ import annotations

import pytest

from ipsms.numbers import COUNTRY_CODES, NumberKind, check_number


@pytest.mark.parametrize(
    "number",
    [
        "1-1234",  # IntelePeer's own examples
        "1-12345",
        "1-123456",  # NANP short codes have 5 or 6 digits
        "44-12345",  # UK
        "61-19123456",  # Australia's 8-digit premium codes
        "7-1234",
        "972-1234",  # Israel: a 3-digit country code and a 4-digit code, as real ones are
        "212-1234",  # Morocco, although 212 is also a New York area code
        "353-51234",  # Ireland
    ],
)
def test_real_short_codes_are_short_codes(number: str) -> None:
    check = check_number(number)
    assert (check.kind, check.ok, check.problem) == (NumberKind.SHORT_CODE, True, None)


@pytest.mark.parametrize(
    ("number", "words"),
    [
        # An area code and a 7-digit number: the phone number, whatever the 3 digits are.
        (
            "303-8675309",
            "looks like a phone number written with a dash, not a short code "
            "{countrycode}-{code}; write it in E.164: +13038675309",
        ),
        ("212-5551234", "write it in E.164: +12125551234"),  # 212 is Morocco's too
        # An exchange and a line: a 7-digit local number (555 is not a country code).
        (
            "555-1234",
            "looks like a 7-digit local phone number, not a short code {countrycode}-"
            "{code} (555 is not a country code); write it in E.164 with its area code: +1, "
            "the area code, then 5551234",
        ),
        ("303-1234567", "303 is not a country code"),  # no NANP number starts its 7 digits with 1
        ("28-12345", "28 is not a country code"),
        ("999-12345", "999 is not a country code"),
        ("1-123", "is not a North American short code: those have 5 or 6 digits"),
        ("1-8675309", "(a local phone number without its area code?)"),
        ("1-12345678", "those have 5 or 6 digits"),
    ],
)
def test_typos_of_phone_numbers_are_not_short_codes(number: str, words: str) -> None:
    check = check_number(number)
    assert check.kind is NumberKind.INVALID and not check.ok
    assert check.problem is not None and words in check.problem
    assert check.problem.startswith(repr(number))


def test_a_nanp_number_with_dashes_and_its_1_says_the_e164_form() -> None:
    assert "write it +13038675309" in (check_number("1-303-867-5309").problem or "")


def test_the_country_codes_are_prefix_free_and_one_to_three_digits() -> None:
    """A country code is never the start of another (that is how a number is read), so a
    mistaken entry would show here; every one has 1 to 3 digits and does not start with 0."""
    for code in COUNTRY_CODES:
        assert code.isdigit() and 1 <= len(code) <= 3 and code[0] != "0", code
        assert not any(code[:n] in COUNTRY_CODES for n in range(1, len(code))), code
    for assigned in ("1", "7", "44", "86", "353", "972", "998"):
        assert assigned in COUNTRY_CODES
