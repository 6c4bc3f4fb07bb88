"""Masking of secrets and personal data before anything is shown or exported."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

SENSITIVE_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
    "x-auth-token", "x-ipsms-token",
})
MASK = "****"


def mask_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Credentials masked; for ``Authorization: Basic xyz`` the scheme is kept."""
    out = []
    for name, value in headers:
        if name.lower() in SENSITIVE_HEADERS:
            scheme, _, rest = value.partition(" ")
            value = f"{scheme} {MASK}" if rest and name.lower().endswith("authorization") else MASK
        out.append((name, value))
    return out


def mask_secret(value: str | None, keep: int = 4) -> str | None:
    """``'abcdef123456'`` -> ``'abcd…(12)'``: enough to tell values apart, not to reuse one."""
    if value is None:
        return None
    if len(value) <= keep * 2:
        return f"{MASK}({len(value)})"
    return f"{value[:keep]}…({len(value)})"


def mask_url(url: str) -> str:
    """Hide the password of ``https://user:pass@host/``; the rest of the URL stays readable."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_number(number: str) -> str:
    """Keep the country code and last two digits: ``+13038675309`` -> ``+1*******09``."""
    if len(number) <= 4:
        return "*" * len(number)
    head = 2 if number.startswith("+") else 1
    return number[:head] + "*" * (len(number) - head - 2) + number[-2:]
