"""Keyspace notifications: parsing channels and enabling the events.

Redis publishes key events on two kinds of channel (when
``notify-keyspace-events`` allows it)::

    __keyspace@<db>__:<key>     message: the event name ("expired")
    __keyevent@<db>__:<event>   message: the key

Parsing is done by the C core, binary-safe and strict: anything that does not
have exactly this shape is "not a key event" (``None``), never a misparse.

Remember that ``expired`` fires when Redis deletes the key, which can lag far
behind its TTL; that ``FLUSHDB`` emits no events; and that pub/sub is
at-most-once. Use notifications as hints, not as the source of truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

from . import cimpl
from ._util import check_url, to_bytes

if TYPE_CHECKING:
    from .client import Client

__all__ = ["KeyEvent", "enable_keyspace_events"]

_SPACES = {cimpl.SPACE_KEYSPACE: "keyspace", cimpl.SPACE_KEYEVENT: "keyevent"}


class KeyEvent(NamedTuple):
    """One parsed keyspace notification.

    Attributes:
        space: ``"keyspace"`` (``__keyspace@db__:key``) or ``"keyevent"``
            (``__keyevent@db__:event``).
        db: the database number.
        event: the event name, e.g. ``"expired"``, ``"set"``, ``"del"``;
            names this version does not know are kept as they came.
        key: the key, as bytes (keys are binary).
    """

    space: str
    db: int
    event: str
    key: bytes

    @classmethod
    def parse(cls, channel: Union[bytes, str], data: Union[bytes, str]) -> Optional["KeyEvent"]:
        """Parses a notification's channel and message; ``None`` when the
        channel is not a keyspace or keyevent channel."""
        parsed = cimpl.keyspace_parse(to_bytes(channel, "channel"), to_bytes(data, "data"))
        if parsed is None:
            return None
        space, db, _type, event, key = parsed
        return cls(_SPACES[space], db, event.decode("utf-8", "surrogateescape"), key)

    @property
    def known(self) -> bool:
        """True when the event is one Redis 7 documents."""
        return cimpl.key_event_type_of(self.event.encode("utf-8", "surrogateescape")) \
            != cimpl.KEV_OTHER

    def channel(self) -> bytes:
        """The channel this event came on (for re-publishing or tests)."""
        if self.space == "keyspace":
            return b"__keyspace@%d__:%s" % (self.db, self.key)
        return b"__keyevent@%d__:%s" % (self.db, self.event.encode("utf-8", "surrogateescape"))


def enable_keyspace_events(url_or_client: Union[str, "Client", None] = None, flags: str = "Ex",
                           **options: Any) -> str:
    """Makes sure ``notify-keyspace-events`` contains every flag in *flags*
    (Redis syntax: ``K E g $ l s h z x e t m d n A``) and returns the flags
    now in force.

    The current value is read and merged (``A`` is expanded), written only
    when something is missing, and no flag is ever removed. Raises
    :class:`~reactis.ConfigForbiddenError` when the server forbids ``CONFIG``
    (managed Redis); its message says how to enable notifications there.
    An unknown flag raises :class:`~reactis.InvalidArgumentError`.

    *url_or_client* is a URL (a connection is opened for the call, with
    *options*; None: ``$REDIS_URL``, else ``redis://localhost:6379/0``) or a
    :class:`~reactis.Client`.
    """
    if not isinstance(flags, str):
        raise TypeError("flags must be a str, not %s" % type(flags).__name__)
    from .client import Client

    if isinstance(url_or_client, Client):
        if options:
            raise TypeError("options are only accepted with a URL")
        return url_or_client.enable_keyspace_events(flags)
    with Client(check_url(url_or_client), **options) as client:
        return client.enable_keyspace_events(flags)
