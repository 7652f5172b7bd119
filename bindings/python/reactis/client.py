"""A plain connection for commands and publishing."""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from . import cimpl
from ._util import BytesLike, apply_options, check_url, encode_arg, interrupted, to_bytes
from .errors import StateError

__all__ = ["Client"]

log = logging.getLogger("reactis")


class Client:
    """One connection to one Redis server.

    ``url`` is ``redis://[[user]:password@]host[:port][/db][?option=...]``
    (default: ``$REDIS_URL``, else ``redis://localhost:6379/0``),
    ``rediss://...`` for TLS (verified by default) or
    ``unix:///path/to/redis.sock``. Keyword *options* are the URL's query
    options (``timeout=5``, ``connect_timeout=5``, ``client_name="worker"``,
    ``ssl_cert_reqs="none"``, ...); ``None`` keeps the default. Unknown
    options raise :class:`~reactis.URLError`.

    The client connects on the first command (or :meth:`connect`) and
    reconnects on the next command after a lost link; a command is never sent
    twice by the library. Commands from several threads are serialized.

    Replies come back as Python values: bulk strings as ``bytes``, status
    replies (``OK``, ``PONG``) as ``str``, integers as ``int``, nil as
    ``None``, arrays as ``list``; an error reply raises a
    :class:`~reactis.ReplyError` subclass (inside an array, e.g. from
    ``EXEC``, it is returned as an exception instance).
    """

    def __init__(self, url: Optional[str] = None, **options: Any) -> None:
        self._handle: Optional[Any] = cimpl.Conn(check_url(url))
        apply_options(self._handle, options)
        self._description = self._handle.describe()
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- state

    def _live(self) -> Any:
        h = self._handle
        if h is None:
            raise StateError("the client is closed", cimpl.ESTATE, "ESTATE")
        return h

    @property
    def closed(self) -> bool:
        return self._handle is None

    @property
    def connected(self) -> bool:
        """True while a link is established."""
        h = self._handle
        return h is not None and h.is_connected()

    def connect(self) -> None:
        """Connects now (closing any current link): TCP/unix/TLS, AUTH,
        SELECT, CLIENT SETNAME."""
        h = self._live()
        with self._lock:
            h.connect()

    def close(self) -> None:
        """Closes the connection and frees it. Idempotent; a command running
        in another thread is woken and raises :class:`~reactis.Interrupted`."""
        h, self._handle = self._handle, None
        if h is not None:
            h.wakeup()
        # The handle is freed when the last call using it returns.

    def wakeup(self) -> None:
        """Makes a command waiting in another thread return at once (it
        raises :class:`~reactis.Interrupted`). Safe from any thread."""
        h = self._handle
        if h is not None:
            h.wakeup()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else (
            "connected" if self.connected else "not connected")
        return "<reactis.Client %s (%s)>" % (self._description, state)

    @property
    def url(self) -> str:
        """The URL with any password replaced by ``***``."""
        return self._description

    # ---------------------------------------------------------------- commands

    def command(self, *args: Any) -> Any:
        """Runs one command and returns its reply, e.g.
        ``client.command("SET", b"key", b"value", "PX", 1000)``."""
        if not args:
            raise ValueError("command() needs at least the command name")
        argv = [encode_arg(a) for a in args]
        h = self._live()
        with self._lock:
            rc, value = h.call(argv)
        if rc != cimpl.OK:
            raise interrupted(rc, "command %r" % (args[0],))
        return value

    #: redis-py's name for :meth:`command`.
    execute_command = command

    def publish(self, channel: BytesLike, data: BytesLike) -> int:
        """Publishes *data* on *channel* (both bytes or str); returns the
        number of subscribers that received it."""
        ch, payload = to_bytes(channel, "channel"), to_bytes(data, "data")
        h = self._live()
        with self._lock:
            rc, receivers = h.publish(ch, payload)
        if rc != cimpl.OK:
            raise interrupted(rc, "publish")
        return int(receivers)

    def ping(self) -> bool:
        """True when the server answers PONG."""
        return self.command("PING") == "PONG"

    def enable_keyspace_events(self, flags: str = "Ex") -> str:
        """See :func:`reactis.enable_keyspace_events`."""
        if not isinstance(flags, str):
            raise TypeError("flags must be a str, not %s" % type(flags).__name__)
        h = self._live()
        with self._lock:
            effective = h.notify_ensure(flags)
        log.debug("notify-keyspace-events on %s: %s", self._description, effective)
        return effective
