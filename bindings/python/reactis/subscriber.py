"""A pub/sub subscriber that survives the network."""

from __future__ import annotations

import collections
import itertools
import logging
import math
import operator
import time
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from . import cimpl
from ._util import SLICE_MS, BytesLike, apply_options, check_url, to_bytes
from .errors import StateError
from .keyspace import KeyEvent

__all__ = ["Message", "Subscriber"]

log = logging.getLogger("reactis")

_KINDS = {
    cimpl.EV_MESSAGE: "message",
    cimpl.EV_PMESSAGE: "pmessage",
    cimpl.EV_SMESSAGE: "smessage",
    cimpl.EV_GAP: "gap",
}

_UNSET = object()


class Message:
    """One event from a :class:`Subscriber`.

    Attributes:
        kind: ``"message"`` (SUBSCRIBE), ``"pmessage"`` (PSUBSCRIBE),
            ``"smessage"`` (SSUBSCRIBE) or ``"gap"``.
        pattern: the matching pattern (bytes) for ``"pmessage"``, else None.
        channel: the channel (bytes) the message was published on.
        data: the payload (bytes).
        gap_start_ms, gap_end_ms: for ``"gap"``: epoch milliseconds when the
            link was last known good and when every subscription was back;
            messages published in between may have been missed.
        reconnects: for ``"gap"``: the connection attempts it took.
    """

    __slots__ = ("kind", "pattern", "channel", "data", "gap_start_ms",
                 "gap_end_ms", "reconnects", "_key_event")

    def __init__(self, kind: str, channel: Optional[bytes] = None, data: Optional[bytes] = None,
                 pattern: Optional[bytes] = None, gap_start_ms: int = 0,
                 gap_end_ms: int = 0, reconnects: int = 0) -> None:
        self.kind = kind
        self.pattern = pattern
        self.channel = channel
        self.data = data
        self.gap_start_ms = gap_start_ms
        self.gap_end_ms = gap_end_ms
        self.reconnects = reconnects
        self._key_event: Any = _UNSET

    @classmethod
    def _from_event(cls, ev: tuple) -> "Message":
        return _message(*ev)

    @property
    def is_gap(self) -> bool:
        return self.kind == "gap"

    @property
    def gap_start(self) -> Optional[float]:
        """For a gap: when the link was last known good (epoch seconds)."""
        return self.gap_start_ms / 1000.0 if self.kind == "gap" else None

    @property
    def gap_end(self) -> Optional[float]:
        """For a gap: when every subscription was back (epoch seconds)."""
        return self.gap_end_ms / 1000.0 if self.kind == "gap" else None

    @property
    def key_event(self) -> Optional[KeyEvent]:
        """The parsed keyspace notification, or None when the message is not
        one (parsed once, on first use)."""
        if self._key_event is _UNSET:
            ke = None
            if self.kind != "gap" and self.channel is not None and \
                    self.channel.startswith(b"__key"):
                ke = KeyEvent.parse(self.channel, self.data or b"")
            self._key_event = ke
        return self._key_event

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in self.__slots__[:-1])

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self.kind == "gap":
            return "<Message gap %d ms, %d reconnects>" % (
                self.gap_end_ms - self.gap_start_ms, self.reconnects)
        if self.kind == "pmessage":
            return "<Message pmessage %r %r %r>" % (self.pattern, self.channel, self.data)
        return "<Message %s %r %r>" % (self.kind, self.channel, self.data)


class Subscriber:
    """Subscribes to channels, patterns and shard channels, and keeps them.

    *url* defaults to ``$REDIS_URL``, else ``redis://localhost:6379/0``.
    When the link fails the core reconnects with exponential backoff and
    jitter, replays every subscription, and then delivers a ``"gap"``
    :class:`Message` saying which window may have been missed (pub/sub is
    at-most-once). While idle it sends PING every *health_check_interval*
    seconds and drops a link that does not answer within
    *health_check_timeout*, so a half-open connection is detected.

    Options (``None`` keeps the core's default): *health_check_interval*
    (seconds, 0 = off), *health_check_timeout*, *reconnect_min* and
    *reconnect_max* (backoff bounds in seconds), *reconnect_max_attempts*
    (0 = forever), *batch_size* (events read per C call, 1..65536), and
    every connection option of :class:`~reactis.Client`.

    One thread uses a subscriber; :meth:`wakeup` and :meth:`close` may be
    called from any thread or from a signal handler. Waiting happens in
    slices of at most 200 ms, so Python signal handlers run promptly even
    when the signal was delivered to another thread.
    """

    def __init__(self, url: Optional[str] = None, *,
                 health_check_interval: Optional[float] = 5.0,
                 health_check_timeout: Optional[float] = None,
                 reconnect_min: Optional[float] = None,
                 reconnect_max: Optional[float] = None,
                 reconnect_max_attempts: Optional[int] = None,
                 batch_size: int = 512,
                 **options: Any) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or \
                not 1 <= batch_size <= 65536:
            raise ValueError("batch_size must be an int in 1..65536")
        url = check_url(url)
        self._handle: Optional[Any] = cimpl.Sub(url)
        apply_options(self._handle, dict(
            health_check_interval=health_check_interval,
            health_check_timeout=health_check_timeout,
            reconnect_min=reconnect_min, reconnect_max=reconnect_max,
            reconnect_max_attempts=reconnect_max_attempts, **options))
        self._batch = batch_size
        self._pending: Deque[Message] = collections.deque()
        # Template routes of on(): (template, handler).
        self._routes: List[Tuple[Any, Callable[..., Any]]] = []
        # For logs and repr: the URL without its password.
        self._description = cimpl.url_redact(url)

    # ---------------------------------------------------------------- state

    def _live(self) -> Any:
        h = self._handle
        if h is None:
            raise StateError("the subscriber is closed", cimpl.ESTATE, "ESTATE")
        return h

    @property
    def closed(self) -> bool:
        return self._handle is None

    @property
    def connected(self) -> bool:
        """True when subscribed on a live link."""
        h = self._handle
        return h is not None and h.is_connected()

    @property
    def subscription_count(self) -> int:
        """Number of wanted subscriptions of all kinds."""
        h = self._handle
        return 0 if h is None else int(h.count())

    def fileno(self) -> int:
        """A descriptor that becomes readable when :meth:`get_message` may
        have something, for select/poll loops; -1 while disconnected. It
        changes after a reconnect."""
        return int(self._live().fd())

    def connect(self) -> None:
        """Connects now (subscribing connects by itself)."""
        self._live().connect()

    def wakeup(self) -> None:
        """Makes a waiting :meth:`get_message` return None and ends a
        :meth:`listen` loop, at once. Safe from any thread and from signal
        handlers; when nothing waits, the next wait returns immediately."""
        h = self._handle
        if h is not None:
            h.wakeup()

    def close(self) -> None:
        """Closes the link and frees the subscriber. Idempotent. A thread
        waiting in :meth:`listen` or :meth:`get_message` is woken and stops;
        the handle is freed when its call returns."""
        h, self._handle = self._handle, None
        if h is not None:
            h.wakeup()
        self._pending.clear()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._handle is None:
            return "<reactis.Subscriber %s (closed)>" % self._description
        return "<reactis.Subscriber %s (%d subscriptions, %s)>" % (
            self._description, self.subscription_count,
            "connected" if self.connected else "not connected")

    # ---------------------------------------------------------------- subscriptions

    def _change(self, verb: str, names: tuple) -> None:
        h = self._live()
        fn = getattr(h, verb)
        for name in names:
            # A positive status (interrupted while waiting for the
            # confirmation) is fine: the subscription is wanted and is
            # confirmed inside the next wait.
            fn(to_bytes(name, "channel"))
        log.debug("%s %s on %s", verb, names, self._description)

    def subscribe(self, *channels: BytesLike) -> None:
        """Subscribes to each channel (bytes or str) and waits until the
        server confirms, so a message published afterwards is received."""
        if not channels:
            raise TypeError("subscribe() needs at least one channel")
        self._change("subscribe", channels)

    def psubscribe(self, *patterns: BytesLike) -> None:
        """Subscribes to each glob-style pattern (``news.*``)."""
        if not patterns:
            raise TypeError("psubscribe() needs at least one pattern")
        self._change("psubscribe", patterns)

    def ssubscribe(self, *channels: BytesLike) -> None:
        """Subscribes to each shard channel (Redis 7, SPUBLISH)."""
        if not channels:
            raise TypeError("ssubscribe() needs at least one channel")
        self._change("ssubscribe", channels)

    def _remove(self, verb: str, names: tuple) -> None:
        h = self._live()
        fn = getattr(h, verb)
        if not names:
            fn(None)
        for name in names:
            fn(to_bytes(name, "channel"))

    def unsubscribe(self, *channels: BytesLike) -> None:
        """Removes channel subscriptions; without arguments, all of them.
        Messages already received for them are still delivered."""
        self._remove("unsubscribe", channels)

    def punsubscribe(self, *patterns: BytesLike) -> None:
        """Removes pattern subscriptions; without arguments, all of them."""
        self._remove("punsubscribe", patterns)

    def sunsubscribe(self, *channels: BytesLike) -> None:
        """Removes shard channel subscriptions; without arguments, all."""
        self._remove("sunsubscribe", channels)

    # ---------------------------------------------------------------- receiving

    def _fill(self, timeout: Optional[float]) -> bool:
        """Reads one batch of events into the pending queue, waiting up to
        timeout seconds (None = forever) in slices. False on timeout, wakeup
        or close. One C call per batch: the GIL is released once per batch,
        not once per message."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            h = self._handle
            if h is None:
                return False
            if deadline is None:
                ms = SLICE_MS
            else:
                remaining = deadline - time.monotonic()
                ms = max(0, min(SLICE_MS, int(math.ceil(remaining * 1000))))
            rc, events = h.next_batch(ms, self._batch)
            del h
            if rc == cimpl.OK and events:
                self._pending.extend(_starmap(_message, events))
                if _EV_GAP in map(_first, events):
                    self._log_gaps(events)
                return True
            if rc == cimpl.WOKEN:
                return False
            # RX_TIMEOUT: one slice is over. RX_EINTR: the signal handlers
            # have run (in the C glue) and none raised. Either way wait on.
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _log_gaps(self, events: List[tuple]) -> None:
        for ev in events:
            if ev[0] == _EV_GAP:
                log.warning(
                    "reconnected to %s after %d attempt(s): messages published "
                    "during the last %d ms may have been missed",
                    self._description, ev[6], ev[5] - ev[4])

    def _fetch(self, timeout: Optional[float]) -> Optional[Message]:
        if self._pending or self._fill(timeout):
            return self._pending.popleft()
        return None

    @staticmethod
    def _check_timeout(timeout: Optional[float]) -> None:
        if timeout is not None and (isinstance(timeout, bool) or
                                    not isinstance(timeout, (int, float))):
            raise TypeError("timeout must be a number or None")

    def get_message(self, timeout: Optional[float] = 0.0) -> Optional[Message]:
        """Returns the next message, waiting up to *timeout* seconds (0: do
        not wait, None: wait until one arrives or :meth:`wakeup`). Returns
        None on timeout, wakeup or close."""
        self._check_timeout(timeout)
        if self._handle is None and not self._pending:
            raise StateError("the subscriber is closed", cimpl.ESTATE, "ESTATE")
        return self._fetch(timeout)

    def get_messages(self, timeout: Optional[float] = 0.0,
                     max_messages: Optional[int] = None) -> List[Message]:
        """Returns every message already received, up to *max_messages*
        (default: everything buffered, at least one batch); when there is
        none, waits up to *timeout* seconds for some (0: do not wait, None:
        until some arrive or :meth:`wakeup`). An empty list on timeout,
        wakeup or close. The fastest way to drain a backlog."""
        self._check_timeout(timeout)
        if max_messages is not None and (isinstance(max_messages, bool) or
                                         not isinstance(max_messages, int) or
                                         max_messages < 1):
            raise ValueError("max_messages must be None or an int >= 1")
        pending = self._pending
        if self._handle is None and not pending:
            raise StateError("the subscriber is closed", cimpl.ESTATE, "ESTATE")
        if not pending and not self._fill(timeout):
            return []
        if max_messages is None or max_messages >= len(pending):
            out = list(pending)
            pending.clear()
            return out
        return [pending.popleft() for _ in range(max_messages)]

    def listen(self) -> Iterator[Message]:
        """Yields messages as they arrive, forever; ends when
        :meth:`wakeup` or :meth:`close` is called (from another thread or a
        signal handler). Ctrl-C raises KeyboardInterrupt within 200 ms.
        Messages are read in batches; leaving the loop early keeps the rest
        of the batch for the next :meth:`get_message` or :meth:`listen`."""
        self._live()
        pending = self._pending
        popleft = pending.popleft
        fill = self._fill
        while True:
            if not pending and not fill(None):
                return
            while pending:
                yield popleft()

    def __iter__(self) -> Iterator[Message]:
        return self.listen()

    # ---------------------------------------------------------------- routing

    def on(self, template: Any, handler: Optional[Callable[[Message, Dict[str, bytes]], Any]] = None) -> Any:
        """Routes the messages of every channel matching *template* (a
        :class:`~reactis.Template` or its text, e.g.
        ``"user:{user_id}:notifications"``) to ``handler(msg, captures)``,
        captures being ``{"user_id": b"42"}``. Subscribes to the template's
        glob pattern (PSUBSCRIBE) at once. Works as a decorator too::

            @sub.on("chat:{room}")
            def said(msg, caps): print(caps["room"], msg.data)
            sub.run()

        :meth:`run` (or :meth:`route` on messages you read yourself)
        calls the handlers."""
        from .template import Template

        tpl = template if isinstance(template, Template) else Template(template)
        if handler is None:
            def register(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.on(tpl, fn)
                return fn
            return register
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._routes.append((tpl, handler))
        self.psubscribe(tpl.glob)
        return handler

    def route(self, msg: Message) -> bool:
        """Calls the handlers of the routes (:meth:`on`) that *msg* matches:
        for a pattern message, the routes whose glob is its pattern; for a
        channel message, every route whose template matches. True when one
        was called."""
        if msg.kind == "gap" or msg.channel is None:
            return False
        handled = False
        for tpl, handler in list(self._routes):
            if msg.kind == "pmessage" and msg.pattern != tpl.glob:
                continue
            caps = tpl.match(msg.channel)
            if caps is not None:
                handler(msg, caps)
                handled = True
        return handled

    def run(self, timeout: Optional[float] = None, *,
            on_gap: Optional[Callable[[Message], Any]] = None,
            default: Optional[Callable[[Message], Any]] = None) -> int:
        """Reads messages and dispatches them to the :meth:`on` routes until
        :meth:`wakeup` or :meth:`close` (or *timeout* seconds without a
        message); returns how many were routed. Gaps go to *on_gap*,
        messages no route took to *default* (else they are dropped). A
        handler's exception propagates and ends the loop."""
        routed = 0
        while True:
            msg = self.get_message(timeout=timeout) if self._handle is not None or \
                self._pending else None
            if msg is None:
                return routed
            if msg.kind == "gap":
                if on_gap is not None:
                    on_gap(msg)
            elif self.route(msg):
                routed += 1
            elif default is not None:
                default(msg)


_EV_GAP = cimpl.EV_GAP
_first = operator.itemgetter(0)
_starmap = itertools.starmap
_KIND_BY_CODE = tuple(_KINDS.get(i, "unknown") for i in range(max(_KINDS) + 1))


def _message(kind: int, pattern: Optional[bytes], channel: Optional[bytes],
             data: Optional[bytes], gap_start_ms: int, gap_end_ms: int, reconnects: int,
             _new: Any = object.__new__, _cls: type = Message, _unset: object = _UNSET,
             _names: tuple = _KIND_BY_CODE) -> Message:
    """A Message from the core's event tuple, without Message.__init__'s
    argument handling (this runs once per message received)."""
    m = _new(_cls)
    if kind == _EV_GAP:
        # A gap has no channel or payload (the core hands out "").
        channel = data = pattern = None
    m.kind = _names[kind] if 0 <= kind < len(_names) else "unknown"
    m.pattern = pattern
    m.channel = channel
    m.data = data
    m.gap_start_ms = gap_start_ms
    m.gap_end_ms = gap_end_ms
    m.reconnects = reconnects
    m._key_event = _unset
    return m
