"""Resettable timers with shadow data, and once-only claims.

A timer set is a delayed queue used one way: touching a timer id arms it
for *ttl* seconds, or moves its deadline when it is armed (one round trip,
O(log N)), and stores its shadow data; when a deadline passes without a
touch, the timer fires and a watcher gets its id and last data::

    timers = reactis.Timers("heartbeats", url="redis://localhost:6379/0")
    timers.touch("device:100002", ttl=30, data=b'{"battery": 71}')   # each heartbeat

    def offline(id, data):               # in another process
        print(id, "offline, last payload", data)
    timers.watch(offline)                # acks on return, retries on an exception

Firing is at least once and on time: a deadline that passed while no watcher
ran fires when one starts; a watcher that dies has its firings redelivered;
a timer touched before its deadline never fires for it. The C header
``reactis/timer.h`` and ``docs/timers.md`` spell out the edge cases (a touch
while a firing is in flight arms a new timer; a redelivered firing is
dropped when the id was touched again meanwhile).

:func:`claim_once` lets exactly one of several processes act on an event.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import logging
import math
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from . import cimpl
from ._util import SLICE_MS, BytesLike, apply_options, check_url, interrupted, settled_call, to_bytes
from .errors import StateError
from .queue import Job, QueueStats

__all__ = ["Timers", "Fired", "claim_once"]

log = logging.getLogger("reactis")

_SECONDS_OPTIONS = {
    "visibility_timeout": "visibility_timeout_ms",
    "backoff_base": "backoff_base_ms",
    "backoff_max": "backoff_max_ms",
    "block_cap": "block_cap_ms",
}


def _ms(seconds: Any, what: str, minimum: int = 0) -> int:
    if isinstance(seconds, _dt.timedelta):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
            math.isnan(seconds) or math.isinf(seconds):
        raise TypeError("%s must be a number of seconds" % what)
    ms = int(round(seconds * 1000))
    if ms < minimum:
        raise ValueError("%s must be at least %g seconds" % (what, minimum / 1000.0))
    return ms


class Fired(Job):
    """One firing of a timer (a :class:`~reactis.Job` of the timers' queue).

    ``id`` is the timer's id, ``data`` (= ``payload``) its last shadow data,
    ``deadline_ms`` (= ``due_ms``) the deadline that passed, ``fired_ms``
    (= ``delivered_ms``) when it was handed over. Ack it (``with fired:``
    does it, and retries on an exception)."""

    __slots__ = ()

    @property
    def data(self) -> bytes:
        return self.payload

    @property
    def deadline_ms(self) -> int:
        return self.due_ms

    @property
    def fired_ms(self) -> int:
        return self.delivered_ms

    @property
    def lateness(self) -> float:
        """Seconds between the deadline and the firing."""
        return (self.delivered_ms - self.due_ms) / 1000.0

    def __repr__(self) -> str:
        return "<reactis.Fired id=%r attempt=%d %d bytes of data>" % (
            self.id, self.attempt, len(self.payload))


class Timers:
    """The timer set *name* on the server at *url* (default: ``$REDIS_URL``,
    else ``redis://localhost:6379/0``). Its keys are those of the queue
    ``timer:NAME`` (``python -m reactis stats timer:NAME`` shows it).

    Options as for :class:`~reactis.Queue`: *visibility_timeout* (seconds a
    firing is leased to a watcher before it is redelivered, 30),
    *max_attempts* (10), *backoff_base*/*backoff_max*, *block_cap*,
    ``max_payload``, ``consumer``, ``group`` and the connection options.

    Calls from several threads are serialized (a blocking watch holds the
    handle: give each watcher thread its own Timers); :meth:`wakeup` and
    :meth:`close` may be called from any thread or a signal handler.
    """

    def __init__(self, name: str, url: Optional[str] = None, **options: Any) -> None:
        if not isinstance(name, str):
            raise TypeError("name must be a str, not %s" % type(name).__name__)
        url = check_url(url)
        core: Dict[str, Any] = {}
        for key, value in options.items():
            ms_key = _SECONDS_OPTIONS.get(key)
            if ms_key is None:
                core[key] = value
            elif value is not None:
                core[ms_key] = _ms(value, key)
        self._handle: Optional[Any] = cimpl.Timers(url, name)
        apply_options(self._handle, core)
        self._name = name
        self._description = cimpl.url_redact(url)
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- state

    def _live(self) -> Any:
        h = self._handle
        if h is None:
            raise StateError("the timers handle is closed", cimpl.ESTATE, "ESTATE")
        return h

    def _call(self, method: str, *args: Any) -> Any:
        """One call that does not wait: see Queue._call."""
        return settled_call(self._live(), self._lock, method, args)

    @property
    def name(self) -> str:
        return self._name

    @property
    def closed(self) -> bool:
        return self._handle is None

    def wakeup(self) -> None:
        """Ends a waiting :meth:`fetch`, :meth:`fired` or :meth:`watch` at
        once. Safe from any thread and from signal handlers."""
        h = self._handle
        if h is not None:
            h.wakeup()

    def close(self) -> None:
        """Frees the handle. Idempotent; a waiting watch is woken."""
        h, self._handle = self._handle, None
        if h is not None:
            h.wakeup()

    def __enter__(self) -> "Timers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<reactis.Timers %r on %s%s>" % (self._name, self._description,
                                              " (closed)" if self._handle is None else "")

    # ---------------------------------------------------------------- arming

    def touch(self, id: BytesLike, ttl: float, data: BytesLike = b"") -> bool:
        """Arms timer *id* to fire in *ttl* seconds (0: at once), or moves
        its deadline there, and sets its shadow *data* (bytes or str),
        handed over when it fires. Returns True when the timer was not
        armed (a new one), False when its deadline moved."""
        rc, armed, _due = self._call("touch", to_bytes(id, "id"), _ms(ttl, "ttl"), 0,
                                     to_bytes(data, "data"))
        return bool(armed)

    def touch_at(self, id: BytesLike, at: Union[float, _dt.datetime],
                 data: BytesLike = b"") -> bool:
        """As :meth:`touch`, with a deadline: epoch seconds or a datetime."""
        if isinstance(at, _dt.datetime):
            at = at.timestamp()
        rc, armed, _due = self._call("touch", to_bytes(id, "id"), _ms(at, "at"), cimpl.SCHED_AT,
                                     to_bytes(data, "data"))
        return bool(armed)

    def touch_many(self, timers: Union[Dict[Any, Any], Iterable[Tuple[Any, ...]]],
                   ttl: Optional[float] = None) -> int:
        """Touches many timers in few round trips (1,000 per script call,
        pipelined). *timers* is a dict ``{id: data}`` (with *ttl*), or pairs
        ``(id, data)`` (with *ttl*), or triples ``(id, ttl, data)``. Returns
        how many were newly armed. Touching again after an error is safe."""
        items = timers.items() if isinstance(timers, dict) else timers
        h = self._live()
        with self._lock:
            h.batch_clear()
            try:
                for item in items:
                    item = tuple(item)
                    if len(item) == 2:
                        if ttl is None:
                            raise TypeError("give ttl= for (id, data) pairs")
                        tid, t, data = item[0], ttl, item[1]
                    elif len(item) == 3:
                        tid, t, data = item
                    else:
                        raise TypeError("expected (id, data) or (id, ttl, data), not %r" % (item,))
                    h.batch_add(to_bytes(tid, "id"), _ms(t, "ttl"), to_bytes(data, "data"))
                n = h.batch_count()
                if n == 0:
                    return 0
                for _ in range(20):
                    rc = h.batch_send()
                    if rc == cimpl.OK:
                        break
                if rc != cimpl.OK:
                    raise interrupted(rc, "touch_many")
                return sum(h.batch_result(i)[1] for i in range(n))
            finally:
                h.batch_clear()

    def stop(self, id: BytesLike) -> bool:
        """Disarms timer *id*: True when it was armed (it will not fire),
        False when it was not (unknown, stopped, or fired already)."""
        return self._call("stop", to_bytes(id, "id")) == cimpl.OK

    # ---------------------------------------------------------------- firing

    def fetch(self, max: int = 1, timeout: Optional[float] = None) -> List[Fired]:
        """Up to *max* (1..1000) fired timers, waiting up to *timeout*
        seconds (0: do not wait, None: until one fires or :meth:`wakeup`).
        Each must be acked (or retried/failed). An empty list on timeout,
        wakeup or close."""
        if isinstance(max, bool) or not isinstance(max, int) or not 1 <= max <= 1000:
            raise ValueError("max must be an int in 1..1000")
        deadline = None if timeout is None else time.monotonic() + builtins.max(timeout, 0.0)
        while True:
            if deadline is None:
                ms = SLICE_MS
            else:
                ms = builtins.max(0, builtins.min(
                    SLICE_MS, int(math.ceil((deadline - time.monotonic()) * 1000))))
            rc, fired = self._fetch_once(max, ms)
            if rc == cimpl.OK:
                return fired
            if rc == cimpl.WOKEN:
                return []
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def _fetch_once(self, max: int, timeout_ms: int) -> Tuple[int, List[Fired]]:
        h = self._handle
        if h is None:
            return cimpl.WOKEN, []
        with self._lock:
            rc, jobs = h.watch(timeout_ms, max)
        del h
        if rc == cimpl.OK:
            return rc, [Fired(self, t) for t in jobs]  # type: ignore[arg-type]
        return rc, []

    def fired(self, batch: int = 1, timeout: Optional[float] = None) -> Iterator[Fired]:
        """Yields firings as they come, fetching up to *batch* at a time;
        ends on :meth:`wakeup`, :meth:`close`, or after *timeout* seconds
        without one. ``with fired:`` acks each (retries on an exception).
        Leaving early gives the fetched ones not yet yielded back."""
        self._live()
        pending: List[Fired] = []
        try:
            while True:
                pending = self.fetch(batch, timeout)
                if not pending:
                    return
                pending.reverse()
                while pending:
                    yield pending.pop()
        finally:
            self._give_back(pending)

    __iter__ = fired

    def watch(self, handler: Callable[[bytes, bytes], Any], *, batch: int = 100,
              timeout: Optional[float] = None, max_fired: Optional[int] = None) -> int:
        """Calls ``handler(id, data)`` for every timer that fires, and
        returns how many were handled. A normal return acks the firing; an
        exception is logged and retries it with backoff (after max_attempts
        it goes to the dead letters). Ends on :meth:`wakeup` or
        :meth:`close`, after *timeout* seconds without a firing, or after
        *max_fired* firings. Ctrl-C raises KeyboardInterrupt at once; the
        firings fetched but not handled are given back."""
        if max_fired is not None and (not isinstance(max_fired, int) or max_fired < 1):
            raise ValueError("max_fired must be None or an int >= 1")
        done = 0
        pending: List[Fired] = []
        try:
            while max_fired is None or done < max_fired:
                want = batch if max_fired is None else builtins.min(batch, max_fired - done)
                pending = self.fetch(want, timeout)
                if not pending:
                    break
                pending.reverse()
                while pending:
                    f = pending[-1]
                    try:
                        handler(f.id, f.payload)
                    except Exception as e:  # noqa: BLE001 - retried, logged
                        log.exception("timers %s: handler failed for %r", self._name, f.id)
                        pending.pop()
                        self.retry(f, error="%s: %s" % (type(e).__name__, e))
                    else:
                        pending.pop()
                        if not f.done:
                            self.ack(f)
                    done += 1
        finally:
            self._give_back(pending)
        return done

    def _give_back(self, fired: List[Fired]) -> None:
        for f in fired:
            if f.done:
                continue
            try:
                self.retry(f, delay=0, error="the watcher stopped before this firing")
            except Exception as e:  # noqa: BLE001 - redelivered after the lease instead
                f.done = True
                log.warning("timers %s: could not give %r back (%s); it is redelivered after "
                            "the visibility timeout", self._name, f.id, e)

    # ---------------------------------------------------------------- settling

    def ack(self, fired: Union[Fired, str]) -> None:
        """Done with a firing (a Fired or its token)."""
        self._call("ack", _token(fired))
        if isinstance(fired, Job):
            fired.done = True

    def ack_many(self, fired: Iterable[Union[Fired, str]]) -> int:
        items = list(fired)
        if not items:
            return 0
        rc, acked = self._call("ack_many", " ".join(_token(f) for f in items))
        for f in items:
            if isinstance(f, Job) and rc == cimpl.OK:
                f.done = True
        return int(acked)

    def retry(self, fired: Union[Fired, str], delay: Optional[float] = None,
              error: Optional[Union[str, bytes]] = None) -> bool:
        """The handler failed: the firing comes again after *delay* seconds
        (None: backoff with jitter), unless the timer is touched meanwhile.
        Returns True when it went to the dead letters."""
        delay_ms = -1 if delay is None else _ms(delay, "delay")
        rc, dead = self._call("retry", _token(fired), delay_ms,
                              None if error is None else to_bytes(error, "error"))
        if isinstance(fired, Job):
            fired.done = True
        return bool(dead)

    def fail(self, fired: Union[Fired, str], error: Optional[Union[str, bytes]] = None) -> None:
        self._call("fail", _token(fired), None if error is None else to_bytes(error, "error"))
        if isinstance(fired, Job):
            fired.done = True

    def extend(self, fired: Union[Fired, str], seconds: Optional[float] = None) -> None:
        self._call("extend", _token(fired), 0 if seconds is None else _ms(seconds, "seconds"))

    def stats(self) -> QueueStats:
        """The counters of the timers' queue: ``scheduled`` is the number
        of armed timers, ``in_flight`` the firings being handled."""
        rc, d = self._call("stats")
        if rc != cimpl.OK:
            raise interrupted(rc, "stats")
        return QueueStats(**d)


def _token(fired: Any) -> str:
    if isinstance(fired, Job):
        return fired.token
    if isinstance(fired, str):
        return fired
    raise TypeError("expected a Fired or a token str, not %s" % type(fired).__name__)


def claim_once(url_or_client: Any, name: Union[str, bytes], id: BytesLike, ttl: float,
               **options: Any) -> bool:
    """True for the one caller that claims (*name*, *id*) first, False for
    every other caller until *ttl* seconds have passed. The claim is the key
    ``rx:claim:{NAME}:ID`` set with ``SET NX PX`` (its value names the
    winner's host and pid). *name*: 1..200 bytes without braces.

    *url_or_client* is a :class:`~reactis.Client` or a URL (a connection is
    opened for the call, with *options*; None: ``$REDIS_URL``)."""
    from .client import Client

    ttl_ms = _ms(ttl, "ttl", 1)
    n, i = to_bytes(name, "name"), to_bytes(id, "id")
    if isinstance(url_or_client, Client):
        if options:
            raise TypeError("options are only accepted with a URL")
        h = url_or_client._live()
        with url_or_client._lock:
            rc, won = cimpl.claim_once(h, n, i, ttl_ms)
    else:
        with Client(check_url(url_or_client), **options) as client:
            with client._lock:
                rc, won = cimpl.claim_once(client._live(), n, i, ttl_ms)
    if rc != cimpl.OK:
        raise interrupted(rc, "claim_once")
    return bool(won)
