"""An aiohttp response that writes its own bytes, whole, with one transport write.

aiohttp serialises a ``StreamResponse`` through its ``StreamWriter`` in ``prepare()`` and
``write_eof()``. ``OneWrite`` is told what to send (``whole``) and writes it itself; aiohttp has
no public way to be told that a response has gone out whole, so ``prepare`` leaves the state
aiohttp's own ``write_eof`` leaves. ``answers.py`` builds the bytes and touches none of it.

What this relies on (checked with aiohttp 3.14.5, as constraints.txt pins it;
tests/listen/test_aiohttp_writer.py fails when an upgrade changes any of it):

- aiohttp's request handler (``web_protocol``) answers with ``await resp.prepare(request)``,
  then ``await resp.write_eof()``, and nothing else that writes; then it reads
  ``resp.keep_alive`` to keep or close the connection, and its access logger reads
  ``resp.body_length``.
- ``StreamResponse`` keeps those in its attributes ``_keep_alive`` (what ``keep_alive``
  returns), ``_body_length`` (what ``body_length`` returns) and ``_eof_sent`` (True once the
  response is written: ``prepared`` is then True, ``prepare`` returns at once and ``write``
  raises).
- Public, and used as aiohttp's own writer uses them: ``request.transport`` (None or closing
  once the client has gone), ``request.keep_alive``, and ``request.writer.drain()``, which
  waits while the transport's buffer is past its high-water mark.

Skipped, as the listener needs none of it: the ``on_response_prepare`` signal, compression,
chunking and cookies (``whole`` holds the status line, every header and the body).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter


class OneWrite(web.StreamResponse):
    """A response that sends what ``whole`` returns, with one transport write, when aiohttp
    prepares it."""

    def whole(self, keep_alive: bool) -> tuple[bytes, int]:
        """The bytes to send (status line, headers, body) for a connection that stays open
        (``keep_alive``) or closes after it, and the body's length."""
        raise NotImplementedError

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent:
            return None
        transport = request.transport
        if transport is None or transport.is_closing():
            # What aiohttp's own writer raises: the client left while its message was being
            # handled.
            raise ConnectionResetError("Cannot write to closing transport")
        keep_alive = request.keep_alive
        data, body_length = self.whole(keep_alive)
        transport.write(data)
        self._keep_alive = keep_alive
        self._eof_sent = True
        self._body_length = body_length
        if transport.get_write_buffer_size():  # a client that is not reading: wait for it,
            await request.writer.drain()  # as aiohttp's writer does past its high-water mark
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None  # all of it went with prepare()
