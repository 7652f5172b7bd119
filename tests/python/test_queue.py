"""The delayed queue through the Python wrapper."""

import datetime
import threading
import time

import pytest
from conftest import raw_command

import reactis


@pytest.fixture
def qname(request):
    return "pyq.%s.%d" % (request.node.name, time.monotonic_ns())


@pytest.fixture
def queue(url, qname):
    with reactis.Queue(qname, url, backoff_base_ms=50, backoff_max_ms=100) as q:
        yield q


def test_round_trip_binary(queue):
    payload = b"\x00\xff" + bytes(range(256))
    s = queue.schedule(payload)
    assert s.outcome == "added" and len(s.id) == 12 and s.due_ms > 0
    jobs = queue.fetch(timeout=5)
    assert len(jobs) == 1
    job = jobs[0]
    assert (job.id, job.payload, job.attempt, job.failures, job.crashes) == (s.id, payload, 1, 0, 0)
    assert type(job.payload) is bytes and job.error == "" and job.token
    job.ack()
    assert job.done
    with pytest.raises(reactis.StaleDeliveryError) as ei:
        queue.ack(job.token)
    assert ei.value.name == "ESTALE"
    assert queue.fetch(timeout=0) == []


def test_str_payload_and_id(queue):
    s = queue.schedule("héllo", id="invoice:42")
    assert s.id == b"invoice:42"
    (job,) = queue.fetch(timeout=5)
    assert job.payload == "héllo".encode() and job.id == b"invoice:42"
    queue.ack(job)


def test_delay_and_at(queue):
    t0 = time.monotonic()
    queue.schedule(b"later", delay=0.4)
    assert queue.fetch(timeout=0) == []
    jobs = queue.fetch(timeout=5)
    assert [j.payload for j in jobs] == [b"later"]
    assert time.monotonic() - t0 >= 0.3
    queue.ack(jobs[0])

    at = datetime.datetime.now() + datetime.timedelta(seconds=0.3)
    s = queue.schedule(b"at", at=at)
    assert abs(s.due - at.timestamp()) < 1.0
    (job,) = queue.fetch(timeout=5)
    assert job.payload == b"at"
    job.ack()
    with pytest.raises(TypeError):
        queue.schedule(b"x", delay=1, at=time.time())
    with pytest.raises(TypeError):
        queue.schedule(b"x", delay="soon")


def test_ids_deduplicate(queue):
    assert queue.schedule(b"one", id=b"k\x00", delay=60).outcome == "added"
    assert queue.schedule(b"two", id=b"k\x00", delay=60).outcome == "exists"
    assert queue.schedule(b"three", id=b"k\x00", delay=0, replace=True).outcome == "replaced"
    (job,) = queue.fetch(timeout=5)
    assert (job.id, job.payload) == (b"k\x00", b"three")
    job.ack()


def test_cancel_reschedule_run_now(queue):
    queue.schedule(b"c", id="c", delay=60)
    assert queue.cancel("c") is True
    assert queue.cancel("c") is False
    queue.schedule(b"r", id="r", delay=60)
    assert queue.reschedule("r", delay=120) is True
    assert queue.run_now("r") is True
    assert queue.run_now("nope") is False
    (job,) = queue.fetch(timeout=5)
    assert job.id == b"r"
    job.ack()


def test_context_manager_acks_and_retries(queue):
    queue.schedule(b"flaky", id="flaky")
    (job,) = queue.fetch(timeout=5)
    with pytest.raises(RuntimeError):
        with job:
            raise RuntimeError("boom")
    assert job.done
    (again,) = queue.fetch(timeout=5)
    assert again.id == b"flaky" and again.attempt == 2 and again.failures == 1
    assert "boom" in again.error
    with again:
        pass
    assert again.done
    assert queue.stats().acked >= 1


def test_dead_letters(url, qname):
    with reactis.Queue(qname, url, max_attempts=2, backoff_base_ms=10, backoff_max_ms=20) as q:
        q.schedule(b"bad", id="bad")
        (job,) = q.fetch(timeout=5)
        assert job.retry(delay=0, error="first") is False
        (job,) = q.fetch(timeout=5)
        assert job.retry(delay=0, error=b"second") is True  # max_attempts reached
        q.schedule(b"worse", id="worse")
        (job,) = q.fetch(timeout=5)
        job.fail("fatal")
        dead = q.dead_letters()
        assert [d.id for d in dead] == [b"bad", b"worse"]
        assert dead[0].error == "second" and dead[1].error == "fatal"
        assert q.stats().dead == 2
        assert q.requeue_dead(dead[0]) == 1
        (job,) = q.fetch(timeout=5)
        assert job.id == b"bad" and job.attempt == 1
        job.ack()
        assert q.purge_dead() == 1
        assert q.dead_letters() == []


def test_visibility_timeout_reclaims(url, qname):
    opts = dict(visibility_timeout_ms=300, block_cap_ms=100)
    with reactis.Queue(qname, url, consumer="a", **opts) as a, \
            reactis.Queue(qname, url, consumer="b", **opts) as b:
        a.schedule(b"slow")
        (first,) = a.fetch(timeout=5)
        time.sleep(0.4)
        jobs = b.fetch(timeout=5)
        assert len(jobs) == 1
        second = jobs[0]
        assert second.attempt == 2 and second.crashes == 1
        with pytest.raises(reactis.StaleDeliveryError):
            first.ack()
        second.ack()


def test_extend_keeps_the_lease(url, qname):
    opts = dict(visibility_timeout_ms=300, block_cap_ms=100)
    with reactis.Queue(qname, url, consumer="a", **opts) as a, \
            reactis.Queue(qname, url, consumer="b", **opts) as b:
        a.schedule(b"long")
        (job,) = a.fetch(timeout=5)
        job.extend(5)
        time.sleep(0.4)
        assert b.fetch(timeout=0.3) == []
        job.ack()


def test_payload_too_large(url, qname):
    with reactis.Queue(qname, url, max_payload=10) as q:
        with pytest.raises(reactis.PayloadTooLargeError) as ei:
            q.schedule(b"x" * 11)
        assert isinstance(ei.value, ValueError)
        q.schedule(b"x" * 10)


def test_schedule_many(queue):
    results = queue.schedule_many([b"a", {"payload": b"b", "id": "b"},
                                   {"payload": "c", "delay": 60, "id": "c"}])
    assert [r.outcome for r in results] == ["added"] * 3
    assert results[1].id == b"b" and results[2].id == b"c"
    assert queue.schedule_many([{"payload": b"b2", "id": "b"}])[0].outcome == "exists"
    jobs = queue.fetch(max=10, timeout=5)
    while len(jobs) < 2:
        jobs += queue.fetch(max=10, timeout=5)
    assert sorted(j.payload for j in jobs) == [b"a", b"b"]
    assert queue.ack_many(jobs) == 2
    assert queue.schedule_many([]) == []
    with pytest.raises(TypeError):
        queue.schedule_many([{"payload": b"x", "bogus": 1}])


def test_stats(queue):
    queue.schedule(b"later", delay=60)
    queue.schedule(b"now")
    st = queue.stats()
    assert isinstance(st, reactis.QueueStats)
    assert st.scheduled + st.ready >= 2 and st.now_ms > 0


def test_wakeup_ends_jobs_loop(queue):
    threading.Timer(0.3, queue.wakeup).start()
    t0 = time.monotonic()
    assert list(queue.jobs()) == []
    assert time.monotonic() - t0 < 1.5


def test_work_acks_and_retries(queue):
    queue.schedule(b"ok")
    queue.schedule(b"fails-once", id="f")
    seen = []

    def handler(job):
        seen.append((job.payload, job.attempt))
        if job.payload == b"fails-once" and job.attempt == 1:
            raise ValueError("not yet")
        if len([s for s in seen if s[0] == b"fails-once"]) == 2:
            queue.wakeup()

    assert queue.work(handler) == 3
    assert (b"ok", 1) in seen and (b"fails-once", 2) in seen
    st = queue.stats()
    assert st.in_flight == 0 and st.failures >= 1


def test_other_threads_progress_during_fetch(queue, url):
    out = []
    t = threading.Thread(target=lambda: out.extend(queue.fetch(timeout=3)))
    t.start()
    time.sleep(0.1)
    t0, spins = time.monotonic(), 0
    while time.monotonic() - t0 < 0.3:
        spins += 1
    assert spins > 10000
    with reactis.Queue(queue.name, url) as producer:
        producer.schedule(b"wake")
    t.join(5)
    assert [j.payload for j in out] == [b"wake"]
    out[0].ack()


def test_argument_checks(queue):
    with pytest.raises(ValueError):
        queue.fetch(max=0)
    with pytest.raises(TypeError):
        queue.schedule(5)
    with pytest.raises(TypeError):
        queue.ack(5)
    with pytest.raises(reactis.URLError):
        reactis.Queue("q", "redis://localhost", no_such_option=1)
    with pytest.raises(reactis.InvalidArgumentError) as ei:
        reactis.Queue("bad{name}", "redis://localhost")
    assert not isinstance(ei.value, reactis.URLError)
    with pytest.raises(TypeError):
        reactis.Queue(b"bytes-name", "redis://localhost")


def _ready_ids(port, qname):
    """Entry ids of the queue's ready stream (deliveries still pending)."""
    return [e[0].decode() for e in raw_command(port, "XRANGE", "rx:{%s}:s" % qname, "-", "+")]


def test_acked_entries_leave_the_stream_in_any_order(redis_server, url, qname):
    # An ack trims the ready stream below the oldest pending delivery and
    # deletes the rest one by one: whatever the order of acks across
    # consumers, exactly the acked entries go, and a second ack is stale.
    port = redis_server.port
    with reactis.Queue(qname, url) as a, reactis.Queue(qname, url) as b:
        a.schedule_many([b"a%d" % i for i in range(30)])
        ja = a.fetch(10, timeout=5)
        jb = b.fetch(10, timeout=5)
        jc = a.fetch(10, timeout=5)
        assert len(ja) == len(jb) == len(jc) == 10
        assert len(_ready_ids(port, qname)) == 30
        # Newest first while older ones are pending: only those go.
        assert b.ack_many(jb[5:]) == 5
        assert a.ack_many(jc) == 10
        left = _ready_ids(port, qname)
        assert sorted(left) == sorted([j.token for j in ja] + [j.token for j in jb[:5]])
        # The oldest batch: the trim reaches up to the next pending one.
        assert a.ack_many(ja[::-1]) == 10
        assert sorted(_ready_ids(port, qname)) == sorted(j.token for j in jb[:5])
        with pytest.raises(reactis.StaleDeliveryError):
            a.ack(jc[0].token)
        assert b.ack_many(jb[:5]) == 5
        assert _ready_ids(port, qname) == []
        assert a.stats().acked == 30
        # Promoted but not yet read entries survive an ack with nothing
        # pending: the trim stops at the last delivered entry.
        a.schedule_many([b"late%d" % i for i in range(3)])
        (j,) = a.fetch(1, timeout=5)
        extra = raw_command(port, "XADD", "rx:{%s}:s" % qname, "*", "id", "x", "payload", "p",
                            "meta", "0 0 1 0 0").decode()
        j.ack()
        assert _ready_ids(port, qname) == [extra]
        (k,) = b.fetch(1, timeout=5)
        assert k.token == extra and k.payload == b"p"
        k.ack()
        assert len(_ready_ids(port, qname)) == 1  # promoted with k, not read yet
        rest = b.fetch(10, timeout=5)
        assert sorted(r.payload for r in rest + [j]) == [b"late0", b"late1", b"late2"]
        b.ack_many(rest)
        assert _ready_ids(port, qname) == []


def _script_calls(port):
    """How many EVALSHA/EVAL calls the server has run (INFO commandstats)."""
    info = raw_command(port, "INFO", "commandstats").decode()
    total = 0
    for line in info.splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            total += int(line.split("calls=")[1].split(",")[0])
    return total


def test_fetch_acks_the_previous_batch_in_the_same_round_trip(redis_server, url, qname):
    # fetch(ack=jobs): the acks ride on the fetch's script call; stale ones
    # are skipped; they are made even when nothing is due.
    port = redis_server.port
    with reactis.Queue(qname, url) as a, reactis.Queue(qname, url) as b:
        a.schedule_many([b"f%d" % i for i in range(25)])
        jobs = a.fetch(10, timeout=5)
        got = list(jobs)
        calls0 = _script_calls(port)
        rounds = 0
        while True:
            prev = jobs
            jobs = a.fetch(10, timeout=0, ack=prev)
            rounds += 1
            assert all(j.done for j in prev)
            if not jobs:
                break
            got.extend(jobs)
        assert sorted(j.payload for j in got) == sorted(b"f%d" % i for i in range(25))
        assert _script_calls(port) - calls0 == rounds  # one script call per fetch, acks included
        st = a.stats()
        assert (st.acked, st.in_flight, st.ready) == (25, 0, 0)
        # A delivery acked elsewhere meanwhile is skipped, the others acked.
        a.schedule_many([b"x", b"y"])
        jobs = a.fetch(2, timeout=5)
        b.ack(jobs[1].token)
        assert a.fetch(1, timeout=0, ack=[j.token for j in jobs]) == []
        assert a.stats().acked == 27 and a.stats().in_flight == 0
        # Bad input is refused before anything is acked.
        a.schedule(b"z")
        (z,) = a.fetch(1, timeout=5)
        with pytest.raises(reactis.InvalidArgumentError):
            a.fetch(1, timeout=0, ack=[z, "not-a-token"])
        assert a.stats().in_flight == 1 and not z.done
        with pytest.raises(ValueError):
            a.fetch(1, ack=[z] * 1001)
        with pytest.raises(TypeError):
            a.fetch(1, ack=[42])
        assert a.fetch(1, timeout=0, ack=[z]) == [] and z.done
        a.close()
        with pytest.raises(reactis.StateError):
            a.fetch(1, ack=["1-1"])


def test_jobs_loop_acks_with_the_next_fetch(redis_server, url, qname):
    # The with-block acks of a batch go with the next fetch: one script call
    # per batch, not two; every job acked once, none left pending.
    port = redis_server.port
    with reactis.Queue(qname, url) as q:
        q.schedule_many([b"j%d" % i for i in range(300)])
        n, calls0 = 0, None
        for job in q.jobs(batch=100, timeout=0):
            with job:
                n += 1
            if n == 1:  # after the first fetch (a consumer's first does more)
                calls0 = _script_calls(port)
        assert n == 300
        # 2 more full batches, then one fetch that finds nothing and acks
        # the last batch: 3 script calls (5 with acks of their own).
        assert _script_calls(port) - calls0 == 3
        st = q.stats()
        assert (st.acked, st.in_flight) == (300, 0)


def test_work_acks_with_the_next_fetch(redis_server, url, qname):
    # work(): a batch's acks go with the next fetch; the last batch's when
    # the loop ends.
    port = redis_server.port
    with reactis.Queue(qname, url) as q:
        q.schedule_many([b"w%d" % i for i in range(300)])
        for j in q.fetch(1, timeout=5):  # the consumer's first fetch does more
            j.ack()
        calls0 = _script_calls(port)
        seen = []
        q.work(lambda job: seen.append(job.payload), batch=100, burst=True)
        assert len(seen) == 299
        # 3 fetches (100, 100, 99; the 2nd and 3rd ack the batch before),
        # then the burst's empty fetch acks the last batch: 4 (7 before).
        assert _script_calls(port) - calls0 == 4
        st = q.stats()
        assert (st.acked, st.in_flight) == (300, 0)
