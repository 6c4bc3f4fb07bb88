"""Signature vectors computed independently with `openssl dgst -hmac` (see comments)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipsms.errors import UsageError
from ipsms.signature import (
    ALL_VARIANTS,
    Mode,
    Variant,
    Verdict,
    Verifier,
    compute_hmac,
    fingerprint,
    parse_variant,
    sign,
)

REFID = "ABCDEF1234567890ABCDEF1234567890"
TEXT = "Hello World!"
SECRET = "SECRET CODE"
# printf '%s' "$REFID$TEXT" | openssl dgst -sha256 -hmac 'SECRET CODE'
SHA256_HEX = "40f3e3095964936676b1d99000d57f173b1fac1ee39833ebc06fc90b7a423f35"
# ... -binary | base64
SHA256_B64 = "QPPjCVlkk2Z2sdmQANV/FzsfrB7jmDPrwG/JC3pCPzU="
# printf '%s' "$TEXT$REFID" | openssl dgst -sha1 -hmac 'SECRET CODE'
SHA1_MSG_FIRST = "15cf25abbcc37b355cecca74315f33b64571c312"
# printf '%s' "${REFID}héllo 👋" | openssl dgst -sha512 -hmac 'sëcret'  (UTF-8 bytes)
SHA512_UNICODE = (
    "4bc60eabaefc3ec629277239e147d4aa6d270842deb4b4b22c39b6d3e6d30b9cfa991adf0f17498b"
    "14c865f61ead6cc246ebd3d1a022aa606d64bde46804fbcc"
)


def test_hmac_vectors() -> None:
    assert compute_hmac(SECRET, REFID, TEXT) == SHA256_HEX
    assert compute_hmac(SECRET, REFID, TEXT, Variant(encoding="base64")) == SHA256_B64
    assert compute_hmac(SECRET, REFID, TEXT, Variant("sha1", "message+refid")) == SHA1_MSG_FIRST
    assert compute_hmac("sëcret", REFID, "héllo 👋", Variant("sha512")) == SHA512_UNICODE


def test_plain_mode_is_equality_with_the_shared_code() -> None:
    v = Verifier(SECRET, Mode.PLAIN)
    assert v.verify(REFID, TEXT, SECRET).label == "valid (plain)"
    assert v.verify(REFID, TEXT, SHA256_HEX).verdict is Verdict.INVALID


def test_hmac_mode_checks_only_the_chosen_variant() -> None:
    v = Verifier(SECRET, Mode.HMAC)
    assert v.verify(REFID, TEXT, SHA256_HEX).label == "valid (hmac-sha256)"
    assert v.verify(REFID, TEXT, SECRET).verdict is Verdict.INVALID
    sha1 = Verifier(SECRET, Mode.HMAC, parse_variant("sha1:message+refid"))
    assert sha1.verify(REFID, TEXT, SHA1_MSG_FIRST).label == "valid (hmac-sha1:message+refid:hex)"


def test_auto_accepts_plain_or_any_variant_and_names_it() -> None:
    v = Verifier(SECRET, Mode.AUTO)
    assert v.verify(REFID, TEXT, SECRET).matched == "plain"
    assert v.verify(REFID, TEXT, SHA256_HEX).matched == "hmac-sha256"
    assert v.verify(REFID, TEXT, SHA256_B64).matched == "hmac-sha256:refid+message:base64"
    assert v.verify(REFID, TEXT, SHA1_MSG_FIRST).matched == "hmac-sha1:message+refid:hex"
    assert len(ALL_VARIANTS) == 12


def test_verdicts_without_secret_or_signature() -> None:
    assert Verifier(None).verify(REFID, TEXT, "anything").label == "unchecked"
    assert Verifier(None).verify(REFID, TEXT, None).ok
    missing = Verifier(SECRET).verify(REFID, TEXT, None)
    assert missing.verdict is Verdict.MISSING and not missing.ok


def test_changed_message_fails_hmac() -> None:
    v = Verifier(SECRET, Mode.HMAC)
    assert v.verify(REFID, TEXT + " ", SHA256_HEX).verdict is Verdict.INVALID


def test_explanation_never_contains_the_secret() -> None:
    secret = "very-secret-shared-code"
    result = Verifier(secret).verify(REFID, TEXT, "wrong-signature-value")
    assert result.verdict is Verdict.INVALID
    assert result.explanation is not None
    assert secret not in result.explanation
    assert fingerprint(secret) in result.explanation
    assert "received 21 chars" in result.explanation


def test_explanation_spots_common_slips() -> None:
    v = Verifier(SECRET)
    upper = v.verify(REFID, TEXT, SHA256_HEX.upper())
    assert "hmac-sha256 if upper-case hex" in (upper.explanation or "")
    spaced = v.verify(REFID, TEXT, f" {SECRET}\n")
    assert "whitespace" in (spaced.explanation or "")
    wrong_mode = Verifier(SECRET, Mode.PLAIN).verify(REFID, TEXT, SHA256_HEX)
    assert "matches hmac-sha256" in (wrong_mode.explanation or "")
    assert "64 chars (hex, the length of an hmac-sha256)" in (wrong_mode.explanation or "")


def test_sign_agrees_with_verify() -> None:
    assert sign(SECRET, REFID, TEXT, Mode.PLAIN) == SECRET
    assert sign(SECRET, REFID, TEXT, Mode.HMAC) == SHA256_HEX


@given(
    secret=st.text(min_size=1),
    refid=st.text(),
    text=st.text(),
    variant=st.sampled_from(ALL_VARIANTS),
)
def test_any_signed_message_verifies_in_auto_and_its_own_mode(
    secret: str, refid: str, text: str, variant: Variant
) -> None:
    signature = sign(secret, refid, text, Mode.HMAC, variant)
    assert Verifier(secret, Mode.HMAC, variant).verify(refid, text, signature).ok
    assert Verifier(secret, Mode.AUTO).verify(refid, text, signature).verdict is Verdict.VALID


def test_parse_variant() -> None:
    assert parse_variant("sha512:base64") == Variant("sha512", "refid+message", "base64")
    assert parse_variant("message+refid:SHA1") == Variant("sha1", "message+refid", "hex")
    with pytest.raises(UsageError, match="unknown HMAC variant part 'md5'"):
        parse_variant("md5")


def test_a_received_plain_signature_is_never_echoed() -> None:
    """In plain mode the received value is someone's shared secret: show a fingerprint only."""
    result = Verifier("right-secret").verify(REFID, TEXT, "s3")
    assert result.explanation is not None
    assert "'s3'" not in result.explanation and "s3" not in result.explanation.split(";")[1]
    assert f"2 chars (text), fingerprint {fingerprint('s3')}" in result.explanation
    # the same secret on both sides has the same fingerprint: users can compare
    assert fingerprint("right-secret") in result.explanation


def test_displayed_signatures_never_show_part_of_a_plain_secret() -> None:
    from ipsms.redact import mask_secret

    assert mask_secret("SECRET CODE") == "****(11)"
    assert mask_secret(SHA256_HEX) == "40f3…(64)"  # an HMAC reveals nothing about the secret
    assert mask_secret(SHA256_B64) == "QPPj…(44)"


def test_each_slip_has_a_short_reason_read_back_from_its_explanation() -> None:
    from ipsms.signature import reason_of

    refid, message, secret = "R1", "hello", "s3cret"
    good = compute_hmac(secret, refid, message)
    cases = {
        "whitespace": (Verifier(secret), " " + good + " "),
        "case": (Verifier(secret), good.upper()),
        "wrong mode": (Verifier(secret, Mode.PLAIN), good),
        "HMAC variant": (Verifier(secret, Mode.HMAC, parse_variant("sha1")), good),
        "different secret": (Verifier(secret), compute_hmac("other", refid, message)),
    }
    for reason, (verifier, signature) in cases.items():
        result = verifier.verify(refid, message, signature)
        assert result.reason == reason, (reason, result.explanation)
        assert result.label == f"invalid ({reason})"
        # what the store keeps (the explanation) gives the same reason back
        assert reason_of("invalid", result.explanation) == reason
    assert Verifier(secret, Mode.HMAC).verify(refid, message, secret).reason == "wrong mode"
    assert Verifier(secret).verify(refid, message, secret.upper()).reason == "case"
    assert Verifier(secret).verify(refid, message, None).reason is None  # missing


def test_an_ambiguous_body_is_invalid_whatever_the_value_checked_gives() -> None:
    from ipsms.signature import reason_of

    ambiguity = "message (2 times) sent with different values (ipsms checked the first)"
    verifier = Verifier(SECRET)
    for signature, says in (
        (SECRET, "the value checked matches plain"),
        (SHA256_HEX, "the value checked matches hmac-sha256"),
        ("wrong", "the value checked does not match either"),
        (None, "the value checked has no signature"),
    ):
        result = verifier.verify(REFID, TEXT, signature, ambiguity)
        assert result.verdict is Verdict.INVALID
        assert result.label == "invalid (duplicate field)"
        assert result.explanation is not None and says in result.explanation
        assert result.explanation.startswith(f"ambiguous body: {ambiguity}")
        assert SECRET not in result.explanation
        assert reason_of("invalid", result.explanation) == "duplicate field"
    assert Verifier(None).verify(REFID, TEXT, SECRET, ambiguity).verdict is Verdict.UNCHECKED
