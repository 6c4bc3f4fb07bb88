"""Flags a request gets from its refid's history: what only the store can know.

``ipsms.inbound`` flags what one body shows. These flags compare a request with the earlier
attempts of its refid, so the store computes them inside the INSERT's transaction
(``store.insert_batch``): they stay right across listener restarts and concurrent batches.
Only a request whose attempt is over 1 has a history, so the common case (a new refid) costs
no query.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from ipsms.defaults import MAX_ATTEMPTS
from ipsms.text import iso_time

TOO_MANY_ATTEMPTS = "too_many_attempts"
REFID_REUSED = "refid_reused"
EARLIER_SESSION = "earlier_session"
CODES = (TOO_MANY_ATTEMPTS, REFID_REUSED, EARLIER_SESSION)

# What the listener leaves of a long text field of a rejected request (``listener._cut``):
# the start and this marker. A cut copy is compared by its start and its announced length,
# so a message first rejected (cut) and then accepted (whole) is not "a different text".
_CUT = re.compile(r"…\(cut: (\d+) characters\)\Z")
_SHOWN = 20  # a sender up to this long is quoted in a flag; a longer one is only measured

Flags = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class FirstAttempt:
    """What the flags need of a refid's earlier attempts: when and in which session it was
    first seen, and the text and sender of the attempt a new one is compared with (the first,
    or when the first was rejected and cut, the first kept whole)."""

    received_at: float
    session: str | None  # None: recorded before sessions were (a store of schema 3)
    attempt: int  # the attempt compared with
    from_number: str | None
    message: str | None

    @property
    def whole(self) -> bool:
        """Whether the text and sender compared with were kept whole."""
        return not (is_cut(self.message) or is_cut(self.from_number))


def is_cut(text: str | None) -> bool:
    return text is not None and text.endswith(" characters)") and _CUT.search(text) is not None


def new_session() -> str:
    """The identity of one listener run, recorded with each of its rows: its start time (so
    a look at the store tells runs apart) and a random part (so two runs never share one)."""
    return f"{iso_time(time.time())}/{secrets.token_hex(4)}"


def history_flags(
    attempt: int, from_number: str | None, message: str | None, session: str, first: FirstAttempt
) -> Flags:
    """The flags of attempt ``attempt`` (over 1) of a refid whose first attempt is ``first``,
    received in listener run ``session``."""
    flags: Flags = []
    if attempt > MAX_ATTEMPTS:
        flags.append(
            {
                "code": TOO_MANY_ATTEMPTS,
                "detail": (
                    f"attempt {attempt} of this refid: IntelePeer gives up after "
                    f"{MAX_ATTEMPTS} attempts, so this is not one of its retries (a replay, a "
                    "test, or a reused refid)"
                ),
            }
        )
    than = f"attempt {first.attempt}"
    differences = [
        d
        for d in (
            _sender_difference(first.from_number, from_number, than),
            _text_difference(first.message, message, than),
        )
        if d
    ]
    if differences:
        flags.append(
            {
                "code": REFID_REUSED,
                "detail": ("refid reused with a different message: " + "; ".join(differences)),
            }
        )
    if first.session != session:
        before = attempt - 1
        flags.append(
            {
                "code": EARLIER_SESSION,
                "detail": (
                    f"refid first seen {iso_time(first.received_at)} in an earlier listener "
                    f"session; {before} attempt{'s' if before != 1 else ''} recorded before "
                    "this one"
                ),
            }
        )
    return flags


def _kept(text: str) -> tuple[str, int]:
    """What is known of ``text``: its start (all of it, unless it was cut) and its length."""
    cut = _CUT.search(text) if text.endswith(" characters)") else None
    return (text[: cut.start()], int(cut[1])) if cut else (text, len(text))


def _text_difference(first: str | None, now: str | None, than: str) -> str | None:
    """``'text differs from attempt 1 (12 then 30 characters, first difference at character
    7)'``, or None when the texts are the same as far as both were kept."""
    if first is None or now is None or first == now:
        return None if first == now else f"text differs from {than}"
    (a, a_len), (b, b_len) = _kept(first), _kept(now)
    same = _common_prefix(a, b)
    if same == min(len(a), len(b)) and a_len == b_len:  # equal as far as both were kept
        return None
    return (
        f"text differs from {than} ({a_len} then {b_len} characters, first difference "
        f"at character {same + 1})"
    )


def _sender_difference(first: str | None, now: str | None, than: str) -> str | None:
    if first == now or first is None or now is None:
        return None if first == now else f"sender differs from {than}"
    (a, a_len), (b, b_len) = _kept(first), _kept(now)
    if a_len == b_len and (a.startswith(b) or b.startswith(a)):  # one of them was cut
        return None
    if max(len(first), len(now)) <= _SHOWN:
        return f"sender {first} on {than}, now {now}"
    return f"sender differs from {than} ({a_len} then {b_len} characters)"


def _common_prefix(a: str, b: str, block: int = 4096) -> int:
    """How many leading characters ``a`` and ``b`` share. Whole blocks are compared in C
    first: a megabyte-long text costs microseconds in the store writer, not a Python loop."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i : i + block] == b[i : i + block]:
        i += block
    end = min(i + block, n)
    while i < end and a[i] == b[i]:
        i += 1
    return min(i, n)
