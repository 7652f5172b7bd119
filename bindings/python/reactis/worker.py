"""The worker loop behind :meth:`reactis.Queue.work` (private module).

One loop per handle: fetch what is due (the core promotes the backlog first),
run the handler on each job, ack the successes (in one round trip per batch),
retry the failures with backoff. Stopping is cooperative: a flag checked
between jobs plus a wakeup of every handle, so a blocked fetch returns at
once. SIGTERM/SIGINT set that flag when the loop runs in the main thread; a
second signal interrupts the running handler with WorkerInterrupt, and the
job is given back.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from . import cimpl
from ._util import SLICE_MS
from .errors import (BusyError, ClusterError, ConnectionError, LoadingError, ReadOnlyError,
                     TimeoutError)

if TYPE_CHECKING:
    from .queue import Job, Queue

__all__ = ["WorkerInterrupt"]

log = logging.getLogger("reactis")

#: Errors after which a worker waits and tries again (the server restarts,
#: fails over, loads its data) instead of giving up.
TRANSIENT = (ConnectionError, TimeoutError, LoadingError, BusyError, ReadOnlyError, ClusterError)

#: Largest adaptive batch, and the share of the visibility timeout a batch
#: may take (at most 1 s).
MAX_AUTO_BATCH = 100
BATCH_SHARE = 0.05


def lease_window(queue: "Queue") -> tuple:
    """(visibility timeout, batch window) in seconds for *queue*: the
    window is the time a prefetched batch may take, a small share of the
    lease so that jobs waiting in a batch are never near their timeout."""
    vt_ms = queue._options.get("visibility_timeout_ms")
    visibility = (int(vt_ms) if vt_ms is not None else 30000) / 1000.0
    return visibility, min(1.0, visibility * BATCH_SHARE)


def adaptive_batch(window: float, n: int, elapsed: float) -> int:
    """The next batch size after *n* jobs took *elapsed* seconds: as many
    as fit in *window* at that pace, 1 to MAX_AUTO_BATCH."""
    per_job = elapsed / max(n, 1)
    return max(1, min(MAX_AUTO_BATCH, int(window / max(per_job, 1e-6))))


class WorkerInterrupt(BaseException):
    """Raised inside a running handler when :meth:`Queue.work` is told to
    stop at once (a second SIGTERM/SIGINT, or the *grace* period ran out).
    It is a BaseException so that ``except Exception`` in a handler does not
    swallow it; the job is given back (due now) and work() returns."""


class _Slot:
    """One loop: its handle, its thread, and what it is doing."""

    __slots__ = ("queue", "thread_id", "busy", "handled")

    def __init__(self, queue: "Queue") -> None:
        self.queue = queue
        self.thread_id = 0
        self.busy = False
        self.handled = 0


class Worker:
    def __init__(self, queue: "Queue", handler: Callable[["Job"], Any], *,
                 batch: Optional[int], concurrency: int, burst: bool,
                 max_jobs: Optional[int], grace: Optional[float],
                 handle_signals: Optional[bool]) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                                  or not 1 <= batch <= 1000):
            raise ValueError("batch must be None (adaptive) or an int in 1..1000")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or \
                not 1 <= concurrency <= 1024:
            raise ValueError("concurrency must be an int in 1..1024")
        if max_jobs is not None and (isinstance(max_jobs, bool) or not isinstance(max_jobs, int)
                                     or max_jobs < 1):
            raise ValueError("max_jobs must be None or an int >= 1")
        if grace is not None and (not isinstance(grace, (int, float)) or grace < 0):
            raise ValueError("grace must be None or a number of seconds >= 0")
        in_main = threading.current_thread() is threading.main_thread()
        if handle_signals and not in_main:
            raise ValueError("signal handlers can only be installed from the main thread")
        self.queue = queue
        self.handler = handler
        self.batch = batch
        self.concurrency = concurrency
        self.burst = burst
        self.max_jobs = max_jobs
        self.grace = grace
        self.handle_signals = in_main if handle_signals is None else bool(handle_signals)
        self.stopping = threading.Event()
        self.slots: List[_Slot] = []
        self.lock = threading.Lock()
        self.count = 0  # jobs started, against max_jobs
        self.timer: Optional[threading.Timer] = None
        self.grace_over = False
        self.signals_installed = False
        self.visibility, self.batch_seconds = lease_window(queue)

    # ---------------------------------------------------------------- control

    def request_stop(self, why: str, me: Optional[_Slot] = None) -> None:
        """Sets the stop flag and wakes every loop's fetch but *me*'s (a
        loop that decided to stop itself is not waiting: a wakeup would be
        left pending on its handle for the next fetch)."""
        if not self.stopping.is_set():
            log.info("queue %s: stopping (%s)", self.queue.name, why)
        self.stopping.set()
        for slot in self.slots:
            if slot is not me:
                slot.queue.wakeup()

    def interrupt(self, why: str) -> None:
        """Raises WorkerInterrupt in every handler still running."""
        for slot in self.slots:
            if not slot.busy:
                continue
            log.warning("queue %s: interrupting the running job (%s)", self.queue.name, why)
            if slot.thread_id == threading.get_ident():
                raise WorkerInterrupt(why)
            # Takes effect at the handler's next Python instruction.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(slot.thread_id),
                                                       ctypes.py_object(WorkerInterrupt))

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.grace_over:
            self.interrupt("the grace period of %s s is over" % self.grace)
            return
        if not self.stopping.is_set():
            self.request_stop("%s: finishing the current job; send it again to interrupt it"
                              % name)
            if self.grace is not None and self.timer is None:
                self.timer = threading.Timer(self.grace, self._grace_over, (signum,))
                self.timer.daemon = True
                self.timer.start()
            return
        self.interrupt("%s received again" % name)

    def _grace_over(self, signum: int) -> None:
        with self.lock:
            if self.timer is None:  # run() has finished
                return
            self.grace_over = True
            main = threading.main_thread().ident
            for slot in self.slots:
                if not slot.busy:
                    continue
                if slot.thread_id == main and self.signals_installed:
                    # A real signal, so that a handler blocked in a system
                    # call (sleep, a socket) is interrupted too; our handler
                    # then raises WorkerInterrupt in it.
                    signal.pthread_kill(main, signum)
                else:
                    log.warning("queue %s: the grace period of %s s is over: interrupting "
                                "the running job", self.queue.name, self.grace)
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(slot.thread_id), ctypes.py_object(WorkerInterrupt))

    # ---------------------------------------------------------------- running

    def run(self) -> int:
        q = self.queue
        q._live()
        q._stop.clear()
        self.slots = [_Slot(q)] + [_Slot(q._clone(i)) for i in range(1, self.concurrency)]
        previous: Dict[int, Any] = {}
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
            self.signals_installed = True
        log.info("queue %s: worker started on %s (batch %s, concurrency %d%s)", q.name,
                 q._description, self.batch or "adaptive", self.concurrency,
                 ", burst" if self.burst else "")
        if q.warning:
            log.warning("queue %s: %s", q.name, q.warning)
        try:
            if self.concurrency == 1:
                self._loop(self.slots[0])
            else:
                self._run_threads()
        finally:
            with self.lock:
                timer, self.timer = self.timer, None
                self.signals_installed = False
            if timer is not None:
                timer.cancel()
            for sig, handler in previous.items():
                # None: a handler set outside Python; the default is closest.
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            for slot in self.slots[1:]:
                slot.queue.close()
        n = sum(s.handled for s in self.slots)
        log.info("queue %s: worker stopped after %d job(s)", q.name, n)
        return n

    def _run_threads(self) -> None:
        errors: List[BaseException] = []

        def target(slot: _Slot) -> None:
            try:
                self._loop(slot)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                errors.append(e)
                self.request_stop("a worker thread failed: %r" % (e,))

        threads = [threading.Thread(target=target, args=(s,), daemon=True,
                                    name="reactis-worker-%d" % i)
                   for i, s in enumerate(self.slots)]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                if self.queue._stop.is_set():
                    self.request_stop("stop() was called")
                for t in threads:
                    t.join(SLICE_MS / 1000.0)
        except WorkerInterrupt:
            pass  # the supervisor is not running a job: just wait for the threads
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _next_batch_size(self, size: int, n: int, elapsed: float) -> int:
        if self.batch is not None:
            return self.batch
        return adaptive_batch(self.batch_seconds, n, elapsed)

    def _take(self, n: int) -> int:
        """How many jobs this loop may still start (max_jobs), reserving them."""
        if self.max_jobs is None:
            return n
        with self.lock:
            n = min(n, self.max_jobs - self.count)
            self.count += max(n, 0)
            return n

    def _loop(self, slot: _Slot) -> None:
        slot.thread_id = threading.get_ident()
        try:
            self._loop_body(slot)
        except WorkerInterrupt:
            # Arrived after the handler it was meant for had returned.
            slot.busy = False
            self.request_stop("interrupted")

    def _loop_body(self, slot: _Slot) -> None:
        # The acks of a batch go with the next fetch, in its round trip; the
        # last ones when the loop ends.
        acks: List["Job"] = []
        try:
            self._fetch_and_run(slot, acks)
        finally:
            if acks:
                self._ack(slot.queue, acks)

    def _fetch_and_run(self, slot: _Slot, acks: List["Job"]) -> None:
        q = slot.queue
        size = self.batch or 1
        failures = 0  # consecutive transient errors
        while not self.stopping.is_set() and not q._stop.is_set():
            want = self._take(size)
            if want <= 0:
                # This loop is done; the others end as they find the same.
                log.debug("queue %s: max_jobs reached", q.name)
                break
            try:
                # Acks not confirmed stay in the list and go with the next try.
                rc, jobs = q._fetch_once(want, 0 if self.burst else SLICE_MS, acks)
            except TRANSIENT as e:
                if self.max_jobs is not None:
                    with self.lock:
                        self.count -= want
                failures += 1
                delay = min(5.0, 0.1 * 2 ** min(failures, 6))
                log.warning("%s; trying again in %.1f s", e, delay)
                self.stopping.wait(delay)
                continue
            if self.max_jobs is not None and len(jobs) < want:
                with self.lock:
                    self.count -= want - len(jobs)
            failures = 0
            if rc == cimpl.WOKEN or q.closed:
                self.request_stop("woken up" if not q.closed else "the queue was closed", slot)
                break
            if not jobs:
                if self.burst and rc != cimpl.EINTR:
                    # Only this loop: another may still hold jobs, and its
                    # retries may fall due.
                    log.debug("queue %s: burst: nothing is due", q.name)
                    break
                continue
            t0 = time.monotonic()
            acks.extend(self._run_batch(slot, jobs))
            size = self._next_batch_size(size, len(jobs), time.monotonic() - t0)

    def _run_batch(self, slot: _Slot, jobs: List["Job"]) -> List["Job"]:
        """Runs the batch; returns the jobs done and not acked yet (they go
        with the next fetch). Acked here: what is done once a batch has run
        past a second, and what is done when the batch ends early."""
        q = slot.queue
        acks: List["Job"] = []
        lease_from = time.monotonic()
        first_ack = 0.0
        i = 0
        finished = False
        try:
            for i, job in enumerate(jobs):
                if self.stopping.is_set() or q._stop.is_set():
                    q._give_back(jobs[i:], "the worker stopped before this job")
                    return []  # the acks in hand go now (finally)
                now = time.monotonic()
                if now - lease_from > self.visibility / 2 and i + 1 < len(jobs):
                    # A slow batch: keep the leases of the jobs still waiting.
                    self._extend(q, jobs[i:])
                    lease_from = now
                if acks and now - first_ack > 1.0:
                    self._ack(q, acks)
                    acks = []
                if not self._run_one(slot, job):
                    continue
                if not acks:
                    first_ack = time.monotonic()
                acks.append(job)
            finished = True
            return acks
        except BaseException:
            # KeyboardInterrupt, SystemExit: the jobs not started go back at
            # once rather than after their visibility timeout.
            held = set(map(id, acks))
            q._give_back([j for j in jobs[i:] if id(j) not in held],
                         "the worker stopped before this job")
            raise
        finally:
            if acks and not finished:
                self._ack(q, acks)

    def _run_one(self, slot: _Slot, job: "Job") -> bool:
        """Runs the handler; True when the job is to be acked in the batch."""
        q = slot.queue
        slot.handled += 1
        t0 = time.monotonic()
        try:
            slot.busy = True
            self.handler(job)
            slot.busy = False
        except WorkerInterrupt:
            slot.busy = False
            q._give_back([job], "the worker was interrupted during this job")
            self.request_stop("interrupted", slot)
            return False
        except Exception as e:  # noqa: BLE001 - the handler's failure, logged
            slot.busy = False
            log.exception("queue %s: job %r failed (attempt %d)", q.name, job.id, job.attempt)
            if not job.done:
                try:
                    dead = job.retry(error="%s: %s" % (type(e).__name__, e))
                    if dead:
                        log.error("queue %s: job %r moved to the dead letters after %d "
                                  "attempt(s)", q.name, job.id, job.attempt)
                except Exception as e2:  # noqa: BLE001
                    log.warning("queue %s: could not retry job %r (%s); it is redelivered "
                                "after the visibility timeout", q.name, job.id, e2)
            return False
        except BaseException:
            # SystemExit, KeyboardInterrupt raised by the handler itself.
            slot.busy = False
            q._give_back([job], "the handler raised a BaseException")
            raise
        log.debug("queue %s: job %r done in %.3f s", q.name, job.id, time.monotonic() - t0)
        return not job.done

    def _ack(self, q: "Queue", jobs: List["Job"]) -> None:
        try:
            if len(jobs) == 1:
                jobs[0].ack()
                return
            acked = q.ack_many(jobs)
            if acked < len(jobs):
                log.warning("queue %s: %d ack(s) refused: those deliveries had been "
                            "reclaimed after the visibility timeout", q.name, len(jobs) - acked)
        except Exception as e:  # noqa: BLE001
            log.warning("queue %s: could not ack %d job(s) (%s); they are redelivered after "
                        "the visibility timeout", q.name, len(jobs), e)

    def _extend(self, q: "Queue", jobs: List["Job"]) -> None:
        for job in jobs:
            try:
                job.extend()
            except Exception as e:  # noqa: BLE001
                log.warning("queue %s: could not extend the lease of job %r (%s)", q.name,
                            job.id, e)
