"""Run the card: send each check's deliveries through the delivery engine and judge the answers.

Every delivery is built by ``PayloadTemplate`` and sent by ``Sender``, the code path of
``ipsms simulate``: the same bytes, signatures and HTTP client. Each is one attempt (no
retries: a check wants to see what the app answers to one delivery), bounded by the timeout.

A run starts with one plain delivery (the probe). When it cannot connect, nothing else is sent
and the card says the app could not be reached; when the connection is made but no answer comes,
the other checks are not run either (each would wait out the timeout for nothing). Otherwise the
other checks run side by side; ``answers-in-time`` and ``no-secret-echo`` are then judged over
every answer of the run.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ipsms import defaults
from ipsms.check.cards import (
    BY_ID,
    CHECKS,
    DEFAULT_CONCURRENCY,
    IDS,
    KEEP_ALIVE_DELIVERIES,
    PLAIN,
    REPLY_WAIT,
    WRONG_SECRET,
    Case,
    CheckDef,
)
from ipsms.deliver.engine import (
    CONNECT_ERROR,
    TIMEOUT,
    AttemptEvent,
    Connections,
    Delivery,
    Sender,
    open_connections,
    validate_url,
)
from ipsms.deliver.outbound import MessageSpec, OutboundMessage, PayloadTemplate, Signing
from ipsms.deliver.retry import RetryPolicy
from ipsms.errors import UsageError, setting
from ipsms.numbers import check_number
from ipsms.redact import mask_url
from ipsms.signature import DEFAULT_VARIANT, Mode, Variant

# Reproduction commands name ``ipsms simulate``'s settings; the CLI words them as its flags.
_F = setting
_ONLY = setting("only")
_SKIP = setting("skip")


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"  # passed, with something to look at
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Settings:
    """What ``ipsms check`` was asked to do."""

    url: str
    secret: str | None = None
    mode: Mode = Mode.PLAIN
    variant: Variant = DEFAULT_VARIANT
    timeout: float = defaults.ATTEMPT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    replies_via: str | None = None  # the API emulator's base URL
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()

    def selected(self) -> tuple[CheckDef, ...]:
        """The checks to run, in the card's order; an unknown id is a ``UsageError``."""
        for where, ids in ((_ONLY, self.only), (_SKIP, self.skip)):
            for check_id in ids:
                if check_id not in BY_ID:
                    close = get_close_matches(check_id, IDS, n=1)
                    hint = (
                        f"did you mean {close[0]}? " if close else ""
                    ) + f"the checks: {', '.join(IDS)}"
                    raise UsageError(f"{where} {check_id!r} is not a check", hint=hint)
        chosen = [c for c in CHECKS if not self.only or c.id in self.only]
        return tuple(c for c in chosen if c.id not in self.skip)


@dataclass(frozen=True)
class Evidence:
    """One delivery a check sent and what came back."""

    case: str
    refid: str | None
    status: int | None
    error: str | None  # connect_error, timeout, disconnected, http_error
    detail: str | None
    latency: float  # seconds
    response: str  # the first bytes of the answer
    reconnected: bool = False
    location: str | None = None  # where a 3xx pointed
    echoed: bool = False  # the answer held the secret (masked in ``response``)

    @property
    def ok(self) -> bool:
        return self.status == 200

    def answer(self) -> str:
        """``200``, ``302 to /login``, ``timeout (no answer within 1s)``."""
        if self.status is None:
            return f"{self.error} ({self.detail})" if self.detail else str(self.error)
        if self.location is not None:
            return f"{self.status} to {self.location}"
        return str(self.status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "refid": self.refid,
            "status": self.status,
            "error": self.error,
            "error_detail": self.detail,
            "latency_ms": round(self.latency * 1000, 3),
            "response": self.response,
            "location": self.location,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class Result:
    check: CheckDef
    verdict: Verdict
    did: str  # what the app did, one line
    evidence: tuple[Evidence, ...] = ()
    reproduce: str | None = None  # one command that reproduces a failure or warning
    reason: str | None = None  # why it was skipped
    elapsed: float = 0.0

    @property
    def id(self) -> str:
        return self.check.id


@dataclass
class Card:
    url: str
    results: list[Result] = field(default_factory=list)
    reachable: bool = True
    unreachable: str | None = None  # why the app could not be reached
    elapsed: float = 0.0

    def ids(self, *verdicts: Verdict) -> list[str]:
        return [r.id for r in self.results if r.verdict in verdicts]

    @property
    def failed(self) -> list[str]:
        return self.ids(Verdict.FAILED)

    @property
    def passed(self) -> list[str]:
        return self.ids(Verdict.PASSED, Verdict.WARNING)

    def counts(self) -> dict[str, int]:
        return {v.value: len(self.ids(v)) for v in Verdict}


def reply_number() -> str:
    """A sender number of its own (E.164, +1 720 555 01xx..99xx): a reply to it is a reply to
    the delivery that came from it."""
    return f"+1720555{secrets.randbelow(10_000):04d}"


class _Run:
    def __init__(self, settings: Settings, connections: Connections, policy: RetryPolicy) -> None:
        self.settings = settings
        self.policy = policy
        self.connections = connections
        self.sender = Sender(connections, policy)
        self.signing = Signing(settings.secret, settings.mode, settings.variant)
        self.seen: list[tuple[str, Evidence]] = []  # (check id, evidence) of every delivery

    # -- sending --------------------------------------------------------------------------

    def message(
        self, case: Case, signing: Signing | None = None, refid: str | None = None
    ) -> OutboundMessage:
        spec = MessageSpec(
            case.from_number,
            case.to_number,
            case.message,
            refid,
            dict(case.extra),
            case.form,
            allow_invalid=True,
            signing=signing if signing is not None else self.signing,
        )
        return PayloadTemplate(spec).render()

    async def post(
        self, check_id: str, case: Case, message: OutboundMessage, sender: Sender | None = None
    ) -> Evidence:
        delivery = message.delivery(self.settings.url)
        events: list[AttemptEvent] = []
        outcome = await (sender or self.sender).deliver(delivery, events.append)
        event = events[-1] if events else None
        evidence = Evidence(
            case.label,
            message.refid,
            event.status if event else None,
            event.error if event else outcome.last_result,
            event.error_detail if event else outcome.last_detail,
            event.latency if event else outcome.elapsed,
            event.response if event else outcome.last_response,
            event.reconnected if event else False,
        )
        secret = self.settings.secret
        if secret and secret in evidence.response:
            evidence = replace(
                evidence, response=evidence.response.replace(secret, "****"), echoed=True
            )
        if evidence.status is not None and 300 <= evidence.status < 400:
            evidence = replace(evidence, location=await self._location(delivery))
        self.seen.append((check_id, evidence))
        return evidence

    async def _location(self, delivery: Delivery) -> str:
        """Where a redirect points: the same delivery posted once more, its Location read
        (the engine keeps statuses and bodies, not headers)."""
        try:
            async with self.connections.fresh.post(
                delivery.url, data=delivery.body, headers=delivery.headers(), allow_redirects=False
            ) as resp:
                return resp.headers.get("Location", "(no Location header)")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return f"(not read again: {type(exc).__name__})"

    # -- reproducing ----------------------------------------------------------------------

    def simulate(
        self, case: Case, message: OutboundMessage, *flags: str, secret: str | bool | None = True
    ) -> str:
        """The ``ipsms simulate`` command that sends ``message`` again: same refid, fields
        and signature (``secret``: True signs as the check does, with IPSMS_SECRET; a string
        signs with that one; False sends it unsigned)."""
        words = ["ipsms", "simulate", mask_url(self.settings.url), _F("refid"), message.refid]
        if case.from_number != defaults.FROM_NUMBER:
            words += [_F("from"), case.from_number]
        if case.to_number != defaults.TO_NUMBER:
            words += [_F("to"), case.to_number]
        if not all(check_number(n).ok for n in (case.from_number, case.to_number)):
            words.append(_F("allow_invalid"))
        payload: dict[str, Any] = dict(case.extra)
        text = case.message
        prefix = ""
        if case.message != defaults.MESSAGE_TEXT:
            unit = _repeated_unit(text)
            if unit is not None and unit.isprintable():
                shell = f"\"$(printf '%.0s{unit}' $(seq {len(text) // len(unit)}))\""
                words += [_F("message"), shell]
            elif text.isprintable() and not _has_surrogate(text):
                words += [_F("message"), text]
            else:
                payload["message"] = text
        if payload:
            dumped = json.dumps(payload, ensure_ascii=True)
            prefix = f"printf '%s\\n' {shlex.quote(dumped)} | "
            words += [_F("payload"), "-"]
        if case.form:
            words.append(_F("form"))
        if secret is False:
            prefix = "IPSMS_SECRET= " + prefix if not prefix else prefix + "IPSMS_SECRET= "
        elif isinstance(secret, str):
            words += [_F("secret"), secret]
        if secret is not False and self.settings.secret:
            words += [_F("signature_mode"), self.settings.mode.value]
            if self.settings.mode is Mode.HMAC and self.settings.variant != DEFAULT_VARIANT:
                words += [_F("hmac_variant"), self.settings.variant.spec]
        words += [*flags]
        return prefix + " ".join(
            w if w.startswith(('"$(', "\u27e8")) else shlex.quote(w) for w in words
        )

    def curl(self, message: OutboundMessage) -> str:
        body = message.body.decode("utf-8", "surrogatepass")
        return (
            f"curl -i -X POST {shlex.quote(mask_url(self.settings.url))} -H "
            f"{shlex.quote('Content-Type: ' + message.content_type)} -d "
            f"{shlex.quote(body)}"
        )


def _repeated_unit(text: str) -> str | None:
    """The unit ``text`` repeats at least ten times, if it is one (a long text's command)."""
    for size in range(1, min(len(text) // 10, 60) + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return text[:size]
    return None


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


# -- the checks ------------------------------------------------------------------------------

Judge = Callable[[_Run, CheckDef], Awaitable[Result]]


def _answered(evidence: Evidence) -> str:
    body = f": {_short(evidence.response)}" if evidence.response.strip() else ""
    return f"{evidence.case} got {evidence.answer()}{body}"


async def _each_gets_200(
    run: _Run,
    check: CheckDef,
    cases: Sequence[Case] | None = None,
    *,
    verdict_on_fail: Verdict = Verdict.FAILED,
) -> Result:
    chosen = list(cases if cases is not None else check.cases)
    messages = [run.message(case) for case in chosen]
    evidence = await asyncio.gather(
        *(run.post(check.id, case, message) for case, message in zip(chosen, messages, strict=True))
    )
    bad = [i for i, e in enumerate(evidence) if not e.ok]
    if not bad:
        times = ", ".join(_seconds(e.latency) for e in evidence)
        did = (
            f"answered 200 ({times})"
            if len(evidence) == 1
            else f"all {len(evidence)} got 200 ({times})"
        )
        return Result(check, Verdict.PASSED, did, tuple(evidence))
    first = bad[0]
    did = "; ".join(_answered(evidence[i]) for i in bad)
    if len(evidence) > 1:
        did = f"{len(bad)} of {len(evidence)} not 200: {did}"
    return Result(
        check,
        verdict_on_fail,
        did,
        tuple(evidence),
        run.simulate(chosen[first], messages[first], _F("max_attempts"), "1"),
    )


def judge_probe(run: _Run, check: CheckDef, probe: Evidence, message: OutboundMessage) -> Result:
    """``answers-200`` from the probe's answer."""
    if probe.ok:
        return Result(check, Verdict.PASSED, f"answered 200 in {_seconds(probe.latency)}", (probe,))
    repro = run.simulate(PLAIN, message, _F("max_attempts"), "1")
    if probe.status is None:
        return Result(check, Verdict.FAILED, f"no answer: {probe.answer()}", (probe,), repro)
    body = f" ({_short(probe.response)})" if probe.response.strip() else ""
    return Result(
        check,
        Verdict.FAILED,
        f"answered {probe.answer()}{body}: IntelePeer would send it 4 more times",
        (probe,),
        repro,
    )


def judge_redirect(run: _Run, check: CheckDef, probe: Evidence, message: OutboundMessage) -> Result:
    if probe.location is None:
        return Result(
            check, Verdict.PASSED, f"answered the delivery itself ({probe.answer()})", (probe,)
        )
    return Result(
        check,
        Verdict.FAILED,
        f"answered {probe.status} pointing to "
        f"{probe.location}: IntelePeer does not follow it, the attempt failed",
        (probe,),
        run.curl(message),
    )


async def check_retried(run: _Run, check: CheckDef) -> Result:
    case = check.cases[0]
    message = run.message(case)
    first = await run.post(check.id, case, message)
    second = await run.post(check.id, replace(case, label="its second delivery"), message)
    if second.ok:
        return Result(
            check,
            Verdict.PASSED,
            f"the second delivery of {message.refid} got 200 too",
            (first, second),
        )
    return Result(
        check,
        Verdict.FAILED,
        f"the first delivery got {first.answer()}, the "
        f"second (same refid, body and signature) got {second.answer()}"
        + (f": {_short(second.response)}" if second.response.strip() else ""),
        (first, second),
        run.simulate(case, message, _F("fail_first"), "1", _F("max_attempts"), "2", _F("no_wait")),
    )


async def check_concurrent(run: _Run, check: CheckDef) -> Result:
    case = check.cases[0]
    message = run.message(case)
    both = await asyncio.gather(
        run.post(check.id, replace(case, label="delivery A"), message),
        run.post(check.id, replace(case, label="delivery B"), message),
    )
    if all(e.ok for e in both):
        return Result(check, Verdict.PASSED, "both got 200", tuple(both))
    command = run.simulate(case, message, _F("max_attempts"), "1")
    return Result(
        check,
        Verdict.FAILED,
        "; ".join(_answered(e) for e in both),
        tuple(both),
        f"{command} & {command} & wait",
    )


async def check_replies(run: _Run, check: CheckDef) -> Result:
    base = run.settings.replies_via
    if base is None:
        return Result(
            check,
            Verdict.SKIPPED,
            "not checked",
            reason="needs the API emulator's URL to count the app's replies; "
            "start `ipsms api-emulator`, point the app's send API at it and pass "
            f"{setting('replies_via')} URL",
        )
    number = reply_number()
    case = replace(check.cases[0], from_number=number)
    message = run.message(case)
    first = await run.post(check.id, case, message)
    second = await run.post(check.id, replace(case, label="its retry"), message)
    evidence = (first, second)
    repro = (
        run.simulate(case, message, _F("fail_first"), "1", _F("max_attempts"), "2", _F("no_wait"))
        + f"; curl -s {shlex.quote(base.rstrip('/') + '/_emulator/sent')}"
    )
    await asyncio.sleep(REPLY_WAIT)
    try:
        sent = await _sent_to(run, base, number)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Result(
            check,
            Verdict.FAILED,
            f"could not read the sent messages at {mask_url(base)}: {type(exc).__name__}: {exc}",
            evidence,
            repro,
        )
    if len(sent) <= 1:
        did = (
            "replied once across 2 deliveries of one refid"
            if sent
            else "sent no reply (a reply must go through the send API at "
            f"{mask_url(base)} to be counted)"
        )
        return Result(check, Verdict.PASSED, did, evidence)
    return Result(
        check,
        Verdict.FAILED,
        f"sent {len(sent)} replies to {number} for one "
        "message delivered twice: the customer gets a text per attempt",
        evidence,
        repro,
    )


async def _sent_to(run: _Run, base: str, number: str) -> list[dict[str, Any]]:
    url = base.rstrip("/") + "/_emulator/sent"
    async with run.connections.fresh.get(url, params={"to": number}, allow_redirects=False) as resp:
        if resp.status != 200:
            raise ValueError(f"{url} answered {resp.status}")
        data = await resp.json(content_type=None)
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list):
        raise ValueError(f"{url} did not answer a list of messages")
    return [m for m in messages if isinstance(m, dict) and m.get("to") == number]


async def check_form(run: _Run, check: CheckDef) -> Result:
    result = await _each_gets_200(run, check, verdict_on_fail=Verdict.WARNING)
    if result.verdict is Verdict.WARNING:
        return replace(result, did=result.did + " (ipsms's choice: IntelePeer documents JSON)")
    return result


async def check_bad_signature(run: _Run, check: CheckDef) -> Result:
    if not run.settings.secret:
        return Result(
            check,
            Verdict.SKIPPED,
            "not checked",
            reason="no secret given: the app's signature check is untested",
        )
    case = check.cases[0]
    message = run.message(case, Signing(WRONG_SECRET, run.settings.mode, run.settings.variant))
    return await _refused(
        run,
        check,
        case,
        message,
        run.simulate(case, message, _F("max_attempts"), "1", secret=WRONG_SECRET),
    )


async def check_missing_signature(run: _Run, check: CheckDef) -> Result:
    if not run.settings.secret:
        return Result(
            check,
            Verdict.SKIPPED,
            "not checked",
            reason="no secret given: every delivery of the card is unsigned",
        )
    case = check.cases[0]
    message = run.message(case, Signing(None))
    return await _refused(
        run,
        check,
        case,
        message,
        run.simulate(case, message, _F("max_attempts"), "1", secret=False),
    )


async def _refused(
    run: _Run, check: CheckDef, case: Case, message: OutboundMessage, repro: str
) -> Result:
    evidence = await run.post(check.id, case, message)
    if evidence.status == 200:
        return Result(
            check,
            Verdict.FAILED,
            f"{case.label} got 200: the app accepts deliveries anyone can forge",
            (evidence,),
            repro,
        )
    return Result(check, Verdict.PASSED, f"refused it ({evidence.answer()})", (evidence,))


async def check_burst(run: _Run, check: CheckDef) -> Result:
    count = run.settings.concurrency
    cases = [Case(f"delivery {i + 1} of {count}") for i in range(count)]
    result = await _each_gets_200(run, check, cases)
    if result.verdict is Verdict.PASSED:
        slowest = max(e.latency for e in result.evidence)
        return replace(result, did=f"all {count} at once got 200 (slowest {_seconds(slowest)})")
    bad = [e for e in result.evidence if not e.ok]
    kinds = sorted({e.answer() for e in bad})
    return replace(
        result,
        did=f"{len(bad)} of {count} at once not 200: {', '.join(kinds)}",
        reproduce=f"ipsms simulate {shlex.quote(mask_url(run.settings.url))} "
        f"{_F('count')} {count} {_F('concurrency')} {count} {_F('max_attempts')} 1",
    )


async def check_keep_alive(run: _Run, check: CheckDef) -> Result:
    async with open_connections(run.policy, limit=1) as connections:
        sender = Sender(connections, run.policy)
        evidence = []
        for i in range(KEEP_ALIVE_DELIVERIES):
            case = Case(f"delivery {i + 1} on one connection")
            evidence.append(await run.post(check.id, case, run.message(case), sender))
    repro = (
        f"ipsms simulate {shlex.quote(mask_url(run.settings.url))} {_F('count')} "
        f"{KEEP_ALIVE_DELIVERIES} {_F('concurrency')} 1 {_F('max_attempts')} 1"
    )
    bad = [e for e in evidence if not e.ok]
    if bad:
        return Result(
            check, Verdict.FAILED, "; ".join(_answered(e) for e in bad), tuple(evidence), repro
        )
    if any(e.reconnected for e in evidence):
        return Result(
            check,
            Verdict.WARNING,
            "all got 200, but the app closed a kept-alive "
            "connection without saying so (no Connection: close): a client's next "
            "request on it fails",
            tuple(evidence),
            repro,
        )
    return Result(
        check, Verdict.PASSED, f"all {len(evidence)} got 200 on one connection", tuple(evidence)
    )


def judge_time(run: _Run, check: CheckDef) -> Result:
    timeout = run.settings.timeout
    evidence = [e for _, e in run.seen]
    late = [(cid, e) for cid, e in run.seen if e.error == TIMEOUT]
    answered = [e for e in evidence if e.status is not None]
    command = f"ipsms simulate {shlex.quote(mask_url(run.settings.url))} {_F('max_attempts')} 1"
    if late:
        cid, first = late[0]
        return Result(
            check,
            Verdict.FAILED,
            f"{len(late)} of {len(evidence)} deliveries got "
            f"no answer within {timeout:g}s (first: {cid}, {first.case})",
            tuple(e for _, e in late),
            f"{command} {_F('timeout')} {timeout:g}",
        )
    if not answered:
        return Result(check, Verdict.PASSED, "no answer to time", ())
    slowest = max(answered, key=lambda e: e.latency)
    where = next(cid for cid, e in run.seen if e is slowest)
    did = f"the slowest of {len(answered)} answers took {_seconds(slowest.latency)} ({where})"
    if slowest.latency > timeout / 2:
        return Result(
            check,
            Verdict.WARNING,
            f"{did}: over half the {timeout:g}s timeout",
            (slowest,),
            f"{command} {_F('timeout')} {timeout:g}",
        )
    return Result(check, Verdict.PASSED, did, (slowest,))


def judge_echo(run: _Run, check: CheckDef) -> Result:
    secret = run.settings.secret
    if not secret:
        return Result(check, Verdict.SKIPPED, "not checked", reason="no secret given")
    echoed = [(cid, e) for cid, e in run.seen if e.echoed]
    if not echoed:
        return Result(
            check,
            Verdict.PASSED,
            f"none of {len(run.seen)} answers holds the secret (their first 200 bytes read)",
        )
    cid, first = echoed[0]
    return Result(
        check,
        Verdict.FAILED,
        f"{len(echoed)} answers hold the secret (first: {cid}, {first.case})",
        tuple(e for _, e in echoed),
        f"ipsms simulate {shlex.quote(mask_url(run.settings.url))} {_F('max_attempts')} 1",
    )


RUNNERS: dict[str, Judge] = {
    "retried-refid": check_retried,
    "concurrent-refid": check_concurrent,
    "replies-once": check_replies,
    "form-body": check_form,
    "bad-signature": check_bad_signature,
    "missing-signature": check_missing_signature,
    "burst": check_burst,
    "keep-alive": check_keep_alive,
}
FROM_PROBE = ("answers-200", "no-redirect")
AFTERWARDS = ("answers-in-time", "no-secret-echo")


async def _timed(judge: Judge, run: _Run, check: CheckDef) -> Result:
    start = time.perf_counter()
    result = await judge(run, check)
    return replace(result, elapsed=time.perf_counter() - start)


async def run_card(settings: Settings) -> Card:
    """Run the selected checks against ``settings.url``; never raises for what the app does."""
    validate_url(settings.url)
    if settings.replies_via is not None:
        _check_replies_url(settings.replies_via)
    if settings.concurrency < 1:
        raise UsageError(f"{setting('concurrency')} must be at least 1")
    selected = settings.selected()
    wanted = {c.id for c in selected}
    policy = RetryPolicy(max_attempts=1, timeout=settings.timeout)
    card = Card(mask_url(settings.url))
    begin = time.perf_counter()
    limit = max(100, settings.concurrency + 20)
    async with open_connections(policy, limit=limit) as connections:
        run = _Run(settings, connections, policy)
        message = run.message(PLAIN)
        probe = await run.post("answers-200", PLAIN, message)
        results: dict[str, Result] = {
            "answers-200": judge_probe(run, BY_ID["answers-200"], probe, message),
            "no-redirect": judge_redirect(run, BY_ID["no-redirect"], probe, message),
        }
        if probe.status is None:
            card.reachable = probe.error != CONNECT_ERROR
            card.unreachable = None if card.reachable else probe.detail
            why = (
                "the app could not be reached"
                if not card.reachable
                else "the app did not answer a plain delivery"
            )
            results["no-redirect"] = Result(
                BY_ID["no-redirect"], Verdict.SKIPPED, "not run", reason=f"not run: {why}"
            )
            if probe.error == TIMEOUT:
                results["answers-in-time"] = judge_time(run, BY_ID["answers-in-time"])
            for check in selected:
                results.setdefault(
                    check.id, Result(check, Verdict.SKIPPED, "not run", reason=f"not run: {why}")
                )
        else:
            others = [c for c in selected if c.id not in FROM_PROBE + AFTERWARDS]
            done = await asyncio.gather(
                *(_timed(RUNNERS.get(c.id, _each_gets_200), run, c) for c in others)
            )
            results.update({r.id: r for r in done})
            results["answers-in-time"] = judge_time(run, BY_ID["answers-in-time"])
            results["no-secret-echo"] = judge_echo(run, BY_ID["no-secret-echo"])
    card.results = [results[c.id] for c in CHECKS if c.id in wanted]
    card.elapsed = time.perf_counter() - begin
    return card


def _check_replies_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{setting('replies_via')} {mask_url(url)!r} is not an http:// or https:// URL",
            hint="give the API emulator's base URL, e.g. http://127.0.0.1:8766",
        )
