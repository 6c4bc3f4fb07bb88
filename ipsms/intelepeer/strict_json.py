"""Strict JSON for bodies that cross the network: the emulator's requests, the client's replies.

``json.loads`` alone is not enough for text from a stranger: it accepts ``NaN`` and
``Infinity`` (not JSON), turns ``1e999`` into infinity, spends quadratic time on a
100,000-digit integer before refusing it, raises ``RecursionError`` (an internal error, not a
bad body) on deep nesting, and keeps lone surrogates (``"\\ud800"``) that cannot be encoded
again. ``parse_json`` turns every one of these into a ``JsonProblem`` that says what was wrong.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64  # IntelePeer's bodies are two or three levels deep
MAX_DIGITS = 100  # longer numbers are refused before Python converts them
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonProblem(ValueError):
    """The body is not JSON ipsms can use; ``str()`` says why, in a few words."""


def _parse_int(text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise JsonProblem(f"a number with {len(text)} digits, over the limit of {MAX_DIGITS}")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_DIGITS:
        raise JsonProblem(f"a number {len(text)} characters long, over the limit of {MAX_DIGITS}")
    value = float(text)
    if not math.isfinite(value):
        raise JsonProblem(f"a number too large for a float ({text[:20]})")
    return value


def _parse_constant(name: str) -> Any:
    raise JsonProblem(f"{name} is not JSON")


def _check(value: Any, allow_surrogates: bool) -> None:
    """Depth and lone surrogates, walked without recursion (the value may be deep)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise JsonProblem(f"nested more than {MAX_DEPTH} levels deep")
            children = list(item.items()) if isinstance(item, dict) else [(None, v) for v in item]
            for key, child in children:
                if isinstance(key, str) and not allow_surrogates and _SURROGATE.search(key):
                    raise JsonProblem("a name holds a lone surrogate (not Unicode text)")
                stack.append((child, depth + 1))
        elif isinstance(item, str) and not allow_surrogates and _SURROGATE.search(item):
            raise JsonProblem("a string holds a lone surrogate (not Unicode text)")


def parse_json(raw: bytes, *, allow_surrogates: bool = False) -> Any:
    """The parsed body, or ``JsonProblem``. UTF-8 only (RFC 8259); an empty body is a problem
    too. ``allow_surrogates`` keeps ``"\\ud800"`` strings (the client prints them escaped)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonProblem(f"invalid UTF-8 at byte {exc.start}") from None
    if not text.strip():
        raise JsonProblem("the body is empty")
    try:
        value = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
        )
    except JsonProblem:
        raise
    except RecursionError:
        raise JsonProblem(f"nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # pragma: no cover - the hooks above refuse what else raises
        raise JsonProblem(str(exc)[:80]) from None
    _check(value, allow_surrogates)
    return value


def is_json_type(content_type: str) -> bool:
    """``application/json``, ``application/problem+json``, ... (parameters ignored)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
