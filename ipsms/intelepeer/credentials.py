"""IntelePeer credentials: where they come from, and the files that keep them.

Lookup order (first match wins):

1. a token given directly (``--token`` / ``IPSMS_TOKEN``): used as is, never cached or renewed;
2. a username and password (``IPSMS_USERNAME`` / ``IPSMS_PASSWORD``), exchanged for a token;
3. the credentials stored by ``ipsms auth login`` (``credentials.json`` in the state home).

Stored credentials belong to the authenticate URL they were verified with: their password is
sent to that URL only. Another ``--auth-url``/``IPSMS_AUTH_URL`` (or the default one, when they
were saved for the emulator) is an ``AuthError`` before any request, so a typo or a stray
variable cannot hand the password to another server. A file written without a URL belongs to
IntelePeer's own authenticate URL, the only one ipsms knew before it recorded one.

Tokens obtained with a password are cached in ``api-tokens.json`` with their 24-hour expiry,
keyed by authenticate URL, API base and username: a cached token is only sent to the API it
was fetched for, so the emulator's tokens never reach IntelePeer and the other way round. Both
files are written atomically with mode 0600 (only the user can read them).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ipsms import defaults
from ipsms.errors import AuthError, StateError, setting
from ipsms.home import HOME_ENV, ensure_dir, state_home
from ipsms.redact import mask_url
from ipsms.text import iso_time, printable

# Settings named in errors; the CLI words them as its flags.
_AUTH_URL = setting("auth_url")
_TOKEN = setting("token")

CREDENTIALS_FILE = "credentials.json"
TOKENS_FILE = "api-tokens.json"
DEFAULT_AUTH_URL = defaults.AUTH_URL
TOKEN_LIFETIME = 24 * 3600.0  # intelepeer.md 2.1: tokens live 24 hours
EXPIRY_MARGIN = 60.0  # renew a little early so a token does not expire between check and call

LOGIN_HINT = (
    "run `ipsms auth login`, or set IPSMS_USERNAME and IPSMS_PASSWORD, "
    f"or pass a token with {_TOKEN} / IPSMS_TOKEN"
)


@dataclass(frozen=True)
class StaticToken:
    """A token the user handed over; ipsms cannot renew it."""

    token: str = field(repr=False)
    source: str = "token"  # like PasswordAuth.source: where it came from (--token, IPSMS_TOKEN)


@dataclass(frozen=True)
class PasswordAuth:
    """A Customer Portal user (Access = API) whose password ipsms exchanges for tokens."""

    username: str
    password: str = field(repr=False)
    source: str = "stored"  # "stored" (auth login), "env" (IPSMS_*), "flags"
    auth_url: str | None = None  # stored credentials: the only URL the password may go to


AuthSource = StaticToken | PasswordAuth


@dataclass(frozen=True)
class CachedToken:
    token: str = field(repr=False)
    username: str = ""
    auth_url: str = ""
    obtained_at: float = 0.0
    expires_at: float = 0.0
    api_base: str = ""  # the API the token was fetched for, and the only one it is sent to

    def valid(self, now: float, margin: float = EXPIRY_MARGIN) -> bool:
        return now < self.expires_at - margin

    @property
    def key(self) -> tuple[str, str, str]:
        return self.auth_url, self.api_base, self.username

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "username": self.username,
            "auth_url": self.auth_url,
            "api_base": self.api_base,
            "obtained_at": self.obtained_at,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class StoredCredentials:
    username: str
    password: str = field(repr=False)
    auth_url: str = DEFAULT_AUTH_URL  # verified with this URL; the password goes nowhere else
    saved_at: float = 0.0


def same_url(a: str, b: str) -> bool:
    """The same URL up to the case of scheme and host and an explicit default port."""
    return _normal_url(a) == _normal_url(b)


def _normal_url(url: str) -> tuple[str, ...]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ("unreadable", url)
    scheme = parts.scheme.lower()
    if port == {"http": 80, "https": 443}.get(scheme):
        port = None
    return (
        scheme,
        parts.username or "",
        parts.password or "",
        (parts.hostname or "").lower(),
        str(port or ""),
        parts.path or "/",
        parts.query,
    )


def check_auth_url(auth: PasswordAuth, url: str) -> None:
    """Refuse to send stored credentials to any authenticate URL but their own."""
    if auth.auth_url is None or same_url(auth.auth_url, url):
        return
    theirs, here = printable(mask_url(auth.auth_url)), printable(mask_url(url))
    raise AuthError(
        f"the saved credentials of {auth.username!r} belong to {theirs}, not to "
        f"{here}: ipsms does not send their password to another URL",
        hint=f"to use {here}, run `ipsms auth login {_AUTH_URL} {here}` explicitly "
        "(or set IPSMS_USERNAME and IPSMS_PASSWORD); to use the saved ones, pass "
        f"{_AUTH_URL} {theirs}",
    )


def write_private_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename) with mode 0600.

    ``mkstemp`` creates the temp file 0600, so the secret is never readable by others, not
    even for a moment; a crash leaves either the old file or the new one, never half."""
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StateError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint=f"check the permissions of {path.parent} or set {HOME_ENV}",
        ) from None


def read_json(path: Path) -> Any:
    """The parsed file, or None when it does not exist. Raises ``StateError`` if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError:
        raise StateError(f"{path} is not valid JSON", hint="fix or delete the file") from None


class CredentialStore:
    """The stored credentials and the token cache, in ``home`` (default: the state home)."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home if home is not None else state_home()

    @property
    def credentials_path(self) -> Path:
        return self.home / CREDENTIALS_FILE

    @property
    def tokens_path(self) -> Path:
        return self.home / TOKENS_FILE

    # -- stored credentials -------------------------------------------------------------

    def load_credentials(self) -> StoredCredentials | None:
        data = read_json(self.credentials_path)
        if data is None:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("username"), str)
            or not isinstance(data.get("password"), str)
        ):
            raise StateError(
                f"{self.credentials_path} does not hold a username and password",
                hint="run `ipsms auth logout`, then `ipsms auth login`",
            )
        auth_url = data.get("auth_url")
        if auth_url is None:  # written before credentials recorded their URL: IntelePeer's
            auth_url = DEFAULT_AUTH_URL
        if not isinstance(auth_url, str) or not auth_url.strip():
            raise StateError(
                f"{self.credentials_path} holds an unreadable auth_url",
                hint="run `ipsms auth logout`, then `ipsms auth login`",
            )
        saved_at = data.get("saved_at")
        return StoredCredentials(
            data["username"],
            data["password"],
            auth_url,
            float(saved_at) if isinstance(saved_at, int | float) else 0.0,
        )

    def save_credentials(self, creds: StoredCredentials) -> None:
        write_private_json(
            self.credentials_path,
            {
                "username": creds.username,
                "password": creds.password,
                "auth_url": creds.auth_url,
                "saved_at": creds.saved_at,
            },
        )

    def delete_credentials(self) -> bool:
        return _unlink(self.credentials_path)

    # -- token cache --------------------------------------------------------------------

    def _tokens(self) -> list[CachedToken]:
        try:
            data = read_json(self.tokens_path)
        except StateError:
            return []  # a damaged cache is only a cache: start afresh
        items = data.get("tokens") if isinstance(data, dict) else None
        out = []
        for item in items if isinstance(items, list) else []:
            try:  # an entry without api_base (older ipsms) is dropped: it costs one new token
                out.append(
                    CachedToken(
                        str(item["token"]),
                        str(item["username"]),
                        str(item["auth_url"]),
                        float(item["obtained_at"]),
                        float(item["expires_at"]),
                        str(item["api_base"]),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def load_token(
        self, auth_url: str, api_base: str, username: str, now: float | None = None
    ) -> CachedToken | None:
        """The cached token for this user from this authenticate URL for this API base, if
        still valid."""
        now = time.time() if now is None else now
        for tok in self._tokens():
            if tok.key == (auth_url, api_base, username) and tok.valid(now):
                return tok
        return None

    def tokens_for(self, username: str | None = None) -> list[CachedToken]:
        return [t for t in self._tokens() if username is None or t.username == username]

    def save_token(self, token: CachedToken) -> None:
        keep = [t for t in self._tokens() if t.key != token.key and t.expires_at > time.time()]
        keep.append(token)
        write_private_json(self.tokens_path, {"tokens": [t.to_dict() for t in keep]})

    def delete_tokens(self) -> int:
        count = len(self._tokens())
        _unlink(self.tokens_path)
        return count


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StateError(f"cannot remove {path}: {exc.strerror or exc}") from None
    return True


def resolve_auth(
    store: CredentialStore,
    *,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> AuthSource:
    """Pick the credentials to use (see the module docstring for the order)."""
    if token:
        return StaticToken(token.strip())
    if username and password:
        return PasswordAuth(username, password, "env")
    stored = store.load_credentials()
    if stored is not None and (username is None or username == stored.username):
        if password:  # the user's own password this time: not bound to the stored URL
            return PasswordAuth(stored.username, password, "env")
        return PasswordAuth(stored.username, stored.password, "stored", stored.auth_url)
    if username:
        raise AuthError(
            f"no password for the IntelePeer user {username!r}",
            hint="set IPSMS_PASSWORD, or run `ipsms auth login` for this user",
        )
    raise AuthError("no IntelePeer credentials", hint=LOGIN_HINT)


def auth_status(
    store: CredentialStore,
    *,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Which credentials would be used and the cached tokens' expiry; never a secret.
    Raises ``AuthError`` when there are none."""
    source = resolve_auth(store, token=token, username=username, password=password)
    if isinstance(source, StaticToken):
        return {
            "type": "auth_status",
            "source": "token",
            "username": None,
            "auth_url": None,
            "credentials_file": None,
            "tokens": [],
        }
    now = time.time() if now is None else now
    stored = store.load_credentials()
    mine = stored is not None and stored.username == source.username
    return {
        "type": "auth_status",
        "source": source.source,
        "username": source.username,
        "auth_url": stored.auth_url if stored is not None and mine else None,
        "credentials_file": str(store.credentials_path) if mine else None,
        "tokens": [
            {
                "auth_url": t.auth_url,
                "api_base": t.api_base,
                "expires_at": iso_time(t.expires_at),
                "valid": t.valid(now, 0.0),
            }
            for t in store.tokens_for(source.username)
        ],
    }
