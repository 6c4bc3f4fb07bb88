"""``ipsms.delivery.AttemptEvent``, as docs/pytest-plugin.md named it before the delivery
engine became a package: the name now lives in ``ipsms.deliver.engine``."""

from ipsms.deliver.engine import AttemptEvent

__all__ = ["AttemptEvent"]
