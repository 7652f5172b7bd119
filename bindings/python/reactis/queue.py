"""The reliable delayed queue (Redis Streams + a sorted set, Lua on the server).

A producer schedules bytes to be delivered after a delay or at a time;
workers in a consumer group fetch what is due and ack it. Delivery is
at-least-once: a worker that dies mid-job has its deliveries reclaimed after
the visibility timeout, and a backlog that fell due while every worker was
offline is delivered on the next fetch. All of it is done by the C core; this
module translates::

    q = reactis.Queue("emails", url="redis://localhost:6379/0")
    q.schedule(b'{"to": "a@example.com"}', delay=30, id="welcome:42")

    for job in q.jobs():          # until q.wakeup() / q.close() / Ctrl-C
        with job:                 # acks on success, retries on an exception
            send(job.payload)

    q.work(send_job)              # or: the worker loop, with graceful stop
                                  # on SIGTERM/SIGINT (see Queue.work)
"""

from __future__ import annotations

import builtins
import datetime as _dt
import logging
import math
import threading
import time
import warnings
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Union

from . import cimpl
from ._util import (SLICE_MS, BytesLike, apply_options, check_url, interrupted, settled_call,
                    to_bytes)
from .errors import StateError

__all__ = ["Queue", "Job", "Scheduled", "QueueStats"]

log = logging.getLogger("reactis")

_OUTCOMES = {cimpl.SCHED_ADDED: "added", cimpl.SCHED_EXISTS: "exists",
             cimpl.SCHED_REPLACED: "replaced"}

When = Union[float, int, _dt.datetime, None]


class Scheduled(NamedTuple):
    """What :meth:`Queue.schedule` did.

    Attributes:
        id: the message id (the given one, or the generated one).
        outcome: ``"added"``; ``"exists"`` when the id was already waiting
            and was kept as it was; ``"replaced"`` with ``replace=True``.
        due_ms: epoch milliseconds the waiting message is due.
    """

    id: bytes
    outcome: str
    due_ms: int

    @property
    def due(self) -> float:
        """Epoch seconds the waiting message is due."""
        return self.due_ms / 1000.0

    @property
    def due_at(self) -> _dt.datetime:
        """When the waiting message is due (an aware UTC datetime)."""
        return _utc(self.due_ms)


def _utc(ms: int) -> Optional[_dt.datetime]:
    """Epoch milliseconds as an aware UTC datetime (None for 0 or less:
    "never" or "unknown")."""
    if ms is None or ms <= 0:
        return None
    return _EPOCH + _dt.timedelta(milliseconds=ms)


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


class QueueStats(NamedTuple):
    """Cheap counters of one queue (:meth:`Queue.stats`)."""

    scheduled: int    #: waiting, not yet due
    ready: int        #: due, not yet delivered
    in_flight: int    #: delivered, not yet acked, retried or failed
    dead: int         #: dead letters kept
    lag_ms: int       #: how overdue the oldest ready message is
    consumers: int    #: consumers known to the group
    next_due_ms: int  #: epoch ms of the earliest waiting message, -1 if none
    now_ms: int       #: the server's clock when this was read
    acked: int        #: deliveries acked since the queue was created
    failures: int     #: handler failures (retry/fail) since creation
    crashes: int      #: deliveries reclaimed after the visibility timeout
    dead_total: int   #: messages that went to the dead letters

    @property
    def next_due_at(self) -> Optional[_dt.datetime]:
        """When the earliest waiting message is due (aware UTC), or None."""
        return _utc(self.next_due_ms)


class Job:
    """One delivery (from :meth:`Queue.fetch`) or one dead letter (from
    :meth:`Queue.dead_letters`).

    Attributes:
        id: the message id (bytes).
        payload: the bytes the producer scheduled, unchanged.
        attempt: delivery number, 1 the first time.
        failures: handler failures before this delivery.
        crashes: deliveries before this one that timed out.
        due_ms, enqueued_ms, delivered_ms: epoch milliseconds it was due,
            first scheduled, and delivered (or died, for a dead letter).
        due_at, enqueued_at, delivered_at: the same as aware UTC datetimes.
        error: the last error text ("" if none).
        token: the delivery token (for a dead letter, its dead-letter id).

    Used as a context manager, a job is acked when the block ends normally
    and retried (with backoff, the exception as its error) when it raises;
    the exception propagates. For a job from :meth:`Queue.jobs` that ack is
    sent with the rest of its batch (see there); :meth:`ack` always acks at
    once.
    """

    __slots__ = ("_queue", "id", "payload", "attempt", "failures", "crashes",
                 "due_ms", "enqueued_ms", "delivered_ms", "error", "token", "done", "_acks")

    def __init__(self, queue: "Queue", t: tuple) -> None:
        (self.id, self.payload, self.attempt, self.failures, self.crashes, self.due_ms,
         self.enqueued_ms, self.delivered_ms, error, self.token) = t
        self.error = error.decode("utf-8", "replace")
        self._queue = queue
        #: True once acked, retried or failed through this object (or, in a
        #: :meth:`Queue.jobs` loop, once its ``with`` block ended normally).
        self.done = False
        # The deferred acks of the jobs() loop that yielded this job, or None.
        self._acks: Optional[List["Job"]] = None

    @property
    def due_at(self) -> Optional[_dt.datetime]:
        """When the message was due (an aware UTC datetime)."""
        return _utc(self.due_ms)

    @property
    def enqueued_at(self) -> Optional[_dt.datetime]:
        """When the message was first scheduled (an aware UTC datetime)."""
        return _utc(self.enqueued_ms)

    @property
    def delivered_at(self) -> Optional[_dt.datetime]:
        """When this delivery was made (for a dead letter: when it died)."""
        return _utc(self.delivered_ms)

    @property
    def queue(self) -> "Queue":
        """The queue handle the job came from."""
        return self._queue

    def ack(self) -> None:
        """Done: the message is deleted. Raises
        :class:`~reactis.StaleDeliveryError` when the delivery was reclaimed
        (another worker has it now)."""
        self._queue.ack(self)

    def retry(self, delay: Optional[float] = None, error: Optional[Union[str, bytes]] = None) -> bool:
        """The handler failed: back on the schedule after *delay* seconds
        (None: exponential backoff with jitter), or to the dead letters after
        max_attempts. Returns True when it went dead."""
        return self._queue.retry(self, delay=delay, error=error)

    def fail(self, error: Optional[Union[str, bytes]] = None) -> None:
        """The handler failed for good: straight to the dead letters."""
        self._queue.fail(self, error=error)

    def extend(self, seconds: Optional[float] = None) -> None:
        """Extends the lease: not reclaimed for *seconds* from now (None:
        one visibility timeout). For handlers that run long."""
        # The deferred acks of the jobs done before this one go first: a
        # handler that needs a longer lease must not leave them to time out.
        if self._acks:
            self._queue._flush_acks(self._acks)
        self._queue.extend(self, seconds)

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.done:
            return
        if exc_type is None:
            if self._acks is not None:
                # In a jobs() loop: acked with its batch, before the next
                # fetch. A crash before that redelivers the job after its
                # visibility timeout; it cannot lose it.
                self.done = True
                self._acks.append(self)
            else:
                self.ack()
        elif issubclass(exc_type, Exception):
            self.retry(error="%s: %s" % (exc_type.__name__, exc))
        # KeyboardInterrupt, SystemExit: the worker is stopping, not the job
        # failing; the delivery is reclaimed after the visibility timeout.

    def __repr__(self) -> str:
        return "<reactis.Job id=%r attempt=%d token=%s %d bytes>" % (
            self.id, self.attempt, self.token, len(self.payload))


def _when(delay: When, at: When) -> tuple:
    """(when_ms, flags) for the core from delay= (seconds) or at= (epoch
    seconds or a datetime; naive datetimes are local time)."""
    if at is not None:
        if delay not in (None, 0, 0.0):
            raise TypeError("give delay= or at=, not both")
        if isinstance(at, _dt.datetime):
            at = at.timestamp()
        if isinstance(at, bool) or not isinstance(at, (int, float)):
            raise TypeError("at must be epoch seconds or a datetime")
        return int(round(at * 1000)), cimpl.SCHED_AT
    if delay is None:
        delay = 0.0
    if isinstance(delay, _dt.timedelta):
        delay = delay.total_seconds()
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or math.isnan(delay):
        raise TypeError("delay must be a number of seconds")
    return int(round(delay * 1000)), 0


def _token(job_or_token: Union[Job, str]) -> str:
    if isinstance(job_or_token, Job):
        return job_or_token.token
    if isinstance(job_or_token, str):
        return job_or_token
    raise TypeError("expected a Job or a token str, not %s" % type(job_or_token).__name__)


def _error_bytes(error: Optional[Union[str, bytes]]) -> Optional[BytesLike]:
    return None if error is None else to_bytes(error, "error")


#: Options given in seconds, and the core option (milliseconds) each sets.
_SECONDS_OPTIONS = {
    "visibility_timeout": "visibility_timeout_ms",
    "backoff_base": "backoff_base_ms",
    "backoff_max": "backoff_max_ms",
    "block_cap": "block_cap_ms",
}


def _looks_like_url(s: Any) -> bool:
    return isinstance(s, str) and "://" in s


class Queue:
    """A handle on the delayed queue *name* on the server at *url* (default:
    ``$REDIS_URL``, else ``redis://localhost:6379/0``)::

        q = reactis.Queue("sms", url="redis://localhost:6379/0",
                          visibility_timeout=30, max_attempts=10)

    Options (``None`` keeps the default):

    * *visibility_timeout* (seconds, 30): the lease of a delivery; one not
      acked by then is redelivered (another worker may get it).
    * *max_attempts* (10): deliveries before a message goes to the dead
      letters.
    * *backoff_base*, *backoff_max* (seconds, 1 and 3600): the automatic
      retry delay, doubling per attempt between them, with jitter.
    * *block_cap* (seconds, 2): longest a fetch waits before re-checking.
    * the core's own names in milliseconds (``visibility_timeout_ms``,
      ``backoff_base_ms``, ...), ``max_payload``, ``dead_max``,
      ``consumer``, ``group``, and every connection option of
      :class:`~reactis.Client`.

    All consumers of a queue should use the same visibility timeout,
    ``max_attempts`` and ``dead_max``.

    Calls from several threads are serialized (a blocking fetch holds the
    handle: give each worker thread its own Queue); :meth:`wakeup`,
    :meth:`stop` and :meth:`close` may come from any thread or a signal
    handler.

    ``Queue(url, name)`` (the order of version 0.1) still works, with a
    DeprecationWarning.
    """

    def __init__(self, name: str, url: Optional[str] = None, **options: Any) -> None:
        if _looks_like_url(name) and isinstance(url, str) and not _looks_like_url(url):
            warnings.warn("Queue(url, name) is deprecated: use Queue(name, url=url)",
                          DeprecationWarning, stacklevel=2)
            name, url = url, name
        if not isinstance(name, str):
            raise TypeError("name must be a str, not %s" % type(name).__name__)
        url = check_url(url)
        core_options: Dict[str, Any] = {}
        for key, value in options.items():
            ms_key = _SECONDS_OPTIONS.get(key)
            if ms_key is None:
                core_options[key] = value
                continue
            if ms_key in options:
                raise TypeError("give %s= or %s=, not both" % (key, ms_key))
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                        math.isnan(value) or value < 0:
                    raise ValueError("%s must be a number of seconds >= 0" % key)
                value = int(round(value * 1000))
            core_options[ms_key] = value
        self._handle: Optional[Any] = cimpl.Queue(url, name)
        apply_options(self._handle, core_options)
        self._name = self._handle.name()
        self._url = url
        self._options = core_options
        self._description = cimpl.url_redact(url)
        self._lock = threading.RLock()
        self._stop = threading.Event()

    def _clone(self, index: int) -> "Queue":
        """Another handle on the same queue with the same options (for a
        worker thread); a fixed consumer name gets a suffix."""
        options = dict(self._options)
        if options.get("consumer"):
            options["consumer"] = "%s-%d" % (options["consumer"], index)
        return Queue(self._name, self._url, **options)

    # ---------------------------------------------------------------- state

    def _live(self) -> Any:
        h = self._handle
        if h is None:
            raise StateError("the queue handle is closed", cimpl.ESTATE, "ESTATE")
        return h

    def _call(self, method: str, *args: Any) -> Any:
        """One call that does not wait (everything but fetch). The core
        returns RX_EINTR or RX_WOKEN from such a call only before it wrote
        the command (a signal, or a wakeup byte meant for a fetch), so it is
        tried again once the signal handlers have run and none raised;
        :class:`~reactis.Interrupted` if it never gets through."""
        return settled_call(self._live(), self._lock, method, args)

    @property
    def name(self) -> str:
        return self._name

    @property
    def closed(self) -> bool:
        return self._handle is None

    @property
    def warning(self) -> str:
        """A warning found when the handle first connected ("" if none),
        e.g. that maxmemory-policy may evict queue keys."""
        return self._call("warning")

    def wakeup(self) -> None:
        """Makes a waiting :meth:`fetch` return an empty list and ends a
        :meth:`jobs` loop. Safe from any thread and from signal handlers."""
        h = self._handle
        if h is not None:
            h.wakeup()

    def stop(self) -> None:
        """Ends a :meth:`work` loop running on this handle after its current
        job (the rest of its batch is given back). Safe from any thread and
        from signal handlers."""
        self._stop.set()
        self.wakeup()

    def close(self) -> None:
        """Frees the handle (removing this consumer from the group when it
        holds no deliveries). Idempotent; a waiting fetch is woken."""
        h, self._handle = self._handle, None
        if h is not None:
            h.wakeup()

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<reactis.Queue %r on %s%s>" % (self._name, self._description,
                                             " (closed)" if self._handle is None else "")

    # ---------------------------------------------------------------- producing

    def schedule(self, payload: BytesLike, *, delay: When = 0.0, at: When = None,
                 id: Optional[BytesLike] = None, replace: bool = False) -> Scheduled:
        """Schedules *payload* (bytes or str) to be due after *delay*
        seconds, or at *at* (epoch seconds or a datetime).

        *id* (bytes or str, at most 256 bytes) names the message: scheduling
        an id that is already waiting keeps the waiting one (outcome
        ``"exists"``) unless *replace* is true. Without an id one is
        generated. Raises :class:`~reactis.PayloadTooLargeError` above
        ``max_payload``.
        """
        when_ms, flags = _when(delay, at)
        if replace:
            flags |= cimpl.SCHED_REPLACE
        mid = None if id is None else to_bytes(id, "id")
        rc, out_id, outcome, due_ms = self._call("schedule", mid, to_bytes(payload, "payload"),
                                                 when_ms, flags)
        if mid:  # an empty id asks for a generated one: report that one
            out_id = mid.encode() if isinstance(mid, str) else bytes(mid)
        return Scheduled(out_id, _OUTCOMES.get(outcome, "added"), due_ms)

    def schedule_many(self, messages: Iterable[Union[BytesLike, Dict[str, Any]]]) -> List[Scheduled]:
        """Schedules many messages in few round trips. Each item is a
        payload, or a dict with ``payload`` and any of ``delay``, ``at``,
        ``id``, ``replace`` (as for :meth:`schedule`). Sending again after
        an error is safe for messages with ids."""
        h = self._live()
        with self._lock:
            h.batch_clear()
            try:
                for m in messages:
                    if isinstance(m, dict):
                        unknown = set(m) - {"payload", "delay", "at", "id", "replace"}
                        if unknown:
                            raise TypeError("unknown message keys: %s" % ", ".join(sorted(unknown)))
                        when_ms, flags = _when(m.get("delay", 0.0), m.get("at"))
                        if m.get("replace"):
                            flags |= cimpl.SCHED_REPLACE
                        mid = m.get("id")
                        h.batch_add(None if mid is None else to_bytes(mid, "id"),
                                    to_bytes(m["payload"], "payload"), when_ms, flags)
                    else:
                        h.batch_add(None, to_bytes(m, "payload"), 0, 0)
                if h.batch_count() == 0:
                    return []
                h.batch_send()
                out = []
                for i in range(h.batch_count()):
                    _rc, outcome, mid, due_ms = h.batch_result(i)
                    out.append(Scheduled(mid, _OUTCOMES.get(outcome, "added"), due_ms))
                return out
            finally:
                h.batch_clear()

    def cancel(self, id: BytesLike) -> bool:
        """Removes a waiting message; False when it was not waiting."""
        return self._call("cancel", to_bytes(id, "id")) == cimpl.OK

    def reschedule(self, id: BytesLike, *, delay: When = 0.0, at: When = None) -> bool:
        """Moves a waiting message to a new due time; False when it was not
        waiting."""
        when_ms, flags = _when(delay, at)
        return self._call("reschedule", to_bytes(id, "id"), when_ms, flags) == cimpl.OK

    def run_now(self, id: BytesLike) -> bool:
        """Makes a waiting message due now; False when it was not waiting."""
        return self._call("run_now", to_bytes(id, "id")) == cimpl.OK

    # ---------------------------------------------------------------- consuming

    def fetch(self, max: int = 1, timeout: Optional[float] = None, *,
              ack: Optional[Iterable[Union[Job, str]]] = None) -> List[Job]:
        """Fetches up to *max* (1..1000) due messages, waiting up to
        *timeout* seconds (0: do not wait; None: until one is due or
        :meth:`wakeup`). Returns an empty list on timeout or wakeup. Every
        fetch first promotes what fell due, so a backlog is delivered.

        *ack*: deliveries (Jobs or tokens, at most 1000) to ack first, in
        the same round trip: a loop's previous batch, as in
        ``jobs = q.fetch(100, ack=jobs)``. As with :meth:`ack_many`, one
        that was reclaimed meanwhile is skipped; the acks are made even when
        nothing is due."""
        return self._fetch_acking(max, timeout, ack)[0]

    def _fetch_acking(self, max: int, timeout: Optional[float],
                      ack: Optional[Iterable[Union[Job, str]]]) -> tuple:
        """fetch(); returns (jobs, acked, sent): how many of *ack* were
        acked (stale ones are not) and how many were sent."""
        if isinstance(max, bool) or not isinstance(max, int) or not 1 <= max <= 1000:
            raise ValueError("max must be an int in 1..1000")
        if timeout is not None and not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be a number or None")
        items = [] if ack is None else list(ack)
        if len(items) > 1000:
            raise ValueError("at most 1000 jobs to ack per fetch")
        tokens = " ".join(_token(j) for j in items) if items else None
        acked = 0
        deadline = None if timeout is None else time.monotonic() + builtins.max(timeout, 0.0)
        while True:
            h = self._live() if tokens is not None else self._handle
            if h is None:
                return [], acked, len(items)
            if deadline is None:
                ms = SLICE_MS
            else:
                remaining = deadline - time.monotonic()
                ms = builtins.max(0, builtins.min(SLICE_MS, int(math.ceil(remaining * 1000))))
            with self._lock:
                if tokens is None:
                    rc, jobs = h.fetch(ms, max)
                else:
                    rc, acked, jobs = h.ack_fetch(tokens, ms, max)
                    # Acked once the script ran: it did unless a wakeup or a
                    # signal cut the call short before (then nothing was
                    # acked, or all were stale: sending them again is safe).
                    if rc in (cimpl.OK, cimpl.TIMEOUT) or acked:
                        tokens = None
                        for j in items:
                            if isinstance(j, Job):
                                j.done = True
            del h
            if rc == cimpl.OK:
                return [Job(self, t) for t in jobs], acked, len(items)
            if rc == cimpl.WOKEN or (deadline is not None and time.monotonic() >= deadline):
                if tokens is not None:
                    acked = self.ack_many(items)
                return [], acked, len(items)

    def _fetch_once(self, max: int, timeout_ms: int, ack: Optional[List[Job]] = None) -> tuple:
        """One fetch of at most timeout_ms: (status, jobs); status OK,
        TIMEOUT, WOKEN or EINTR (the signal handlers ran and none raised).
        A closed handle gives (WOKEN, []). *ack* (a list, at most 1000):
        jobs to ack in the same round trip; emptied once they were (a
        refused one is logged), left as it is when the call was cut short
        before (then they go with the next call)."""
        h = self._handle
        if h is None:
            return cimpl.WOKEN, []
        with self._lock:
            if ack:
                rc, acked, jobs = h.ack_fetch(" ".join(j.token for j in ack), timeout_ms, max)
                if rc in (cimpl.OK, cimpl.TIMEOUT) or acked:
                    if acked < len(ack):
                        log.warning("queue %s: %d ack(s) refused: those deliveries had been "
                                    "reclaimed after the visibility timeout", self._name,
                                    len(ack) - acked)
                    for j in ack:
                        j.done = True
                    del ack[:]
            else:
                rc, jobs = h.fetch(timeout_ms, max)
        del h
        if rc == cimpl.OK:
            return rc, [Job(self, t) for t in jobs]
        return rc, []

    def jobs(self, batch: Optional[int] = None, *, max: Optional[int] = None,
             timeout: Optional[float] = None) -> Iterator[Job]:
        """Yields deliveries as they fall due; ends on :meth:`wakeup`,
        :meth:`close`, or after *timeout* seconds without a delivery.

        Jobs are fetched *batch* (1..1000) at a time. By default the batch
        adapts as in :meth:`work`: 1 at first and for slow handlers, up to
        100 for fast ones, so that a batch takes at most 5% of the
        visibility timeout (and at most 1 s): prefetched jobs never wait
        near their timeout, and a :meth:`wakeup` ends the loop within that
        time. Leases of jobs still waiting in a batch that runs long are
        extended.

        Each job must be acked, retried or failed (``with job:`` does it).
        The acks of ``with`` blocks are sent together: with the next fetch,
        in its round trip; on their own once the batch has run for its
        window, before :meth:`Job.extend`, and when the loop ends. Until
        then the job is still pending on the server, so a crash makes it be
        delivered again (after the visibility timeout), never lost. An
        explicit :meth:`Job.ack` is sent at once.

        Leaving the loop early gives the fetched jobs not yet yielded back
        (retry with no delay), so none waits for its visibility timeout.
        *max* is the old name of *batch*."""
        from .worker import adaptive_batch, lease_window

        if batch is None:
            batch = max
        elif max is not None:
            raise TypeError("give batch= or max=, not both")
        # Held for the acks: they still go out after close() from another
        # thread (close() only drops the queue's reference to the handle).
        handle = self._live()
        adaptive = batch is None
        size = 1 if batch is None else batch
        visibility, window = lease_window(self)
        pending: List[Job] = []
        acks: List[Job] = []
        try:
            while True:
                pending = self._fetch_after(acks, handle, size, timeout)
                if not pending:
                    return
                n = len(pending)
                fetched = lease_from = time.monotonic()
                pending.reverse()
                while pending:
                    job = pending.pop()
                    job._acks = acks
                    yield job
                    if not pending:
                        break
                    now = time.monotonic()
                    if acks and now - fetched > window:
                        # A batch slower than its window: acks go now
                        # rather than sit while the next job runs.
                        self._flush_acks(acks, handle)
                    if now - lease_from > visibility / 2:
                        for waiting in pending:
                            self.extend(waiting)
                        lease_from = now
                if adaptive:
                    size = adaptive_batch(window, n, time.monotonic() - fetched)
        finally:
            # The acks first: a job done must not be given back.
            self._flush_acks(acks, handle, raise_errors=False)
            if pending:
                self._give_back(pending, "the consumer stopped before this job")

    def _fetch_after(self, acks: List[Job], handle: Any, size: int,
                     timeout: Optional[float]) -> List[Job]:
        """The next fetch of a jobs() loop, with its deferred acks in the
        same round trip (ack_fetch). A refused ack is logged as in
        _flush_acks; an error is raised, and those jobs are delivered
        again after their visibility timeout."""
        if not acks:
            return self.fetch(size, timeout)
        batch = acks[:]
        del acks[:]
        for job in batch:
            job._acks = None
        if self._handle is None and handle is not None:
            # Closed from another thread: the acks still go (see jobs()).
            self._flush_acks(batch, handle)
            return []
        jobs, acked, sent = self._fetch_acking(size, timeout, batch)
        if acked < sent:
            log.warning("queue %s: %d ack(s) refused: those deliveries had been reclaimed "
                        "after the visibility timeout", self._name, sent - acked)
        return jobs

    def _flush_acks(self, acks: List[Job], handle: Any = None, raise_errors: bool = True) -> None:
        """Sends the deferred acks of a jobs() loop in one round trip. A
        refused ack (the delivery was reclaimed after its visibility
        timeout: it is delivered again) is logged; other errors are raised
        (logged when *raise_errors* is false), and those jobs are delivered
        again after their visibility timeout."""
        if not acks:
            return
        batch = acks[:]
        del acks[:]
        for job in batch:
            job._acks = None
        try:
            h = self._live() if handle is None else handle
            with self._lock:
                rc, acked = h.ack_many(" ".join(job.token for job in batch))
        except Exception as e:  # noqa: BLE001 - re-raised or logged
            if raise_errors:
                raise
            log.warning("queue %s: could not ack %d job(s) (%s); they are delivered again "
                        "after the visibility timeout", self._name, len(batch), e)
            return
        if acked < len(batch):
            log.warning("queue %s: %d ack(s) refused: those deliveries had been reclaimed "
                        "after the visibility timeout", self._name, len(batch) - acked)

    def _give_back(self, jobs: List[Job], why: str) -> None:
        """Puts fetched jobs back on the schedule, due now (a retry: it
        counts as a delivery). Errors are logged, not raised: a job that
        cannot be given back is redelivered after its visibility timeout."""
        for job in jobs:
            if job.done:
                continue
            try:
                self.retry(job, delay=0, error=why)
                log.info("queue %s: gave job %r back (%s)", self._name, job.id, why)
            except Exception as e:  # noqa: BLE001 - logged; the lease expires instead
                job.done = True
                log.warning("queue %s: could not give job %r back (%s); it is redelivered "
                            "after the visibility timeout", self._name, job.id, e)

    def work(self, handler: Callable[[Job], Any], *, batch: Optional[int] = None,
             concurrency: int = 1, burst: bool = False, max_jobs: Optional[int] = None,
             grace: Optional[float] = None, handle_signals: Optional[bool] = None,
             max: Optional[int] = None) -> int:
        """The worker loop: runs *handler(job)* for every delivery and
        returns the number of jobs handled.

        * A normal return acks the job (unless the handler acked, retried
          or failed it itself); an exception is logged (the ``reactis``
          logger) and retries the job with exponential backoff; after
          ``max_attempts`` deliveries it goes to the dead letters.
        * SIGTERM or SIGINT stops the loop gracefully: the current job is
          finished (and acked), fetched jobs not started are given back,
          and work() returns. A second signal (or *grace* seconds after the
          first) interrupts the handler with :class:`WorkerInterrupt`; the
          job is given back (retry, due now) and work() returns. (With
          *concurrency* > 1 the interrupt reaches a handler thread at its
          next Python instruction: a blocking call there runs to its end.)
          Signal
          handlers are installed only when work() runs in the main thread
          (*handle_signals*: None = then, False = never) and are restored
          afterwards. From other threads, :meth:`stop` does the same.
        * :meth:`wakeup` and :meth:`close` end the loop too; *burst* ends it
          when nothing is due; *max_jobs* after that many jobs.
        * *batch*: jobs fetched per round trip (1..1000). Default: adaptive,
          1 for slow handlers up to 100 for fast ones, so a batch always
          takes a small part of the visibility timeout; the acks of a batch
          go with the next fetch, in its round trip.
        * *concurrency*: worker threads, each with its own connection (for
          handlers that wait on I/O; use processes for CPU-bound work).
        * Connection errors are logged and retried with backoff, so a
          worker outlives a Redis restart.
        """
        from .worker import Worker

        if max is not None:
            if batch is not None:
                raise TypeError("give batch= or max=, not both")
            batch = max
        w = Worker(self, handler, batch=batch, concurrency=concurrency, burst=burst,
                   max_jobs=max_jobs, grace=grace, handle_signals=handle_signals)
        return w.run()

    def ack(self, job: Union[Job, str]) -> None:
        """Acks a delivery (a Job or its token)."""
        self._call("ack", _token(job))
        if isinstance(job, Job):
            job.done = True

    def ack_many(self, jobs: Iterable[Union[Job, str]]) -> int:
        """Acks many deliveries in one round trip; returns how many were
        acked (stale ones are skipped)."""
        items = list(jobs)
        if not items:
            return 0
        tokens = " ".join(_token(j) for j in items)
        rc, acked = self._call("ack_many", tokens)
        for j in items:
            if isinstance(j, Job) and rc == cimpl.OK:
                j.done = True
        return int(acked)

    def retry(self, job: Union[Job, str], delay: Optional[float] = None,
              error: Optional[Union[str, bytes]] = None) -> bool:
        """See :meth:`Job.retry`."""
        if delay is not None and not (isinstance(delay, (int, float)) and delay >= 0):
            raise ValueError("delay must be None (backoff) or a number of seconds >= 0")
        delay_ms = -1 if delay is None else _when(delay, None)[0]
        rc, dead = self._call("retry", _token(job), delay_ms, _error_bytes(error))
        if isinstance(job, Job):
            job.done = True
        return bool(dead)

    def fail(self, job: Union[Job, str], error: Optional[Union[str, bytes]] = None) -> None:
        """See :meth:`Job.fail`."""
        self._call("fail", _token(job), _error_bytes(error))
        if isinstance(job, Job):
            job.done = True

    def extend(self, job: Union[Job, str], seconds: Optional[float] = None) -> None:
        """See :meth:`Job.extend`."""
        ms = 0 if seconds is None else _when(seconds, None)[0]
        self._call("extend", _token(job), ms)

    # ---------------------------------------------------------------- dead letters

    def dead_letters(self, limit: int = 100, after: Optional[Union[Job, str]] = None) -> List[Job]:
        """Up to *limit* (1..1000) dead letters, oldest first, after the
        dead letter *after* (a Job or token) when given."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError("limit must be an int in 1..1000")
        cursor = None if after is None else _token(after)
        rc, jobs = self._call("dead_list", cursor, limit)
        return [Job(self, t) for t in jobs]

    def requeue_dead(self, job: Optional[Union[Job, str]] = None, delay: float = 0.0) -> int:
        """Puts a dead letter (or all of them, with None) back on the
        schedule with fresh attempt counters; returns how many."""
        rc, count = self._call("dead_requeue", None if job is None else _token(job),
                               _when(delay, None)[0])
        return int(count)

    def purge_dead(self, job: Optional[Union[Job, str]] = None) -> int:
        """Deletes a dead letter (or all, with None); returns how many."""
        rc, count = self._call("dead_purge", None if job is None else _token(job))
        return int(count)

    # ---------------------------------------------------------------- observing

    def stats(self) -> QueueStats:
        """The queue's counters, read in one round trip."""
        rc, d = self._call("stats")
        if rc != cimpl.OK:
            raise interrupted(rc, "stats")
        return QueueStats(**d)

