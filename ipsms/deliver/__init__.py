"""The delivery engine: IntelePeer's retry rule, the message it sends, the plain HTTP/1.1
client, load mode and its worker processes, and replaying recorded requests."""
