"""Where and how ipsms calls IntelePeer's API (region or explicit URLs, header scheme,
timeout): plain values, cheap to import, checked when they are made."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ipsms import defaults
from ipsms.errors import UsageError, setting

AUTH_URL = defaults.AUTH_URL
DEFAULT_TIMEOUT = defaults.API_TIMEOUT


class Region(StrEnum):
    us = "us"
    eu = "eu"


REGION_BASES = {Region.us: "https://api.intelepeer.com", Region.eu: "https://eu.api.intelepeer.com"}


class AuthScheme(StrEnum):
    bearer = "bearer"  # Authorization: Bearer <token> (most SMS pages, real client code)
    raw = "raw"  # Authorization: <token> (one SMS page, the portal APIs)


def _check_url(value: str, name: str) -> None:
    from urllib.parse import urlsplit  # here: the CLI imports this module to parse options

    from ipsms.redact import mask_url

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{setting(name)} {mask_url(value)!r} is not an absolute http(s) URL",
            hint=f"e.g. {setting(name)} https://api.intelepeer.com",
        )


@dataclass(frozen=True)
class ApiSettings:
    """Where and how to call: region or explicit base URLs, header scheme, timeout."""

    region: Region = Region.us
    api_base: str | None = None  # overrides the region's base URL (staging, the emulator)
    auth_url: str | None = None  # overrides the authenticate URL
    scheme: AuthScheme = AuthScheme.bearer
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.api_base is not None:
            _check_url(self.api_base, "api_base")
        if self.auth_url is not None:
            _check_url(self.auth_url, "auth_url")
        if not self.timeout > 0:
            raise UsageError(f"{setting('timeout')} {self.timeout} must be more than 0 seconds")

    @property
    def base_url(self) -> str:
        return (self.api_base or REGION_BASES[self.region]).rstrip("/")

    @property
    def authenticate_url(self) -> str:
        return self.auth_url or AUTH_URL

    def url(self, path: str) -> str:
        return self.base_url + path


class MultiStatus(StrEnum):
    """How the emulator answers a call with several endpoints."""

    always = "always"  # several endpoints -> 207, as the doc describes
    mixed = "mixed"  # several endpoints -> 201 when all succeed, 207 otherwise
