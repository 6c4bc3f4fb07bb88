"""IntelePeer's configuration API: the async client, credentials and token cache, and a
faithful local emulator (``ipsms.intelepeer.emulator``) for tests and offline scripts."""
