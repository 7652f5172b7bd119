"""Subscriber: round trips, patterns, binary data, waiting, threads."""

import threading
import time

import pytest

import reactis


def _get(sub, timeout=5.0):
    msg = sub.get_message(timeout=timeout)
    assert msg is not None, "no message within %s s" % timeout
    return msg


def test_round_trip(url, channel):
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.subscribe(channel)
        assert sub.subscription_count == 1
        assert pub.publish(channel, b"hello") == 1
        msg = _get(sub)
        assert msg.kind == "message"
        assert msg.channel == channel and msg.data == b"hello"
        assert msg.pattern is None and msg.key_event is None


def test_str_channels_and_payloads(url, channel):
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.subscribe(channel.decode())
        pub.publish(channel.decode(), "héllo")
        msg = _get(sub)
        assert msg.channel == channel and msg.data == "héllo".encode()


def test_binary_data_round_trips_as_bytes(url, channel):
    payloads = [b"\x00", b"\xff", b"a\x00b\xffc", bytes(range(256)), b"", b"\x00" * 100000]
    ch = channel + b"\x00\xff"
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.subscribe(ch)
        for p in payloads:
            pub.publish(ch, p)
        for p in payloads:
            msg = _get(sub)
            assert type(msg.data) is bytes and msg.data == p
            assert msg.channel == ch


def test_patterns(url, channel):
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.psubscribe(channel + b".*")
        pub.publish(channel + b".a", b"1")
        pub.publish(channel + b"-not", b"x")
        pub.publish(channel + b".b", b"2")
        m1, m2 = _get(sub), _get(sub)
        assert (m1.kind, m1.pattern, m1.channel, m1.data) == \
            ("pmessage", channel + b".*", channel + b".a", b"1")
        assert (m2.channel, m2.data) == (channel + b".b", b"2")
        assert sub.get_message(timeout=0.2) is None


def test_shard_channels(url, channel):
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.ssubscribe(channel)
        assert pub.command("SPUBLISH", channel, b"s\x00") == 1
        msg = _get(sub)
        assert (msg.kind, msg.channel, msg.data) == ("smessage", channel, b"s\x00")


def test_unsubscribe(url, channel):
    a, b = channel + b".a", channel + b".b"
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.subscribe(a, b)
        sub.psubscribe(channel + b".p*")
        assert sub.subscription_count == 3
        sub.unsubscribe(a)
        assert sub.subscription_count == 2
        assert pub.publish(a, b"gone") == 0
        pub.publish(b, b"kept")
        assert _get(sub).data == b"kept"
        sub.unsubscribe()
        sub.punsubscribe()
        assert sub.subscription_count == 0
        assert pub.publish(b, b"gone") == 0


def test_many_messages_in_order(url, channel):
    n = 5000
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.subscribe(channel)
        for i in range(n):
            pub.publish(channel, str(i))
        got = []
        for msg in sub.listen():
            got.append(int(msg.data))
            if len(got) == n:
                break
        assert got == list(range(n))


def test_leaving_listen_keeps_the_rest_of_the_batch(url, channel):
    """Messages are read in batches; breaking out of listen() must not drop
    the ones already read but not yet yielded."""
    with reactis.Subscriber(url, batch_size=64) as sub, reactis.Client(url) as pub:
        sub.subscribe(channel)
        for i in range(100):
            pub.publish(channel, str(i))
        pub.ping()
        time.sleep(0.1)  # all 100 are in the subscriber's socket by now
        got = []
        for msg in sub.listen():
            got.append(int(msg.data))
            if len(got) == 10:
                break
        got.append(int(_get(sub).data))
        for msg in sub.listen():
            got.append(int(msg.data))
            if len(got) == 100:
                break
        assert got == list(range(100))


def test_get_messages_batches(url, channel):
    with reactis.Subscriber(url, batch_size=16) as sub, reactis.Client(url) as pub:
        sub.subscribe(channel)
        assert sub.get_messages() == []
        t0 = time.monotonic()
        assert sub.get_messages(timeout=0.3) == []
        assert time.monotonic() - t0 >= 0.25
        for i in range(40):
            pub.publish(channel, b"%d" % i)
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 40 and time.monotonic() < deadline:
            batch = sub.get_messages(timeout=1.0, max_messages=7)
            assert 1 <= len(batch) <= 7
            got += batch
        assert [m.data for m in got] == [b"%d" % i for i in range(40)]
        assert all(m.kind == "message" and m.channel == channel for m in got)
        with pytest.raises(ValueError):
            sub.get_messages(max_messages=0)
    with pytest.raises(reactis.StateError):
        sub.get_messages()


def test_get_message_timeouts(url, channel):
    with reactis.Subscriber(url) as sub:
        sub.subscribe(channel)
        t0 = time.monotonic()
        assert sub.get_message() is None  # default: do not wait
        assert sub.get_message(timeout=0) is None
        assert time.monotonic() - t0 < 0.15
        t0 = time.monotonic()
        assert sub.get_message(timeout=0.5) is None
        elapsed = time.monotonic() - t0
        assert 0.45 <= elapsed < 1.5
        with pytest.raises(TypeError):
            sub.get_message(timeout="1")


def test_wakeup_from_another_thread_ends_listen(url, channel):
    with reactis.Subscriber(url) as sub:
        sub.subscribe(channel)
        threading.Timer(0.3, sub.wakeup).start()
        t0 = time.monotonic()
        assert list(sub.listen()) == []
        assert 0.25 <= time.monotonic() - t0 < 1.0
        # get_message(None) also returns on wakeup.
        threading.Timer(0.2, sub.wakeup).start()
        assert sub.get_message(timeout=None) is None


def test_close_from_another_thread(url, channel):
    sub = reactis.Subscriber(url)
    sub.subscribe(channel)
    done = threading.Event()
    got = []

    def run():
        got.extend(sub.listen())
        done.set()

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.3)
    sub.close()
    assert done.wait(1.0)
    t.join()
    assert got == [] and sub.closed


def test_other_threads_progress_while_one_blocks(url, channel):
    """The GIL is released while waiting: other threads run Python code and
    commands, and the blocked thread still receives what they publish."""
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.subscribe(channel)
        result = []
        started = threading.Event()

        def blocked():
            started.set()
            result.append(sub.get_message(timeout=5.0))

        t = threading.Thread(target=blocked)
        t.start()
        started.wait()
        time.sleep(0.1)
        t0, spins = time.monotonic(), 0
        while time.monotonic() - t0 < 0.3:
            spins += 1
        for i in range(50):
            pub.command("SET", "progress:k", i)
        assert spins > 10000
        assert t.is_alive()
        pub.publish(channel, b"done")
        t.join(5)
        assert result and result[0].data == b"done"


def test_two_subscribers_block_in_parallel(url, channel):
    subs = [reactis.Subscriber(url) for _ in range(3)]
    try:
        for s in subs:
            s.subscribe(channel)
        out = []
        threads = [threading.Thread(target=lambda s=s: out.append(s.get_message(timeout=5)))
                   for s in subs]
        for t in threads:
            t.start()
        time.sleep(0.2)
        with reactis.Client(url) as pub:
            assert pub.publish(channel, b"all") == 3
        for t in threads:
            t.join(5)
        assert [m.data for m in out] == [b"all"] * 3
    finally:
        for s in subs:
            s.close()


def test_iteration_protocol(url, channel):
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.subscribe(channel)
        pub.publish(channel, b"x")
        for msg in sub:
            assert msg.data == b"x"
            break


def test_fileno(url, channel):
    import select

    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.subscribe(channel)
        fd = sub.fileno()
        assert fd >= 0
        pub.publish(channel, b"sel")
        r, _, _ = select.select([fd], [], [], 5)
        assert r == [fd]
        assert _get(sub, 1).data == b"sel"
