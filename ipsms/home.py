"""Where ipsms keeps its state: the user data dir, or ``$IPSMS_HOME`` when set."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

from ipsms.errors import StateError

HOME_ENV = "IPSMS_HOME"
DB_FILENAME = "ipsms.sqlite3"


def state_home() -> Path:
    """The state directory (not created). ``IPSMS_HOME`` overrides the platform default."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("ipsms", appauthor=False)


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed and check that it is writable."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateError(
            f"cannot create the state directory {path}: {exc.strerror or exc}",
            hint=f"set {HOME_ENV} to a writable directory",
        ) from None
    if path == state_home():
        # The state home holds recordings and credentials: private, whatever made it.
        with contextlib.suppress(OSError):
            path.chmod(0o700)
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateError(
            f"the state directory {path} is not writable",
            hint=f"fix its permissions or set {HOME_ENV} to a writable directory",
        )
    return path


def default_db_path() -> Path:
    return state_home() / DB_FILENAME
