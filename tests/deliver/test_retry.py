"""The retry policy: IntelePeer's 5-attempt rule and the documented defaults, as pure code."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipsms.deliver.retry import (
    DEFAULT_DELAYS,
    Backoff,
    RetryPolicy,
    SuccessRule,
    parse_backoff,
    parse_delays,
    parse_success,
)
from ipsms.errors import ExitCode, UsageError
from ipsms.text import parse_duration


def test_defaults_follow_intelepeer_and_the_documented_decisions() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 5
    assert policy.timeout == 10.0
    assert policy.schedule() == (1.0, 2.0, 4.0, 8.0)
    assert [policy.wait_after(k) for k in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, None]
    assert policy.describe() == "5 attempts, success = 200, waits 1s 2s 4s 8s, timeout 10s"


def test_success_is_exactly_200_unless_widened_to_2xx() -> None:
    exact, wide = RetryPolicy(), RetryPolicy(success=SuccessRule.ANY_2XX)
    assert exact.is_success(200)
    assert not any(exact.is_success(s) for s in (201, 202, 204, 299, 302, 500))
    assert all(wide.is_success(s) for s in (200, 201, 204, 299))
    assert not any(wide.is_success(s) for s in (199, 300, 404, 503))


def test_custom_delays_repeat_the_last_one_past_the_list() -> None:
    policy = RetryPolicy(max_attempts=7, delays=parse_delays("1,5,30"))
    assert policy.schedule() == (1.0, 5.0, 30.0, 30.0, 30.0, 30.0)
    assert policy.wait_after(7) is None


def test_delays_accept_units() -> None:
    assert parse_delays("500ms, 2s,1m") == (0.5, 2.0, 60.0)
    assert parse_duration("10m") == 600.0
    assert parse_duration("1d") == 86400.0
    assert parse_duration(".25") == 0.25


@pytest.mark.parametrize("text", ["", " , ", "1,x", "1;2", "-1", "5 parsecs"])
def test_bad_delays_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_delays(text)
    assert info.value.exit_code is ExitCode.USAGE
    assert "retry_delays" in info.value.settings
    assert info.value.hint


def test_exponential_backoff_and_its_cap() -> None:
    assert RetryPolicy(backoff=parse_backoff("1x2")).schedule() == (1.0, 2.0, 4.0, 8.0)
    assert RetryPolicy(backoff=parse_backoff("0.5x3:10")).schedule() == (0.5, 1.5, 4.5, 10.0)
    assert RetryPolicy(max_attempts=4, backoff=parse_backoff("250msx2")).schedule() == (
        0.25,
        0.5,
        1.0,
    )
    assert parse_backoff("2x1.5:1m") == Backoff(2.0, 1.5, 60.0)
    assert Backoff(1.0, 10.0).delay(400) == float("inf")  # no OverflowError


@pytest.mark.parametrize("text", ["2", "x2", "1x", "1x0.5", "ax2", "1x2:"])
def test_bad_backoff_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="backoff"):
        parse_backoff(text)


def test_no_wait_and_speed_scale_the_waits_not_the_timeout() -> None:
    assert RetryPolicy(no_wait=True).schedule() == (0.0, 0.0, 0.0, 0.0)
    fast = RetryPolicy(speed=10)
    assert fast.schedule() == pytest.approx((0.1, 0.2, 0.4, 0.8))
    assert fast.timeout == 10.0
    assert "(10 times faster)" in fast.describe()
    assert "none (no waiting)" in RetryPolicy(no_wait=True).describe()


def test_a_single_attempt_never_waits() -> None:
    policy = RetryPolicy(max_attempts=1)
    assert policy.schedule() == ()
    assert policy.wait_after(1) is None
    assert policy.describe().startswith("1 attempt,")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"speed": 0}, "speed"),
        ({"delays": ()}, "delays"),
        ({"delays": (1.0, -2.0)}, "delays"),
    ],
)
def test_impossible_policies_are_refused(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_from_options_parses_every_command_line_string() -> None:
    policy = RetryPolicy.from_options(
        max_attempts=3, success="2XX", timeout=2.5, retry_delays="1,5", no_wait=False, speed=2
    )
    assert policy == RetryPolicy(3, SuccessRule.ANY_2XX, 2.5, (1.0, 5.0), None, False, 2.0)
    assert RetryPolicy.from_options().delays == DEFAULT_DELAYS
    with pytest.raises(UsageError, match="cannot be used together"):
        RetryPolicy.from_options(retry_delays="1", backoff="1x2")
    with pytest.raises(UsageError, match="success rule"):
        parse_success("201")


@given(
    attempts=st.integers(1, 30),
    delays=st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=8),
    speed=st.floats(0.01, 1000),
)
def test_every_failed_attempt_but_the_last_gets_a_wait(
    attempts: int, delays: list[float], speed: float
) -> None:
    policy = RetryPolicy(max_attempts=attempts, delays=tuple(delays), speed=speed)
    waits = [policy.wait_after(k) for k in range(1, attempts + 1)]
    assert waits[-1] is None
    assert all(w is not None and w >= 0 for w in waits[:-1])
    assert len(policy.schedule()) == attempts - 1
