"""Helpers for testing an app that receives IntelePeer webhooks, behind the pytest plugin
(``ipsms.pytest_plugin``): a listener that records what it receives, a deliverer that posts
signed messages with IntelePeer's retry rule, and the API emulator. They run on event loops
of their own, in background threads, so plain (sync) tests can use them; each has async
methods for async tests. None of them imports pytest."""
