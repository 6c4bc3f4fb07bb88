"""``ipsms check``: a report card of the developer's webhook against IntelePeer's rules."""
