"""Queue.work(), the worker loop, and `python -m reactis worker` under
signals."""

import datetime
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import reactis
from conftest import child_env


@pytest.fixture
def qname(request):
    return "wq.%s.%d" % (request.node.name, time.monotonic_ns())


def test_new_signature_and_options(url, qname):
    with reactis.Queue(qname, url=url, visibility_timeout=0.3, backoff_base=0.05,
                       max_attempts=3) as q:
        assert q.name == qname
        assert q._options["visibility_timeout_ms"] == 300
        assert q._options["backoff_base_ms"] == 50
    with pytest.raises(TypeError):
        reactis.Queue(qname, url, visibility_timeout=1, visibility_timeout_ms=1000)
    with pytest.raises(ValueError):
        reactis.Queue(qname, url, visibility_timeout=-1)
    with pytest.warns(DeprecationWarning):
        old = reactis.Queue(url, qname)  # the 0.1 order still works
    assert old.name == qname
    old.close()


def test_redis_url_default(url, qname, monkeypatch):
    monkeypatch.setenv("REDIS_URL", url)
    with reactis.Client() as c:
        assert c.ping() and c.url == url
    with reactis.Queue(qname) as q:
        q.schedule(b"x")
        assert q.stats().ready + q.stats().scheduled >= 1
    with reactis.Subscriber() as sub:
        sub.subscribe("env.chan")
        reactis.Client().publish("env.chan", b"hi")
        assert sub.get_message(timeout=5).data == b"hi"
    monkeypatch.delenv("REDIS_URL")
    assert "localhost:6379/0" in repr(reactis.Client())


def test_job_datetimes(url, qname):
    with reactis.Queue(qname, url) as q:
        s = q.schedule("x", delay=0.05)
        assert s.due_at.tzinfo is not None
        (job,) = q.fetch(timeout=5)
        assert job.due_at == s.due_at
        assert job.due_at.utcoffset() == datetime.timedelta(0)
        assert job.enqueued_at <= job.due_at <= job.delivered_at
        now = datetime.datetime.now(datetime.timezone.utc)
        assert abs((now - job.delivered_at).total_seconds()) < 5
        job.ack()
        assert q.stats().next_due_at is None


def test_jobs_batch_and_early_exit_gives_back(url, qname):
    with reactis.Queue(qname, url) as q:
        q.schedule_many([{"payload": b"%d" % i, "id": "j%d" % i} for i in range(5)])
        seen = []
        for job in q.jobs(batch=5, timeout=2):
            seen.append(job)
            job.ack()
            if len(seen) == 2:
                break
        st = q.stats()
        assert st.in_flight == 0 and st.acked == 2
        # The three not yielded were given back at once, not left to time out.
        rest = []
        while len(rest) < 3:
            batch = q.fetch(max=10, timeout=5)
            assert batch
            rest += batch
        assert sorted(j.id for j in rest) == [b"j2", b"j3", b"j4"]
        assert all(j.attempt == 2 for j in rest)
        q.ack_many(rest)
        assert list(q.jobs(batch=3, timeout=0.2)) == []


def test_jobs_default_prefetches_and_acks_in_batches(url, qname):
    """The default jobs() loop fetches more than one job per round trip once
    it has seen that the handler is fast, and its `with job:` acks all
    reach the server by the end of the loop."""
    n = 300
    with reactis.Queue(qname, url) as q:
        q.schedule_many([b"%d" % i for i in range(n)])
        got, most_in_flight = 0, 0
        for job in q.jobs(timeout=0.5):
            with job:
                got += 1
            if got % 50 == 0:
                most_in_flight = max(most_in_flight, q.stats().in_flight)
        st = q.stats()
        assert got == n
        assert st.acked == n and st.in_flight == 0 and st.ready == 0
        # Prefetched (and done but not yet acked) jobs are in flight at once:
        # with one fetch and one ack per job this stays at 1.
        assert most_in_flight > 1


def test_jobs_deferred_acks_are_never_lost(url, qname):
    """A loop that dies with `with job:` acks not yet sent (no flush, no
    give-back: the generator is left suspended, as in a crash) loses
    nothing: those jobs are delivered again after the visibility timeout."""
    n = 200
    with reactis.Queue(qname, url, visibility_timeout=1, consumer="crashed") as q1, \
            reactis.Queue(qname, url, visibility_timeout=1, consumer="other") as q2:
        q1.schedule_many([{"payload": b"%d" % i, "id": "m%d" % i} for i in range(n)])
        it = q1.jobs(timeout=2)
        done = set()
        # Warm the adaptive batch up, then stop mid-batch without resuming.
        for _ in range(150):
            job = next(it)
            with job:
                done.add(job.id)
        acked_at_crash = q1.stats().acked
        assert acked_at_crash < len(done)  # some done jobs were not acked yet
        seen = set()
        deadline = time.monotonic() + 10
        while len(seen) < n - acked_at_crash and time.monotonic() < deadline:
            jobs = q2.fetch(100, timeout=0.5)
            seen.update(j.id for j in jobs)
            q2.ack_many(jobs)
        # Everything not acked before the "crash" is delivered again,
        # including the jobs whose `with` block had ended.
        assert len(seen) == n - acked_at_crash
        assert len(done & seen) == len(done) - acked_at_crash
        assert len(done | seen) == n
        it.close()  # its deferred acks are now stale: refused and logged
        assert q1.stats().in_flight == 0


def test_jobs_early_exit_acks_done_jobs_at_once(url, qname):
    with reactis.Queue(qname, url) as q:
        q.schedule_many([b"%d" % i for i in range(300)])
        got = 0
        for job in q.jobs(timeout=2):
            with job:
                got += 1
            if got == 250:
                break
        st = q.stats()
        # The 250 done are acked, the prefetched rest given back: none is
        # left in flight to wait for its visibility timeout.
        assert st.acked == 250 and st.in_flight == 0
        rest = q.fetch(100, timeout=5)
        assert len(rest) == 50
        q.ack_many(rest)


def test_jobs_extend_sends_deferred_acks_first(url, qname):
    with reactis.Queue(qname, url) as q:
        q.schedule_many([b"%d" % i for i in range(300)])
        it = q.jobs(timeout=2)
        for _ in range(200):
            with next(it):
                pass
        job = next(it)
        job.extend(60)
        st = q.stats()
        # Only the job being extended and the prefetched ones are in flight.
        assert st.acked == 200
        with job:
            pass
        it.close()
        assert q.stats().acked == 201


def test_handler_failure_backoff_then_dead_letter(url, qname, caplog):
    caplog.set_level(logging.INFO, logger="reactis")
    times = []

    def handler(job):
        times.append((time.monotonic(), job.attempt))
        raise RuntimeError("gateway down %d" % job.attempt)

    with reactis.Queue(qname, url, max_attempts=3, backoff_base=0.2, backoff_max=1) as q:
        q.schedule(b"sms", id="AAA")
        assert q.work(handler, max_jobs=3) == 3
        assert [a for _, a in times] == [1, 2, 3]
        gaps = [b[0] - a[0] for a, b in zip(times, times[1:])]
        # Backoff with jitter: base * 2^(n-1) * [0.5, 1].
        assert 0.09 <= gaps[0] <= 0.6 and 0.19 <= gaps[1] <= 1.0, gaps
        (dead,) = q.dead_letters()
        assert dead.id == b"AAA" and dead.attempt == 3 and "gateway down 3" in dead.error
        st = q.stats()
        assert (st.failures, st.dead_total, st.in_flight, st.scheduled) == (3, 1, 0, 0)
    text = caplog.text
    assert "failed (attempt 1)" in text and "RuntimeError: gateway down 1" in text
    assert "moved to the dead letters after 3 attempt(s)" in text


def test_handler_settles_itself(url, qname):
    def handler(job):
        if job.id == b"r" and job.attempt == 1:
            job.retry(delay=0)
        elif job.id == b"f":
            job.fail("nope")
        elif job.id == b"a":
            job.ack()

    with reactis.Queue(qname, url) as q:
        q.schedule_many([{"payload": b"", "id": i} for i in ("r", "f", "a", "n")])
        assert q.work(handler, max_jobs=5) == 5
        st = q.stats()
        assert (st.acked, st.dead, st.in_flight, st.failures) == (3, 1, 0, 2)


def test_adaptive_batch_drains_and_acks(url, qname):
    with reactis.Queue(qname, url) as q:
        q.schedule_many([b"m%d" % i for i in range(500)])
        seen = set()
        assert q.work(lambda job: seen.add(job.payload), burst=True) == 500
        assert len(seen) == 500
        st = q.stats()
        assert (st.acked, st.in_flight, st.ready) == (500, 0, 0)


def test_signal_handlers_installed_in_main_thread_only(url, qname):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    during = []
    with reactis.Queue(qname, url) as q:
        q.schedule(b"x")
        q.work(lambda job: during.append(signal.getsignal(signal.SIGTERM)), max_jobs=1)
        assert during[0] not in (before[0], signal.SIG_DFL)
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

        # From another thread: no handlers; stop() ends the loop.
        q.schedule(b"y")
        out = []

        def run():
            out.append(q.work(lambda job: during.append(signal.getsignal(signal.SIGTERM))))

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 5
        while len(during) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert during[1] == before[0]
        time.sleep(0.3)  # now blocked in a fetch
        t0 = time.monotonic()
        q.stop()
        t.join(5)
        assert not t.is_alive() and out == [1] and time.monotonic() - t0 < 1.0
        errors = []

        def refused():
            try:
                q.work(print, handle_signals=True)
            except ValueError as e:
                errors.append(e)

        t = threading.Thread(target=refused)
        t.start()
        t.join(5)
        assert len(errors) == 1 and "main thread" in str(errors[0])


def test_concurrency_threads(url, qname):
    threads = set()
    lock = threading.Lock()

    def handler(job):
        with lock:
            threads.add(threading.get_ident())
        time.sleep(0.05)

    with reactis.Queue(qname, url) as q:
        q.schedule_many([b"%d" % i for i in range(12)])
        t0 = time.monotonic()
        assert q.work(handler, concurrency=4, batch=1, burst=True) == 12
        assert time.monotonic() - t0 < 0.5  # in parallel: one after another takes 0.6 s
        assert len(threads) >= 2
        st = q.stats()
        assert (st.acked, st.in_flight) == (12, 0)


def test_worker_survives_a_redis_restart(redis_factory, qname):
    server = redis_factory()
    got = []
    with reactis.Queue(qname, server.url, block_cap=0.2) as q:
        t = threading.Thread(target=lambda: q.work(lambda job: got.append(job.payload)))
        t.start()
        try:
            q2 = reactis.Queue(qname, server.url)
            q2.schedule(b"before")
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                time.sleep(0.02)
            server.kill()
            time.sleep(0.3)
            server.start(port=server.port)
            try:
                q2.schedule(b"after")
            except reactis.ConnectionError:
                # The first call after a lost link reports it (a command is
                # never sent twice); the next one reconnects.
                q2.schedule(b"after")
            deadline = time.monotonic() + 10
            while len(got) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert got == [b"before", b"after"]
            q2.close()
        finally:
            q.stop()
            t.join(10)
        assert not t.is_alive()


# ------------------------------------------------------------ a worker process under signals

HANDLER = '''
import os, time
def slow(job):
    d = os.environ["MARKS"]
    open(os.path.join(d, "start-%s" % job.id.decode()), "w").close()
    time.sleep(float(os.environ.get("SLEEP", "0.8")))
    open(os.path.join(d, "done-%s" % job.id.decode()), "w").close()
'''


def _start_worker(tmp_path, url, qname, sleep, *extra):
    (tmp_path / "slowjobs.py").write_text(textwrap.dedent(HANDLER))
    env = dict(child_env(), MARKS=str(tmp_path), SLEEP=str(sleep))
    return subprocess.Popen([sys.executable, "-m", "reactis", "--url", url, "worker",
                             "slowjobs:slow", "--queue", qname, *extra],
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the worker did not start the job: %s" % proc.communicate()[1])
        time.sleep(0.01)


def test_sigterm_mid_job_finishes_it_and_exits_0(url, qname, tmp_path):
    with reactis.Queue(qname, url) as q:
        q.schedule(b"1", id="J1")
        q.schedule(b"2", id="J2")  # fetched in the same batch or not: never lost
        p = _start_worker(tmp_path, url, qname, 0.8, "--batch", "2")
        try:
            _wait_for(tmp_path / "start-J1", p)
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=10)
            elapsed = time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, err
        assert elapsed < 2.0, elapsed
        assert (tmp_path / "done-J1").exists()  # the job in hand was finished ...
        assert not (tmp_path / "start-J2").exists()
        st = q.stats()
        assert st.acked == 1 and st.in_flight == 0  # ... and acked; J2 given back
        (job,) = q.fetch(timeout=5)
        assert job.id == b"J2"
        job.ack()
        assert "SIGTERM" in err and "worker stopped after 1 job(s)" in err


def test_second_sigterm_interrupts_and_gives_the_job_back(url, qname, tmp_path):
    with reactis.Queue(qname, url) as q:
        q.schedule(b"1", id="LONG")
        p = _start_worker(tmp_path, url, qname, 30)
        try:
            _wait_for(tmp_path / "start-LONG", p)
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=10)
            elapsed = time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, err
        assert elapsed < 1.5, elapsed
        assert not (tmp_path / "done-LONG").exists()
        assert "gave job b'LONG' back" in err
        # Not lost: due again at once, for the next worker.
        (job,) = q.fetch(timeout=5)
        assert job.id == b"LONG" and job.attempt == 2
        job.ack()


def test_grace_period_interrupts_a_long_job(url, qname, tmp_path):
    with reactis.Queue(qname, url) as q:
        q.schedule(b"1", id="G")
        p = _start_worker(tmp_path, url, qname, 30, "--grace", "0.3")
        try:
            _wait_for(tmp_path / "start-G", p)
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10)
            elapsed = time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, err
        assert 0.25 < elapsed < 2.0, elapsed  # the 30 s sleep was cut short
        assert "grace period" in err and not (tmp_path / "done-G").exists()
        (job,) = q.fetch(timeout=5)
        assert job.id == b"G"
        job.ack()
