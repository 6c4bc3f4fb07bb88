"""IntelePeer's configuration API: the async client, credentials and token cache, and a
faithful local emulator (``ipsms.api.emulator``) for tests and offline scripts."""
