"""``from ipsms.faults import Faults``, as docs/pytest-plugin.md showed it before the listener
became a package: the name now lives in ``ipsms.listen.faults``."""

from ipsms.listen.faults import Faults

__all__ = ["Faults"]
