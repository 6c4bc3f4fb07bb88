"""Where ipsms keeps its state: the user data dir, or ``$IPSMS_HOME`` when set."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ipsms.errors import StateError

HOME_ENV = "IPSMS_HOME"
DB_FILENAME = "ipsms.sqlite3"


def state_home() -> Path:
    """The state directory (not created). ``IPSMS_HOME`` overrides the platform default."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs  # here: the store's writer process imports this module without it

    return platformdirs.user_data_path("ipsms", appauthor=False)


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and each missing directory above it, every one 0700 whatever the umask
    (``Path.mkdir(parents=True, mode=0o700)`` gives the parents the umask's mode: 0777 under
    umask 000). Directories that exist are left as they are. The one way ipsms creates a
    directory; raises ``OSError``."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: its mode is its own
        os.chmod(directory, 0o700)  # a umask can only have taken bits away: put them back


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and its parents, 0700) if needed and check that it is writable."""
    try:
        make_private_dirs(path)
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
