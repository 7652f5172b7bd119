"""A subscriber blocked in listen() stops at once on SIGINT and SIGTERM.

Each case runs in a child process that subscribes, prints "ready" and
blocks; the parent sends the signal and measures how long the child takes to
exit. 0.5 s is the budget (the waits are sliced at 200 ms at most)."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import child_env

BUDGET = 0.5

PRELUDE = """
import os, signal, sys, threading, time
import reactis
sub = reactis.Subscriber(sys.argv[1], health_check_interval=60)
sub.subscribe("signals.never")
"""


def run_child(url, body, sig, expect_rc, expect_out, delay=0.3):
    code = PRELUDE + textwrap.dedent(body)
    proc = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(), text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read() if proc.poll() is not None else "")
        time.sleep(delay)  # let it settle into the wait
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail("the child did not stop: %s" % err)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert expect_out in out, (out, err)
    assert proc.returncode == expect_rc, (proc.returncode, out, err)
    assert elapsed < BUDGET, "took %.3f s to stop" % elapsed
    return elapsed


def test_sigint_raises_keyboard_interrupt(url):
    run_child(url, """
        print("ready", flush=True)
        try:
            for msg in sub.listen():
                pass
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(3)
        """, signal.SIGINT, 3, "KeyboardInterrupt")


def test_sigterm_handler_raising_system_exit(url):
    run_child(url, """
        def on_term(signum, frame):
            raise SystemExit(4)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        try:
            for msg in sub.listen():
                pass
        finally:
            print("finally ran", flush=True)
        """, signal.SIGTERM, 4, "finally ran")


def test_sigterm_graceful_wakeup(url):
    """The Procfile way: the handler asks the loop to stop; listen() ends."""
    run_child(url, """
        signal.signal(signal.SIGTERM, lambda s, f: sub.wakeup())
        print("ready", flush=True)
        for msg in sub.listen():
            pass
        sub.close()
        print("stopped cleanly", flush=True)
        """, signal.SIGTERM, 0, "stopped cleanly")


def test_sigterm_default_action(url):
    run_child(url, """
        print("ready", flush=True)
        for msg in sub.listen():
            pass
        """, signal.SIGTERM, -signal.SIGTERM, "")


def test_get_message_none_timeout_and_sigint(url):
    run_child(url, """
        print("ready", flush=True)
        try:
            sub.get_message(timeout=None)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(3)
        """, signal.SIGINT, 3, "KeyboardInterrupt")


def test_signal_delivered_to_another_thread(url):
    """The kernel may run the C-level handler on any thread; the main thread,
    blocked in C, then only notices between slices (<= 200 ms)."""
    run_child(url, """
        # The main thread blocks SIGINT, so the kernel must hand it to the
        # helper thread, which unblocks it for itself.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        def taker():
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            time.sleep(30)
        threading.Thread(target=taker, daemon=True).start()
        time.sleep(0.05)
        print("ready", flush=True)
        try:
            for msg in sub.listen():
                pass
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(3)
        """, signal.SIGINT, 3, "KeyboardInterrupt")


def test_worker_thread_stopped_by_sigterm(url):
    """listen() in a worker thread; the main thread's handler closes the
    subscriber, which ends the worker's loop at once."""
    run_child(url, """
        done = threading.Event()
        def worker():
            for msg in sub.listen():
                pass
            done.set()
        t = threading.Thread(target=worker)
        t.start()
        signal.signal(signal.SIGTERM, lambda s, f: sub.close())
        print("ready", flush=True)
        while not done.wait(0.05):
            pass
        t.join()
        print("worker stopped", flush=True)
        """, signal.SIGTERM, 0, "worker stopped")


def test_queue_worker_stopped_by_sigint(url):
    run_child(url, """
        q = reactis.Queue("signals.queue", sys.argv[1])
        print("ready", flush=True)
        try:
            for job in q.jobs():
                pass
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(3)
        """, signal.SIGINT, 3, "KeyboardInterrupt")


def test_queue_worker_graceful_sigterm(url):
    run_child(url, """
        q = reactis.Queue("signals.queue2", sys.argv[1])
        signal.signal(signal.SIGTERM, lambda s, f: q.wakeup())
        print("ready", flush=True)
        n = q.work(lambda job: None)
        q.close()
        print("stopped cleanly", n, flush=True)
        """, signal.SIGTERM, 0, "stopped cleanly")


def test_calls_that_do_not_wait_survive_signals_whose_handler_returns(url):
    # A signal whose handler returns (here SIGALRM every 200 us) makes the
    # core give back RX_EINTR from whatever system call it was in. Calls that
    # do not wait are tried again: every schedule and touch gets through, and
    # none returns a result for a message that was never scheduled.
    import reactis

    hits = []
    old = signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
    n = 3000
    try:
        with reactis.Queue("sigq-%d" % time.monotonic_ns(), url=url) as q, \
                reactis.Timers("sigt-%d" % time.monotonic_ns(), url=url) as t:
            signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
            try:
                for i in range(n):
                    r = q.schedule(b"p", id=b"m%d" % i, delay=3600)
                    assert r.outcome == "added" and r.due_ms > 0
                    assert t.touch(b"t%d" % i, 3600, b"d") is True
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            st = q.stats()
            assert st.scheduled == n
            assert t.stats().scheduled == n
    finally:
        signal.signal(signal.SIGALRM, old)
    assert len(hits) > 100  # the signals did arrive during the calls
