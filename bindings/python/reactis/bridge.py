"""From ``expired`` notifications of templated keys to their shadow data.

For keys that other applications set with TTLs: when ``session:{id}``
expires, the value it had is gone, so writers keep the data in a shadow key
(``shadow:session:{id}``, without a TTL) and the bridge hands it over, read
and deleted in one GETDEL, with the captures of the key::

    bridge = reactis.ExpiryBridge("session:{id}", url="redis://localhost:6379/0")
    for exp in bridge.listen():               # or bridge.take(msg) on your Subscriber
        print("session", exp.captures["id"], "ended with", exp.value)

**This path inherits Redis's notifications: at most once, and late.** A
subscriber that is down or reconnecting misses events (a ``gap`` message
says when), and ``expired`` fires when Redis deletes the key, which with
many keys carrying TTLs can be tens of seconds after the TTL (measured: with
200,000 other keys with TTLs, 61 of 2,000 due keys had fired after 30 s).
Where the event matters, use :class:`reactis.Timers`, which fire on time and
at least once.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, NamedTuple, Optional, Union

from . import cimpl
from ._util import check_url, interrupted, to_bytes
from .client import Client
from .subscriber import Message, Subscriber

__all__ = ["ExpiryBridge", "Expiry"]


class Expiry(NamedTuple):
    """One expired key of the template.

    Attributes:
        key: the key that expired (bytes).
        captures: the template's captures of the key, ``{name: bytes}``.
        value: the shadow key's value, or None when it had none (it was
            never set, or another bridge took it first).
    """

    key: bytes
    captures: Dict[str, bytes]
    value: Optional[bytes]


class ExpiryBridge:
    """Turns ``expired`` events of keys matching *template* into
    :class:`Expiry` values with the data of their shadow keys.

    *shadow*: the shadow keys' template, using placeholders of *template*
    (default ``"shadow:" + template``). *delete* (default True) deletes the
    shadow key as it is read (GETDEL): of several bridges that get the same
    event, exactly one gets the value. *db*: the database to watch
    (default: the URL's). Options go to the connections.

    Notifications must be enabled (``notify-keyspace-events`` with ``E``
    and ``x``): :meth:`listen` does it with
    :func:`reactis.enable_keyspace_events` unless *enable_events* is False.
    """

    def __init__(self, template: Union[str, bytes], shadow: Optional[Union[str, bytes]] = None,
                 *, url: Optional[str] = None, delete: bool = True, db: Optional[int] = None,
                 enable_events: bool = True, **options: Any) -> None:
        from .template import Template

        self._handle = cimpl.Bridge(to_bytes(template, "template"),
                                    None if shadow is None else to_bytes(shadow, "shadow"),
                                    0 if delete else cimpl.BRIDGE_KEEP)
        self.template = Template(self._handle.key_template())
        self.shadow = Template(self._handle.shadow_template())
        self._url = check_url(url)
        self._options = options
        self._db = db
        self._enable = enable_events
        self._client: Optional[Client] = None
        self._sub: Optional[Subscriber] = None

    def _conn(self) -> Client:
        if self._client is None:
            opts = dict(self._options)
            if self._db is not None:
                opts["db"] = self._db
            self._client = Client(self._url, **opts)
        return self._client

    def subscribe(self, sub: Subscriber, db: Optional[int] = None) -> None:
        """Subscribes *sub* to the expired events of *db* (default: the
        bridge's database; -1: every database)."""
        if db is None:
            db = self._db if self._db is not None else _url_db(self._url)
        self._handle.subscribe(sub._live(), db)

    def take(self, msg: Message) -> Optional[Expiry]:
        """The :class:`Expiry` of a message from any Subscriber, or None
        when the message is not an expired event of the template (in the
        bridge's database). Reads (and deletes) the shadow key."""
        if msg.kind == "gap" or msg.channel is None:
            return None
        client = self._conn()
        h = client._live()
        with client._lock:
            rc, key, caps, value = self._handle.take(h, msg.channel, msg.data or b"",
                                                     max(len(self.template.names), 1))
        if rc == cimpl.NOMATCH:
            return None
        if rc != cimpl.OK:
            raise interrupted(rc, "expiry bridge")
        return Expiry(key, dict(zip(self.template.names, caps)), value)

    def listen(self, timeout: Optional[float] = None) -> Iterator[Expiry]:
        """Subscribes (enabling the events first) and yields every expired
        key of the template, forever, or until *timeout* seconds pass
        without one, or :meth:`close`. Gaps (a reconnect: events may have
        been missed) are logged by the subscriber."""
        if self._sub is None:
            if self._enable:
                self._conn().enable_keyspace_events("Ex")
            self._sub = Subscriber(self._url, **self._options)
            self.subscribe(self._sub)
        sub = self._sub
        while True:
            msg = sub.get_message(timeout=timeout)
            if msg is None:
                return
            exp = self.take(msg)
            if exp is not None:
                yield exp

    def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> "ExpiryBridge":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<reactis.ExpiryBridge %s -> %s>" % (self.template, self.shadow)


def _url_db(url: str) -> int:
    """The database of a redis:// URL (path or db= query), 0 by default."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    q = parse_qs(parts.query)
    if "db" in q:
        return int(q["db"][-1])
    path = parts.path.strip("/")
    return int(path) if parts.scheme != "unix" and path.isdigit() else 0
