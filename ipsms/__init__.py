"""ipsms: a developer tool for IntelePeer Atmosphere SMS webhooks."""

__version__ = "0.1.0"
