from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipsms.inbound import BodyError, parse_message
from ipsms.numbers import NumberKind, check_number

SEED = (
    b'{"refid": "ABCDEF1234567890ABCDEF1234567890", "from": "+7708675309", '
    b'"to": "+13038675309", "message": "Hello World!", "signature": "SECRET CODE"}'
)


def test_seed_example_is_accepted_and_its_from_is_flagged() -> None:
    msg = parse_message(SEED, "application/json")
    assert (msg.refid, msg.from_, msg.to, msg.message, msg.signature) == (
        "ABCDEF1234567890ABCDEF1234567890",
        "+7708675309",
        "+13038675309",
        "Hello World!",
        "SECRET CODE",
    )
    assert msg.raw == SEED
    assert [f.code for f in msg.flags] == ["from_format"]
    assert "+17708675309" in msg.flags[0].detail


def test_form_body_with_same_fields_and_extras_kept() -> None:
    raw = b"refid=r1&from=1-1234&to=%2B13038675309&message=caf%C3%A9+%26+more&x-extra=1"
    msg = parse_message(raw, "application/x-www-form-urlencoded; charset=utf-8")
    assert msg.from_ == "1-1234" and msg.to == "+13038675309"
    assert msg.message == "café & more"
    assert msg.signature is None
    assert msg.extra == {"x-extra": "1"}
    assert {f.code for f in msg.flags} == {"refid_length", "extra_fields"}
    assert msg.raw == raw


def test_json_extra_fields_of_any_type_are_kept() -> None:
    body = {
        "refid": "A" * 32,
        "from": "+13035550100",
        "to": "+13038675309",
        "message": "hi",
        "media": ["u1"],
        "n": 3,
    }
    msg = parse_message(json.dumps(body).encode(), "application/json")
    assert msg.extra == {"media": ["u1"], "n": 3}
    assert json.loads(msg.fields_json)["media"] == ["u1"]


@pytest.mark.parametrize(
    ("raw", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "not_an_object"),
        (b"", "application/json", 400, "empty_body"),
        (b'{"refid": "x", "from": "+1", "to": "+1"}', "application/json", 400, "missing_fields"),
        (
            b'{"refid": 5, "from": "+1", "to": "+1", "message": "m"}',
            "application/json",
            400,
            "wrong_field_types",
        ),
        (b"\xff\xfe", "application/json", 400, "invalid_encoding"),
        (b"refid=x", "text/plain", 415, "unsupported_content_type"),
        (b"a=%ZZ&&=", "application/x-www-form-urlencoded", 400, "missing_fields"),
        (b"refid=%FF", "application/x-www-form-urlencoded", 400, "invalid_form"),
    ],
)
def test_bad_bodies_are_rejected_with_a_reason(
    raw: bytes, ctype: str, status: int, code: str
) -> None:
    with pytest.raises(BodyError) as exc:
        parse_message(raw, ctype)
    assert (exc.value.status, exc.value.code) == (status, code)
    assert exc.value.detail


def test_deeply_nested_json_is_a_400_not_a_crash() -> None:
    raw = (
        b'{"refid":"a","from":"b","to":"c","message":"d","x":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}"
    )
    with pytest.raises(BodyError) as exc:
        parse_message(raw, "application/json")
    assert (exc.value.status, exc.value.code) == (400, "invalid_json")


def test_missing_content_type_is_sniffed() -> None:
    assert parse_message(SEED, None).refid == "ABCDEF1234567890ABCDEF1234567890"
    assert parse_message(b"refid=a&from=b&to=c&message=d", None).message == "d"


@given(
    st.binary(max_size=200),
    st.sampled_from(["application/json", "application/x-www-form-urlencoded", "", "text/xml"]),
)
def test_parser_never_raises_anything_but_body_error(raw: bytes, ctype: str) -> None:
    try:
        parse_message(raw, ctype)
    except BodyError as exc:
        assert exc.status in (400, 415)


@pytest.mark.parametrize(
    ("number", "kind", "ok"),
    [
        ("+13038675309", NumberKind.E164, True),
        ("+447700900123", NumberKind.E164, True),
        ("+7708675309", NumberKind.E164, False),
        ("1-1234", NumberKind.SHORT_CODE, True),
        ("1-12345", NumberKind.SHORT_CODE, True),
        ("57-Hello8", NumberKind.ALPHANUMERIC, False),
        ("3038675309", NumberKind.INVALID, False),
        ("+1 303 867 5309", NumberKind.INVALID, False),
        ("", NumberKind.INVALID, False),
    ],
)
def test_number_checks(number: str, kind: NumberKind, ok: bool) -> None:
    check = check_number(number)
    assert check.kind is kind
    assert check.ok is ok
    if not ok:
        assert check.problem


def test_number_explanations_say_what_to_do() -> None:
    assert "+13038675309" in (check_number("3038675309").problem or "")
    assert "remove spaces" in (check_number("+1 303 867 5309").problem or "")
    assert "cannot receive" in (check_number("57-Hello8").problem or "")


_NUMBERS = st.one_of(
    st.from_regex(r"\A\+[0-9]{1,16}\Z"),
    st.from_regex(r"\A[0-9]{1,3}-[0-9A-Za-z]{1,12}\Z"),
    st.text(alphabet=st.sampled_from("+0123456789 ()-.aZ\ud800\udfff"), max_size=20),
    st.text(max_size=70),
)


@given(from_=_NUMBERS, to=_NUMBERS)
def test_number_flags_match_the_full_check_every_time(from_: str, to: str) -> None:
    # The listener remembers number checks; a repeated number must get the same flag text as
    # a fresh check, so parse each body twice.
    raw = json.dumps(
        {"refid": "A" * 32, "from": from_, "to": to, "message": "hi", "signature": "s"}
    ).encode()
    # What the body says after JSON decoding: an escaped surrogate pair ("\\ud800\\udfff")
    # decodes to the one character it stands for (U+103FF), as it does for IntelePeer's body.
    decoded = json.loads(raw)
    expected = {}
    for name, value in (("from", decoded["from"]), ("to", decoded["to"])):
        if len(value) > 64:
            expected[f"{name}_format"] = (
                f"{name}: {len(value)} characters is not a phone number or short code"
            )
        elif (problem := check_number(value).problem) is not None:
            expected[f"{name}_format"] = f"{name}: {problem}"
    for _ in range(2):
        flags = parse_message(raw, "application/json").flags
        assert {f.code: f.detail for f in flags if f.code.endswith("_format")} == expected


def test_a_form_field_sent_twice_is_flagged_and_its_first_value_read() -> None:
    raw = b"refid=r&from=1-1234&to=1-1234&message=a&message=b&to=1-1234&signature=s"
    msg = parse_message(raw, "application/x-www-form-urlencoded")
    assert (msg.message, msg.to) == ("a", "1-1234")
    (flag,) = [f for f in msg.flags if f.code == "duplicate_fields"]
    assert flag.detail.startswith(
        "sent more than once: to (2 values, all the same), "
        "message (2 values, differing); ipsms shows and checks the "
        "first value"
    )
    assert msg.ambiguity == (
        "message (2 times) sent with different values (ipsms checked "
        "the first, as Flask and Go do; Django, PHP and Rails read the "
        "last)"
    )


def test_a_json_key_sent_twice_keeps_its_last_value_and_nested_keys_are_named() -> None:
    raw = (
        b'{"refid":"r","from":"1-1234","to":"1-1234","message":"a","signature":"s",'
        b'"signature":"t","x":[{"k":1,"k":1}],"message":"b"}'
    )
    msg = parse_message(raw, "application/json")
    assert (msg.message, msg.signature) == ("b", "t")
    (flag,) = [f for f in msg.flags if f.code == "duplicate_fields"]
    assert flag.detail.startswith(
        "sent more than once: message (2 values, differing), "
        "signature (2 values, differing), x[].k (2 values, all the "
        "same); ipsms shows and checks the last value"
    )
    assert msg.ambiguity is not None
    assert msg.ambiguity.startswith(
        "message (2 times) and signature (2 times) sent with "
        "different values (ipsms checked the last"
    )


def test_repeats_of_one_value_or_of_unsigned_fields_are_not_ambiguous() -> None:
    for raw, ctype in (
        (b"refid=r&from=a&to=b&message=m&message=m&from=c", "application/x-www-form-urlencoded"),
        (b'{"refid":"r","from":"a","to":"b","message":"m","refid":"r"}', "application/json"),
    ):
        msg = parse_message(raw, ctype)
        assert msg.ambiguity is None
        assert "duplicate_fields" in {f.code for f in msg.flags}
    assert parse_message(SEED, "application/json").ambiguity is None
