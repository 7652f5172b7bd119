"""Timers, once-only claims and the expiry bridge through the Python wrapper."""

import multiprocessing
import subprocess
import sys
import threading
import time

import pytest

import reactis
from conftest import child_env


@pytest.fixture
def tname(request):
    return "pyt.%s.%d" % (request.node.name, time.monotonic_ns())


@pytest.fixture
def timers(url, tname):
    with reactis.Timers(tname, url=url, backoff_base=0.05, backoff_max=0.1) as t:
        yield t


def test_touch_fire_ack(timers):
    t0 = time.monotonic()
    assert timers.touch("dev:1", 0.2, b"\x00last") is True
    assert timers.touch("dev:1", 0.3, "newer") is False  # reset, not armed anew
    assert timers.fetch(timeout=0) == []
    (f,) = timers.fetch(timeout=5)
    assert time.monotonic() - t0 >= 0.25
    assert isinstance(f, reactis.Fired) and isinstance(f, reactis.Job)
    assert (f.id, f.data, f.payload, f.attempt) == (b"dev:1", b"newer", b"newer", 1)
    assert f.deadline_ms == f.due_ms and f.fired_ms >= f.deadline_ms
    assert 0 <= f.lateness < 1
    f.ack()
    assert f.done
    assert timers.fetch(timeout=0.3) == []
    assert timers.stats().acked == 1


def test_stop_and_touch_at(timers):
    timers.touch("a", 0.2)
    timers.touch_at("b", time.time() + 0.2, b"B")
    assert timers.stop("a") is True
    assert timers.stop("a") is False
    assert timers.stop("never") is False
    fired = timers.fetch(10, timeout=5)
    assert [(f.id, f.data) for f in fired] == [(b"b", b"B")]
    timers.ack_many(fired)
    assert timers.fetch(timeout=0.4) == []


def test_touch_many_and_reset(timers):
    assert timers.touch_many({"x%d" % i: b"1" for i in range(300)}, ttl=0.4) == 300
    time.sleep(0.2)
    # Reset them all, in one batch, before the first deadline passes.
    assert timers.touch_many([("x%d" % i, 0.5, b"2") for i in range(300)]) == 0
    t0 = time.monotonic()
    got = []
    while len(got) < 300:
        batch = timers.fetch(300, timeout=5)
        assert batch, "only %d fired" % len(got)
        got += batch
        timers.ack_many(batch)
    assert time.monotonic() - t0 >= 0.4
    assert {f.data for f in got} == {b"2"} and len({f.id for f in got}) == 300
    with pytest.raises(TypeError):
        timers.touch_many([("a", b"no ttl")])


def test_watch_handler_acks_and_retries(timers):
    timers.touch("ok", 0.05, b"1")
    timers.touch("flaky", 0.05, b"2")
    calls = []

    def handler(id, data):
        calls.append(id)
        if id == b"flaky" and calls.count(b"flaky") == 1:
            raise RuntimeError("first time fails")

    n = timers.watch(handler, timeout=1.5)
    assert n == 3
    assert sorted(calls) == [b"flaky", b"flaky", b"ok"]
    st = timers.stats()
    assert st.acked == 2 and st.failures == 1 and st.scheduled == 0


def test_watch_max_fired_and_iteration(timers):
    timers.touch_many({"i%d" % i: b"" for i in range(5)}, ttl=0)
    assert timers.watch(lambda i, d: None, max_fired=2, timeout=3) == 2
    seen = []
    for f in timers.fired(timeout=1):
        with f:
            seen.append(f.id)
    assert len(seen) == 3
    assert timers.fetch(timeout=0.2) == []


def test_fires_when_no_watcher_ran(url, tname):
    with reactis.Timers(tname, url=url) as p:
        p.touch_many({"d%d" % i: b"x" for i in range(10)}, ttl=0.05)
    time.sleep(0.5)  # all deadlines pass with nobody watching
    with reactis.Timers(tname, url=url) as w:
        fired = w.fetch(100, timeout=5)
        assert len(fired) == 10
        assert all(f.fired_ms - f.deadline_ms >= 300 for f in fired)
        w.ack_many(fired)


def _toucher(url, name, ids, rounds, out):
    t = reactis.Timers(name, url=url)
    for _ in range(rounds):
        # A ttl 15x the touch interval: on a loaded 2-core CI machine a
        # process can stall for half a second, which would be a true missed
        # deadline, not the bug this test looks for.
        t.touch_many({i: b"alive" for i in ids}, ttl=1.5)
        time.sleep(0.1)
    out.put(time.time())
    t.close()


def test_concurrent_touchers_never_see_a_firing(url, tname):
    ids = ["dev%d" % i for i in range(20)]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    kids = [ctx.Process(target=_toucher, args=(url, tname, ids, 20, out)) for _ in range(2)]
    for k in kids:
        k.start()
    fired = []
    import queue as _queue

    stops = []
    with reactis.Timers(tname, url=url) as w:
        limit = time.monotonic() + 20
        while len(stops) < len(kids) and time.monotonic() < limit:
            batch = w.fetch(100, timeout=0.2)
            assert batch == [], "fired while being touched: %r" % [f.id for f in batch]
            try:
                stops.append(out.get_nowait())
            except _queue.Empty:
                pass
        assert len(stops) == len(kids)
        stopped = max(stops)
        deadline = time.monotonic() + 5
        while len(fired) < len(ids) and time.monotonic() < deadline:
            batch = w.fetch(100, timeout=0.5)
            fired += batch
            w.ack_many(batch)
        assert sorted(f.id.decode() for f in fired) == sorted(ids)  # once each
        assert min(f.deadline_ms for f in fired) / 1000.0 >= stopped + 1.5 - 0.2
        assert w.fetch(100, timeout=0.7) == []
    for k in kids:
        k.join(5)
        assert k.exitcode == 0


def test_arguments(url, timers):
    with pytest.raises(reactis.InvalidArgumentError):
        reactis.Timers("a{b}", url=url)
    with pytest.raises(TypeError):
        reactis.Timers(42, url=url)
    with pytest.raises(ValueError):
        timers.touch("x", -1)
    with pytest.raises(TypeError):
        timers.touch("x", "soon")
    with pytest.raises(reactis.InvalidArgumentError):
        timers.touch("", 1)
    with pytest.raises(reactis.InvalidArgumentError):
        timers.touch("i" * 257, 1)
    with pytest.raises(ValueError):
        timers.fetch(0)
    small = reactis.Timers(timers.name, url=url, max_payload=3)
    with pytest.raises(reactis.PayloadTooLargeError):
        small.touch("x", 1, b"1234")
    small.close()
    with pytest.raises(reactis.StateError):
        small.touch("x", 1)
    assert "closed" in repr(small)


def test_wakeup_ends_watch(timers):
    threading.Timer(0.3, timers.wakeup).start()
    t0 = time.monotonic()
    assert timers.watch(lambda i, d: None) == 0
    assert time.monotonic() - t0 < 3


def test_watcher_killed_mid_firing_is_redelivered(url, tname):
    code = (
        "import reactis, sys, time\n"
        "t = reactis.Timers(%r, url=%r, visibility_timeout=0.5)\n"
        "f = t.fetch(timeout=5)\n"
        "print(f[0].id.decode(), flush=True)\n"
        "time.sleep(60)\n" % (tname, url))
    with reactis.Timers(tname, url=url, visibility_timeout=0.5) as t:
        t.touch("victim", 0.05, b"v")
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env=child_env())
        try:
            assert proc.stdout.readline().strip() == "victim"
        finally:
            proc.kill()
            proc.wait()
        (f,) = t.fetch(timeout=5)
        assert f.id == b"victim" and f.crashes == 1 and f.attempt == 2
        f.ack()


# ------------------------------------------------------------ claims

def test_claim_once(url, client):
    assert reactis.claim_once(url, "pyjobs", "1", 10) is True
    assert reactis.claim_once(url, "pyjobs", "1", 10) is False
    assert reactis.claim_once(client, "pyjobs", b"\x00bin", 10) is True
    assert reactis.claim_once(client, "pyjobs", b"\x00bin", 10) is False
    ttl = client.command("PTTL", "rx:claim:{pyjobs}:1")
    assert 5000 < ttl <= 10000
    assert reactis.claim_once(client, "pyshort", "1", 0.1) is True
    time.sleep(0.25)
    assert reactis.claim_once(client, "pyshort", "1", 0.1) is True
    with pytest.raises(reactis.InvalidArgumentError):
        reactis.claim_once(client, "a{b}", "1", 1)
    with pytest.raises(ValueError):
        reactis.claim_once(client, "n", "1", 0)
    with pytest.raises(TypeError):
        reactis.claim_once(client, "n", "1", 1, timeout=1)


def _claimer(url, n, out):
    with reactis.Client(url) as c:
        out.put([reactis.claim_once(c, "pyrace", str(i), 60) for i in range(n)])


def test_claim_race_across_processes(url):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    kids = [ctx.Process(target=_claimer, args=(url, 200, out)) for _ in range(4)]
    for k in kids:
        k.start()
    results = [out.get(timeout=30) for _ in kids]
    for k in kids:
        k.join(5)
    assert all(sum(r[i] for r in results) == 1 for i in range(200))


# ------------------------------------------------------------ the bridge

def test_expiry_bridge(url, client):
    bridge = reactis.ExpiryBridge("pysession:{id}", url=url)
    assert bridge.shadow.source == b"shadow:pysession:{id}"
    client.command("SET", "shadow:pysession:42", b"cart\x00")

    def expire_soon():
        time.sleep(0.3)
        with reactis.Client(url) as c:
            c.command("SET", "other:1", "x", "PX", 20)
            c.command("SET", "pysession:42", "x", "PX", 50)
            c.command("SET", "pysession:43", "x", "PX", 80)

    threading.Thread(target=expire_soon).start()
    got = []
    for exp in bridge.listen(timeout=5):
        got.append(exp)
        if len(got) == 2:
            break
    got.sort()  # Redis deletes expired keys in no particular order
    assert got[0] == reactis.Expiry(b"pysession:42", {"id": b"42"}, b"cart\x00")
    assert got[1].captures == {"id": b"43"} and got[1].value is None
    assert client.command("EXISTS", "shadow:pysession:42") == 0
    # take() on messages from your own subscriber; keep=... and a custom shadow.
    keep = reactis.ExpiryBridge("u:{uid}:{part}", "data:{part}:{uid}", url=url, delete=False)
    client.command("SET", "data:avatar:9", "png")
    msg = reactis.Message("pmessage", b"__keyevent@0__:expired", b"u:9:avatar",
                          pattern=b"__keyevent@*__:expired")
    exp = keep.take(msg)
    assert exp == reactis.Expiry(b"u:9:avatar", {"uid": b"9", "part": b"avatar"}, b"png")
    assert client.command("GET", "data:avatar:9") == b"png"
    assert keep.take(reactis.Message("message", b"chat", b"u:9:avatar")) is None
    assert keep.take(reactis.Message("gap")) is None
    with pytest.raises(reactis.InvalidArgumentError):
        reactis.ExpiryBridge("s:{id}", "x:{nope}", url=url)
    keep.close()
    bridge.close()
