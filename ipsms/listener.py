"""``ipsms.listener.ListenConfig``, as docs/pytest-plugin.md named it before the listener became
a package: the name now lives in ``ipsms.listen.app``."""

from ipsms.listen.app import ListenConfig

__all__ = ["ListenConfig"]
