"""The web inspector: every recorded message and attempt in a browser, live, on its own
loopback port behind a token (docs/inspector.md)."""
