"""The listener: the aiohttp app and its handler, the answers, the connection limits, fault
injection, forwarding to the app, the ngrok tunnel, serving, and the session that runs them."""
