"""IntelePeer's retry rule as a pure policy (intelepeer.md section 1).

IntelePeer resends a message until it gets an HTTP 200, up to a total of 5 attempts. The spacing
between attempts and the per-attempt timeout are not documented, so they are settings here:
defaults 1, 2, 4, 8 s and 10 s, a custom list (``--retry-delays 1,5,30``) or an exponential
backoff (``--backoff 1x2``), plus ``no_wait`` and ``speed`` so a whole run can be watched in
seconds. Nothing here sleeps or reads a clock: the sender asks the policy and sleeps itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from ipsms import defaults
from ipsms.errors import UsageError, setting
from ipsms.text import parse_duration

DEFAULT_MAX_ATTEMPTS = defaults.MAX_ATTEMPTS
DEFAULT_TIMEOUT = defaults.ATTEMPT_TIMEOUT
DEFAULT_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)

_BACKOFF_RE = re.compile(
    r"^\s*(?P<base>[0-9.]+\s*(?:ms|s|m)?)\s*x\s*(?P<factor>[0-9.]+)"
    r"(?:\s*:\s*(?P<cap>[0-9.]+\s*(?:ms|s|m|h)?))?\s*$",
    re.IGNORECASE,
)


class SuccessRule(StrEnum):
    """Which HTTP status counts as delivered. IntelePeer documents exactly 200."""

    EXACT_200 = "200"
    ANY_2XX = "2xx"

    def matches(self, status: int) -> bool:
        if self is SuccessRule.EXACT_200:
            return status == 200
        return 200 <= status <= 299


def parse_delays(text: str) -> tuple[float, ...]:
    """``'1,5,30'`` -> (1.0, 5.0, 30.0). Units are allowed: ``'500ms,2s,1m'``. An empty item
    (``'1,,2'``, ``'1,2,'``) is an error: a slip that dropped a delay, not a wait of nothing."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise UsageError(
            f"{setting('retry_delays')} {text!r} has no delays",
            hint="give a comma-separated list of seconds, e.g. 1,5,30",
        )
    if "" in parts:
        where = parts.index("") + 1
        raise UsageError(
            f"{setting('retry_delays')} {text!r}: delay {where} of {len(parts)} is empty",
            hint="give a delay between every two commas, e.g. 1,5,30 (0 for no wait)",
        )
    try:
        return tuple(parse_duration(p) for p in parts)
    except UsageError as exc:
        raise UsageError(
            f"{setting('retry_delays')} {text!r}: {exc.message}",
            hint="give a comma-separated list of seconds, e.g. 1,5,30 or 500ms,2s,1m",
        ) from None


def parse_success(text: str) -> SuccessRule:
    try:
        return SuccessRule(text.strip().lower())
    except ValueError:
        raise UsageError(
            f"unknown success rule {text!r}",
            hint="use 200 (exactly 200, as IntelePeer) or 2xx (any 2xx)",
        ) from None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: the wait after attempt k is ``base * factor**(k-1)``, at most
    ``cap``. Written ``BASExFACTOR[:CAP]``: ``1x2`` waits 1, 2, 4, 8 s; ``0.5x3:10`` waits
    0.5, 1.5, 4.5, 10 s."""

    base: float = 1.0
    factor: float = 2.0
    cap: float | None = None

    def delay(self, after_attempt: int) -> float:
        exponent = max(after_attempt - 1, 0)
        try:
            value = self.base * self.factor**exponent
        except OverflowError:
            value = math.inf
        return value if self.cap is None else min(value, self.cap)

    @property
    def spec(self) -> str:
        cap = "" if self.cap is None else f":{self.cap:g}"
        return f"{self.base:g}x{self.factor:g}{cap}"


def parse_backoff(text: str) -> Backoff:
    m = _BACKOFF_RE.match(text)
    if not m:
        raise UsageError(
            f"cannot read {setting('backoff')} {text!r}",
            hint="use BASExFACTOR[:CAP], e.g. 1x2 (1, 2, 4, 8 s) or 0.5x3:10",
        )
    base = parse_duration(m.group("base"))
    try:
        factor = float(m.group("factor"))
    except ValueError:
        raise UsageError(
            f"cannot read the factor in {setting('backoff')} {text!r}",
            hint="use BASExFACTOR[:CAP], e.g. 1x2",
        ) from None
    cap = parse_duration(m.group("cap")) if m.group("cap") else None
    if factor < 1:
        raise UsageError(
            f"{setting('backoff')} {text!r}: the factor must be at least 1",
            hint="e.g. 1x2 doubles the wait after every attempt",
        )
    return Backoff(base, factor, cap)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, what counts as delivered, and how long to wait between attempts.

    ``delays[k-1]`` is the nominal wait after attempt k; past the end of the list the last
    delay repeats. ``backoff``, when set, replaces the list. The real wait is the nominal one
    divided by ``speed``, or zero with ``no_wait``. The timeout is real time and not scaled.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    success: SuccessRule = SuccessRule.EXACT_200
    timeout: float = DEFAULT_TIMEOUT
    delays: tuple[float, ...] = DEFAULT_DELAYS
    backoff: Backoff | None = None
    no_wait: bool = False
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(
                f"{setting('max_attempts')} must be at least 1, not {self.max_attempts}",
                hint="IntelePeer makes 5 attempts in total",
            )
        if not self.timeout > 0 or math.isinf(self.timeout):
            raise UsageError(
                f"{setting('timeout')} must be a positive number of seconds, not {self.timeout:g}"
            )
        if not self.speed > 0 or math.isinf(self.speed):
            raise UsageError(
                f"{setting('speed')} must be a positive number, not {self.speed:g}",
                hint="a speed of 10 makes every wait ten times shorter",
            )
        if not self.delays or any(d < 0 or not math.isfinite(d) for d in self.delays):
            raise UsageError(
                "retry delays must be zero or more seconds",
                hint=f"e.g. {setting('retry_delays')} 1,2,4,8",
            )

    def is_success(self, status: int) -> bool:
        return self.success.matches(status)

    def nominal_delay(self, after_attempt: int) -> float:
        """The configured wait after attempt ``after_attempt`` (1-based), before scaling."""
        if self.backoff is not None:
            return self.backoff.delay(after_attempt)
        return self.delays[min(after_attempt, len(self.delays)) - 1]

    def wait_after(self, after_attempt: int) -> float | None:
        """Seconds to wait after a failed attempt ``after_attempt``; None when it was the last."""
        if after_attempt >= self.max_attempts:
            return None
        if self.no_wait:
            return 0.0
        return self.nominal_delay(after_attempt) / self.speed

    def schedule(self) -> tuple[float, ...]:
        """Every wait of a run in which all attempts fail (``max_attempts - 1`` of them)."""
        return tuple(self.wait_after(k) or 0.0 for k in range(1, self.max_attempts))

    def describe(self) -> str:
        """``'5 attempts, success = 200, waits 1s 2s 4s 8s, timeout 10s'``."""
        waits = " ".join(f"{w:g}s" for w in self.schedule()) or "none"
        if self.no_wait:
            waits = "none (no waiting)"
        elif self.speed != 1:
            waits += f" ({self.speed:g} times faster)"
        return (
            f"{self.max_attempts} attempt{'s' if self.max_attempts != 1 else ''}, "
            f"success = {self.success.value}, waits {waits}, timeout {self.timeout:g}s"
        )

    @classmethod
    def from_options(
        cls,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        success: str = "200",
        timeout: float = DEFAULT_TIMEOUT,
        retry_delays: str | None = None,
        backoff: str | None = None,
        no_wait: bool = False,
        speed: float = 1.0,
    ) -> RetryPolicy:
        """Build a policy from command-line strings; every mistake is a ``UsageError``."""
        if retry_delays and backoff:
            raise UsageError(
                f"{setting('retry_delays')} and {setting('backoff')} cannot be used together",
                hint="give a list of delays or a backoff, not both",
            )
        return cls(
            max_attempts=max_attempts,
            success=parse_success(success),
            timeout=timeout,
            delays=parse_delays(retry_delays) if retry_delays is not None else DEFAULT_DELAYS,
            backoff=parse_backoff(backoff) if backoff else None,
            no_wait=no_wait,
            speed=speed,
        )
