"""IntelePeer webhook signatures (intelepeer.md section 1.1).

IntelePeer documents two schemes: ``plain`` (the ``signature`` field *is* the shared code) and
an HMAC over ``refid`` and ``message`` whose hash, order and encoding are not documented. So the
HMAC is a ``Variant`` (algorithm, order, encoding), ``auto`` accepts plain or any known variant
and says which matched, and a mismatch is explained without ever revealing the secret.
Everything here is pure; comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from itertools import product

from ipsms.errors import UsageError, setting
from ipsms.redact import digest_shape


class Mode(StrEnum):
    AUTO = "auto"
    PLAIN = "plain"
    HMAC = "hmac"


ALGORITHMS = ("sha256", "sha1", "sha512")
ORDERS = ("refid+message", "message+refid")
ENCODINGS = ("hex", "base64")


@dataclass(frozen=True)
class Variant:
    algorithm: str = "sha256"
    order: str = "refid+message"
    encoding: str = "hex"

    @property
    def name(self) -> str:
        """Short when it is the default shape: ``hmac-sha256``; full otherwise."""
        if (self.order, self.encoding) == ("refid+message", "hex"):
            return f"hmac-{self.algorithm}"
        return f"hmac-{self.algorithm}:{self.order}:{self.encoding}"

    @property
    def spec(self) -> str:
        return f"{self.algorithm}:{self.order}:{self.encoding}"


DEFAULT_VARIANT = Variant()
NEAR_MISS_LIMIT = 64 * 1024  # characters of refid + message the mismatch explainer re-hashes
# Default first, then every other combination: the order ``auto`` tries them in.
ALL_VARIANTS = (
    DEFAULT_VARIANT,
    *(
        v
        for v in (Variant(a, o, e) for a, o, e in product(ALGORITHMS, ORDERS, ENCODINGS))
        if v != DEFAULT_VARIANT
    ),
)


def parse_variant(spec: str) -> Variant:
    """``'sha256'``, ``'sha1:message+refid'``, ``'sha512:refid+message:base64'`` -> Variant.

    Parts may come in any order; missing parts take the default.
    """
    algorithm, order, encoding = DEFAULT_VARIANT.algorithm, DEFAULT_VARIANT.order, "hex"
    for part in filter(None, (p.strip().lower() for p in spec.split(":"))):
        if part in ALGORITHMS:
            algorithm = part
        elif part in ORDERS:
            order = part
        elif part in ENCODINGS:
            encoding = part
        else:
            raise UsageError(
                f"unknown HMAC variant part {part!r} in {spec!r}",
                hint=f"use ALGORITHM[:ORDER][:ENCODING] with ALGORITHM in {', '.join(ALGORITHMS)}, "
                f"ORDER in {', '.join(ORDERS)}, ENCODING in {', '.join(ENCODINGS)}",
            )
    return Variant(algorithm, order, encoding)


def utf8(text: str) -> bytes:
    """UTF-8 of ``text``; a lone surrogate (real SMS data: a segment boundary can split a
    UTF-16 pair) is encoded as its own three bytes instead of failing."""
    return text.encode("utf-8", "surrogatepass")


def compute_hmac(secret: str, refid: str, message: str, variant: Variant = DEFAULT_VARIANT) -> str:
    data = refid + message if variant.order == "refid+message" else message + refid
    digest = hmac.new(utf8(secret), utf8(data), variant.algorithm).digest()
    if variant.encoding == "hex":
        return digest.hex()
    return base64.b64encode(digest).decode("ascii")


def sign(
    secret: str,
    refid: str,
    message: str,
    mode: Mode = Mode.PLAIN,
    variant: Variant = DEFAULT_VARIANT,
) -> str:
    """The ``signature`` field IntelePeer would send. ``auto`` signs as ``plain``, the scheme
    the original documentation describes."""
    if mode is Mode.HMAC:
        return compute_hmac(secret, refid, message, variant)
    return secret


class Verdict(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    MISSING = "missing"
    UNCHECKED = "unchecked"


# Short reasons a signature failed, for a table cell: ``reason_of`` reads them back from the
# explanation ``Verifier.explain`` wrote (the store keeps it as ``verdict_detail``), so a row
# recorded by an older ipsms gets its short reason too, and `ipsms verify` shows the same ones.
REASON_WHITESPACE = "whitespace"
REASON_CASE = "case"
REASON_MODE = "wrong mode"
REASON_VARIANT = "HMAC variant"
REASON_SECRET = "different secret"
REASON_UNEXPLAINED = "unexplained"  # near-miss checks skipped (a very large message)
REASON_DUPLICATE = "duplicate field"  # a signed field sent twice: the app may read the other
# The sentences of ``explain`` that ``reason_of`` recognises: change both together.
_WHITESPACE = "it matches once surrounding whitespace is removed"
_UPPER_HEX = "if upper-case hex is allowed"
_SECRET_CASE = "it matches the secret except for letter case"
_OTHER_SCHEME = "or the matching mode"
_DIFFERENT = (
    "either the secret differs from the sender's, or the refid or message changed after signing"
)
_AMBIGUOUS = "so no signature can vouch for the values an app reads"


def reason_of(verdict: str | None, explanation: str | None) -> str | None:
    """The short reason of an ``invalid`` verdict (``'case'``, ``'wrong mode'``...) from its
    explanation; None for any other verdict or without an explanation."""
    if verdict != Verdict.INVALID.value or not explanation:
        return None
    if _AMBIGUOUS in explanation:  # first: what follows it explains the value checked
        return REASON_DUPLICATE
    if _WHITESPACE in explanation:
        return REASON_WHITESPACE
    if _UPPER_HEX in explanation or _SECRET_CASE in explanation:
        return REASON_CASE
    if _OTHER_SCHEME in explanation:
        # "tried plain; ... it matches hmac-..." or "tried hmac-...; ... it matches plain":
        # the scheme is wrong; "tried hmac-x; ... it matches hmac-y": the variant is.
        if "; tried hmac-" in explanation and "; it matches hmac-" in explanation:
            return REASON_VARIANT
        return REASON_MODE
    if _DIFFERENT in explanation:
        return REASON_SECRET
    return REASON_UNEXPLAINED


def verdict_label(verdict: str | None, detail: str | None) -> str | None:
    """``'valid (plain)'``, ``'invalid (case)'``, ``'missing'``, ``'unchecked'``: the verdict
    with the scheme that matched or the short reason it failed."""
    if verdict == Verdict.VALID.value and detail:
        return f"valid ({detail})"
    reason = reason_of(verdict, detail)
    return f"{verdict} ({reason})" if reason else verdict


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    matched: str | None = None  # "plain" or a variant name, when valid
    explanation: str | None = None  # why it failed; never contains the secret

    @property
    def label(self) -> str:
        """``'valid (plain)'``, ``'invalid (case)'``, ``'missing'``, ``'unchecked'``."""
        return verdict_label(self.verdict.value, self.matched or self.explanation) or ""

    @property
    def reason(self) -> str | None:
        """The short reason of an invalid signature (``'whitespace'``, ``'case'``...)."""
        return reason_of(self.verdict.value, self.explanation)

    @property
    def ok(self) -> bool:
        return self.verdict in (Verdict.VALID, Verdict.UNCHECKED)


def fingerprint(secret: str) -> str:
    """A short, non-reversible tag for a secret, safe to print: ``sha256:1a2b3c4d``."""
    return "sha256:" + hashlib.sha256(utf8(secret)).hexdigest()[:8]


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(utf8(a), utf8(b))


_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha512": 64}


def _output_length(variant: Variant) -> int:
    size = _DIGEST_SIZES[variant.algorithm]
    return size * 2 if variant.encoding == "hex" else 4 * ((size + 2) // 3)


def could_match(variant: Variant, signature: str) -> bool:
    """Whether ``variant`` can produce a value of ``signature``'s length: a cheap filter that
    skips HMACs that cannot match (it depends only on the received value, never the secret),
    so a large message with a wrong signature costs no more than a right one."""
    return len(signature) == _output_length(variant)


@dataclass(frozen=True)
class Verifier:
    """Checks signatures for one configuration (secret, mode, variant)."""

    secret: str | None
    mode: Mode = Mode.AUTO
    variant: Variant = DEFAULT_VARIANT

    # Computed once (cached_property writes the instance's __dict__, which a frozen, non-slots
    # dataclass allows): verify() runs for every request the listener receives.
    @cached_property
    def _candidates(self) -> tuple[str | Variant, ...]:
        if self.mode is Mode.PLAIN:
            return ("plain",)
        if self.mode is Mode.HMAC:
            return (self.variant,)
        rest = tuple(v for v in ALL_VARIANTS if v != self.variant)
        return ("plain", self.variant, *rest)

    def candidates(self) -> tuple[str | Variant, ...]:
        return self._candidates

    def verify(
        self, refid: str, message: str, signature: str | None, ambiguity: str | None = None
    ) -> Verification:
        """``ambiguity``: the body sent a signed field more than once with different values
        (``InboundMessage.ambiguity`` says which, and which value was read): invalid whatever
        the value checked gives, since the app behind may read another one."""
        if not self.secret:
            return Verification(Verdict.UNCHECKED)
        if ambiguity is not None:
            return Verification(
                Verdict.INVALID, explanation=self._ambiguous(refid, message, signature, ambiguity)
            )
        if signature is None or signature == "":
            return Verification(
                Verdict.MISSING,
                explanation="no signature field in the body, but a secret is configured",
            )
        matched = self.match(refid, message, signature)
        if matched is not None:
            return Verification(Verdict.VALID, matched)
        return Verification(Verdict.INVALID, explanation=self.explain(refid, message, signature))

    def _ambiguous(self, refid: str, message: str, signature: str | None, ambiguity: str) -> str:
        head = f"ambiguous body: {ambiguity}, {_AMBIGUOUS}"
        if not signature:
            return f"{head}; the value checked has no signature"
        matched = self.match(refid, message, signature)
        if matched is not None:
            return (
                f"{head}; the value checked matches {matched}: a signed body may have had "
                "another value added"
            )
        return f"{head}; the value checked does not match either: " + self.explain(
            refid, message, signature
        )

    def match(self, refid: str, message: str, signature: str) -> str | None:
        """The scheme ``signature`` matches (``'plain'`` or a variant name), or None."""
        assert self.secret
        for cand in self._candidates:
            if cand == "plain":
                if _eq(signature, self.secret):
                    return "plain"
            elif (
                isinstance(cand, Variant)
                and could_match(cand, signature)
                and _eq(signature, compute_hmac(self.secret, refid, message, cand))
            ):
                return cand.name
        return None

    def explain(self, refid: str, message: str, signature: str) -> str:
        """Why ``signature`` did not match, without revealing the secret."""
        assert self.secret
        cands = self.candidates()
        if self.mode is Mode.AUTO:
            tried = (
                f"plain and {len(cands) - 1} HMAC variants ({'/'.join(ALGORITHMS)}, "
                f"{' or '.join(ORDERS)}, {' or '.join(ENCODINGS)})"
            )
        else:
            tried = ", ".join(c if isinstance(c, str) else c.name for c in cands)
        parts = [
            f"expected a signature made with the secret {fingerprint(self.secret)} "
            f"({len(self.secret)} chars); tried {tried}",
            f"received {describe_signature(signature)}",
        ]
        if len(refid) + len(message) > NEAR_MISS_LIMIT:
            # Each near-miss check is another HMAC over the whole message: bounded, so a large
            # body with a wrong signature costs about what a right one does.
            parts.append(f"near-miss checks skipped for a message of {len(message)} characters")
            return "; ".join(parts)
        near = _near_miss(self.secret, refid, message, signature)
        if near:
            parts.append(near)
        elif self.mode is not Mode.AUTO:
            other = Verifier(self.secret, Mode.AUTO, self.variant).match(refid, message, signature)
            if other is not None:
                parts.append(
                    f"it matches {other}: use {setting('signature_mode')} auto " + _OTHER_SCHEME
                )
        if not near and len(parts) == 2:
            parts.append(_DIFFERENT)
        return "; ".join(parts)


def describe_signature(signature: str) -> str:
    """Shape of a received signature without revealing it: in plain mode the signature *is* a
    shared secret (maybe another one), so only an HMAC-shaped value shows its first characters;
    anything else shows a fingerprint, comparable with the configured secret's."""
    n = len(signature)
    shape, digest = digest_shape(signature)
    if digest is not None:
        return f"{n} chars ({shape}, the length of an hmac-{digest}), starting {signature[:4]!r}"
    return f"{n} chars ({shape}), fingerprint {fingerprint(signature)}"


def _near_miss(secret: str, refid: str, message: str, signature: str) -> str | None:
    """Common slips: surrounding whitespace, upper-case hex."""
    stripped = signature.strip()
    if stripped != signature and Verifier(secret).match(refid, message, stripped):
        return _WHITESPACE
    if stripped.lower() != stripped:
        for variant in ALL_VARIANTS:
            if (
                variant.encoding == "hex"
                and could_match(variant, stripped)
                and _eq(stripped.lower(), compute_hmac(secret, refid, message, variant))
            ):
                return f"it matches {variant.name} {_UPPER_HEX}"
    # Equal outright is not a case slip: it is the plain secret sent to an HMAC check.
    if _eq(stripped.lower(), secret.lower()) and not _eq(stripped, secret):
        return _SECRET_CASE
    return None
