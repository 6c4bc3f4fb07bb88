"""Every default value of ipsms in one place: what a command does when no flag, ``IPSMS_*``
variable or file says otherwise. A plain module, cheap to import: the CLI declares its options
with these before it imports the engines that use them."""

from __future__ import annotations

# listen
LISTEN_HOST = "127.0.0.1"
LISTEN_PORT = 8765
MAX_BODY = 1024 * 1024  # bytes; bigger bodies are answered 413
READ_TIMEOUT = 10.0  # seconds a client has for a request's head, and again for its body
MAX_CONNECTIONS = 512
FORWARD_TIMEOUT = 10.0  # --forward-to: seconds the app has to answer (then 504)
INSPECT_HOST = "127.0.0.1"  # the web inspector: loopback only, its own port
INSPECT_PORT = 4041

# simulate / replay: IntelePeer's rule, "up to a total of 5 attempts" until an HTTP 200
WEBHOOK_URL = f"http://{LISTEN_HOST}:{LISTEN_PORT}/"
MAX_ATTEMPTS = 5
ATTEMPT_TIMEOUT = 10.0  # seconds to wait for each answer
CONCURRENCY = 10  # load mode: messages in flight
FROM_NUMBER = "+13035550100"
TO_NUMBER = "+13038675309"
MESSAGE_TEXT = "Hello World!"
HMAC_VARIANT = "sha256"

# messages
LIST_LIMIT = 50

# IntelePeer's API
API_TIMEOUT = 30.0
AUTH_URL = "https://customer.intelepeer.com/_rest/v4/authenticate"
EMULATOR_PORT = 8766
EMULATOR_TOKEN_LIFETIME = 24 * 3600.0  # intelepeer.md 2.1: tokens live 24 hours
EMULATOR_PROVISION_SECONDS = 60.0  # a provisioning stays in progress (409) this long
