"""Building the messages simulate sends: IntelePeer's shape, numbers checked, signed so that the
listener's verifier accepts them, bytes fixed once."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from ipsms.cli.options import flag as cli_flag
from ipsms.deliver.outbound import (
    DEFAULT_FROM,
    DEFAULT_MESSAGE,
    DEFAULT_TO,
    MessageSpec,
    PayloadTemplate,
    Signing,
    build_payload,
    encode,
    load_payload,
    new_refid,
    reject_undecodable,
)
from ipsms.deliver.replay import delivery_from_record, replay_selection
from ipsms.errors import UsageError
from ipsms.inbound import parse_message
from ipsms.request import Request
from ipsms.signature import Mode, Variant, Verifier, compute_hmac


def test_refids_look_like_intelepeers_and_are_fresh() -> None:
    refids = {new_refid() for _ in range(2000)}
    assert len(refids) == 2000
    assert all(re.fullmatch(r"[A-Z0-9]{32}", r) for r in refids)
    assert set("".join(refids)) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def test_default_message_is_the_documented_json_in_the_documented_order() -> None:
    p = build_payload(MessageSpec(refid="ABCDEF1234567890ABCDEF1234567890"))
    assert p.content_type == "application/json"
    assert (
        p.body
        == json.dumps(
            {
                "refid": "ABCDEF1234567890ABCDEF1234567890",
                "from": DEFAULT_FROM,
                "to": DEFAULT_TO,
                "message": DEFAULT_MESSAGE,
            }
        ).encode()
    )
    assert p.signature is None and "signature" not in json.loads(p.body)
    parsed = parse_message(p.body, p.content_type)
    assert parsed.flags == ()  # nothing the listener would flag


@pytest.mark.parametrize(
    "mode, variant, matched",
    [
        (Mode.PLAIN, Variant(), "plain"),
        (Mode.AUTO, Variant(), "plain"),
        (Mode.HMAC, Variant(), "hmac-sha256"),
        (Mode.HMAC, Variant("sha1", "message+refid", "base64"), "hmac-sha1:message+refid:base64"),
    ],
)
@pytest.mark.parametrize("form", [False, True])
def test_signed_messages_verify_on_the_listener_side(
    mode: Mode, variant: Variant, matched: str, form: bool
) -> None:
    spec = MessageSpec(
        message="ünïcode & = ? ✓", form=form, signing=Signing("s3cret", mode, variant)
    )
    p = build_payload(spec)
    parsed = parse_message(p.body, p.content_type)
    assert parsed.message == "ünïcode & = ? ✓"
    assert parsed.signature == p.signature
    verdict = Verifier("s3cret").verify(parsed.refid, parsed.message, parsed.signature)
    assert (verdict.verdict.value, verdict.matched) == ("valid", matched)
    if mode is Mode.HMAC:
        assert p.signature == compute_hmac("s3cret", p.refid, parsed.message, variant)


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_lone_surrogates_are_sent_on_purpose_and_still_verify(form: bool) -> None:
    """What a carrier delivers when a segment boundary splits a UTF-16 pair: sent, signed over
    the same text the listener reads back, and flagged there."""
    text = "split \ud83d|\ude00 end"
    p = build_payload(MessageSpec(message=text, form=form, signing=Signing("s", Mode.HMAC)))
    if form:
        assert b"message=split+%ED%A0%BD%7C%ED%B8%80+end" in p.body
    else:
        assert b'"message": "split \\ud83d|\\ude00 end"' in p.body
        assert json.loads(p.body)["message"] == text  # valid JSON, read back as sent
    parsed = parse_message(p.body, p.content_type)
    assert parsed.message == text
    assert "lone_surrogate" in {f.code for f in parsed.flags}
    assert (
        Verifier("s").verify(parsed.refid, parsed.message, parsed.signature).verdict.value
        == "valid"
    )


def test_a_surrogate_pair_given_as_two_code_points_is_the_character() -> None:
    """A ``str`` holding a high then a low surrogate is sent as the one character they encode,
    in JSON and form alike (JSON would otherwise read the two escapes back as one character)."""
    for form in (False, True):
        p = build_payload(MessageSpec(message="a\ud83d\ude00b", form=form))
        assert parse_message(p.body, p.content_type).message == "a\U0001f600b"
        assert "\U0001f600".encode() in p.body or b"%F0%9F%98%80" in p.body
        assert PayloadTemplate(MessageSpec(message="a\ud83d\ude00b")).warnings() == []


def test_encode_never_fails_on_surrogates_in_any_field() -> None:
    fields = {"refid": "R", "note": {"deep": ["\udfff"]}, "\ud800key": 1}
    assert json.loads(encode(fields, form=False)) == fields
    assert encode(fields, form=True) == (
        b"refid=R&note=%7B%22deep%22%3A+%5B%22%ED%BF%BF%22%5D%7D&%ED%A0%80key=1"
    )


def test_warnings_name_what_is_sent_on_purpose() -> None:
    assert PayloadTemplate(MessageSpec(refid="A" * 32)).warnings() == []
    assert PayloadTemplate(MessageSpec()).warnings() == []  # fresh refids are always 32
    short = PayloadTemplate(MessageSpec(refid="abc"))
    assert short.warnings() == [
        "refid 'abc' has 3 characters, IntelePeer's have 32; sending it as given"
    ]
    assert short.warnings(fixed_refid=False) == []  # load mode replaces it by fresh ones
    from_file = PayloadTemplate(MessageSpec(base={"refid": "x", "note": "\ud800"}))
    assert [w.split(" has ")[0] for w in from_file.warnings()] == ["refid 'x'", "field 'note'"]
    assert "JSON escapes" in from_file.warnings()[1]
    form = PayloadTemplate(MessageSpec(message="\udc00", form=True))
    assert form.warnings() == [
        "message has a lone UTF-16 surrogate, as a long SMS split between "
        "segments can; sending it as surrogatepass bytes (e.g. U+D800 as "
        "%ED%A0%80: not valid UTF-8)"
    ]


@pytest.mark.parametrize(
    "value, error",
    [
        ("caf\udce9", "--message has byte 0xE9 that is not UTF-8 (character 4)"),
        ("\ud800", "--message has a lone UTF-16 surrogate U+D800 (character 1)"),
    ],
)
def test_command_line_text_with_a_surrogate_is_refused(value: str, error: str) -> None:
    with pytest.raises(UsageError) as info:
        reject_undecodable("--message", value)
    assert info.value.message == error
    assert "--payload" in info.value.worded(cli_flag)
    reject_undecodable("--message", "plain text \U0001f600")
    reject_undecodable("--message", None)


def test_form_encoding_keeps_the_same_fields() -> None:
    p = build_payload(MessageSpec(form=True, refid="R" * 32, signing=Signing("code")))
    assert p.content_type == "application/x-www-form-urlencoded"
    assert parse_qsl(p.body.decode()) == [
        ("refid", "R" * 32),
        ("from", DEFAULT_FROM),
        ("to", DEFAULT_TO),
        ("message", DEFAULT_MESSAGE),
        ("signature", "code"),
    ]


def test_payload_fields_are_overridden_by_flags_and_extras_are_kept() -> None:
    base = {
        "message": "from file",
        "to": "1-12345",
        "carrier": {"name": "x"},
        "refid": "F" * 32,
        "signature": "given",
    }
    p = build_payload(MessageSpec(from_number="+442071838750", base=base))
    fields = json.loads(p.body)
    assert list(fields) == ["refid", "from", "to", "message", "carrier", "signature"]
    assert fields == {
        "refid": "F" * 32,
        "from": "+442071838750",
        "to": "1-12345",
        "message": "from file",
        "carrier": {"name": "x"},
        "signature": "given",
    }
    signed = build_payload(MessageSpec(base=base, message="flag", signing=Signing("k")))
    assert json.loads(signed.body)["signature"] == "k"  # a secret re-signs
    assert json.loads(signed.body)["message"] == "flag"


def test_a_template_renders_distinct_messages_and_keeps_its_checks() -> None:
    template = PayloadTemplate(MessageSpec(signing=Signing("k", Mode.HMAC)))
    a, b = template.render(), template.render()
    assert a.refid != b.refid and a.body != b.body
    assert a.signature == compute_hmac("k", a.refid, DEFAULT_MESSAGE)


@pytest.mark.parametrize(
    "flag, value, explains",
    [
        ("from_number", "+7708675309", "+7 numbers have 11"),
        ("to_number", "3038675309", "add the country code, e.g. +13038675309"),
        ("to_number", "57-Hello8", "cannot receive"),
        ("from_number", "", "empty"),
    ],
)
def test_invalid_numbers_are_explained_unless_allowed(flag: str, value: str, explains: str) -> None:
    with pytest.raises(UsageError) as info:
        build_payload(MessageSpec(**{flag: value}))  # type: ignore[arg-type]
    assert explains in info.value.message
    assert "--allow-invalid" in info.value.worded(cli_flag)
    p = build_payload(MessageSpec(allow_invalid=True, **{flag: value}))  # type: ignore[arg-type]
    assert value in json.loads(p.body).values()


def test_non_string_fields_in_a_payload_file_are_refused() -> None:
    with pytest.raises(UsageError, match="'message' is a JSON number"):
        build_payload(MessageSpec(base={"message": 5}))


def test_load_payload_from_a_file_and_stdin(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text('{"message": "hi", "x": 1}')
    assert load_payload(str(f), io.StringIO()) == {"message": "hi", "x": 1}
    assert load_payload("-", io.StringIO('{"to": "+13038675309"}')) == {"to": "+13038675309"}


@pytest.mark.parametrize(
    "text, error",
    [
        ("[1, 2]", "is a JSON array, not an object"),
        ("{nope", "not valid JSON: Expecting property name"),
    ],
)
def test_bad_payload_files_are_usage_errors(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        load_payload("-", io.StringIO(text))


def test_missing_payload_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read payload"):
        load_payload(str(tmp_path / "missing.json"), io.StringIO())


def _stored(
    id: int,
    refid: str | None,
    at: float,
    body: bytes = b"a=1",
    content_type: str | None = "application/x-www-form-urlencoded; charset=UTF-8",
) -> Request:
    return Request(
        at,
        "POST",
        "/",
        None,
        [],
        content_type,
        body,
        200,
        refid=refid,
        fields={"signature": "sig-123456789"} if refid else None,
        id=id,
        attempt=1,
    )


def test_a_recorded_request_is_replayed_as_stored() -> None:
    d = delivery_from_record(_stored(7, "R1", 1.0, b"refid=R1&x=%20"), "http://127.0.0.1:9/")
    assert (d.body, d.content_type, d.refid, d.signature) == (
        b"refid=R1&x=%20",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "R1",
        "sig-123456789",
    )
    assert d.source == "replay of request #7"


def test_replay_selection_takes_one_request_per_refid_within_the_window() -> None:
    rows = [
        _stored(1, "A", 10),
        _stored(2, None, 11),
        _stored(3, "A", 12),
        _stored(4, "B", 13),
        _stored(5, "C", 20),
        _stored(6, "B", 21),
    ]
    assert [r.id for r in replay_selection(rows)] == [1, 4, 5]
    assert [r.id for r in replay_selection(rows, since=12.5)] == [4, 5]


def test_payloads_nested_too_deeply_are_usage_errors() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(UsageError, match="nested too deeply to read"):
        load_payload("-", io.StringIO('{"note": ' + deep + "}"))
    nested: list[object] = []
    for _ in range(5000):  # deeper than json.dumps can go
        nested = [nested]
    for form in (False, True):
        with pytest.raises(UsageError, match="nested too deeply to send"):
            PayloadTemplate(MessageSpec(base={"note": nested}, form=form))
