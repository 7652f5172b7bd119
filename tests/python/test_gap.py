"""Reconnecting: a restart of the server yields one gap event, and the
subscriptions come back by themselves."""

import logging
import time

import reactis


def _wait_for(sub, pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        msg = sub.get_message(timeout=0.2)
        if msg is None:
            continue
        seen.append(msg)
        if pred(msg):
            return seen
    raise AssertionError("not seen within %s s; got %r" % (timeout, seen))


def _publish_until_received(server, channel, data, sub, timeout=15.0):
    """Publishes every 100 ms until the subscriber gets it (it may take a
    few backoff rounds to come back); returns what it received."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            with reactis.Client(server.url, connect_timeout=1) as pub:
                pub.publish(channel, data)
        except reactis.ConnectionError:
            pass
        msg = sub.get_message(timeout=0.1)
        while msg is not None:
            seen.append(msg)
            if msg.kind != "gap" and msg.data == data:
                return seen
            msg = sub.get_message(timeout=0)
    raise AssertionError("no message after the restart; got %r" % seen)


def test_gap_after_restart(redis_factory, channel, caplog):
    server = redis_factory()
    with reactis.Subscriber(server.url, reconnect_min=0.02, reconnect_max=0.2,
                            health_check_interval=0.5, health_check_timeout=0.5) as sub:
        sub.subscribe(channel)
        sub.psubscribe(channel + b".*")
        with reactis.Client(server.url) as pub:
            pub.publish(channel, b"before")
        assert _wait_for(sub, lambda m: m.data == b"before")[-1].kind == "message"

        before_restart = time.time()
        server.restart(downtime=0.3)
        with caplog.at_level(logging.WARNING, logger="reactis"):
            seen = _publish_until_received(server, channel, b"after", sub)

        gaps = [m for m in seen if m.kind == "gap"]
        assert len(gaps) == 1, seen
        gap = gaps[0]
        assert seen.index(gap) < len(seen) - 1  # the gap comes before new messages
        assert gap.gap_start_ms <= gap.gap_end_ms
        assert gap.gap_start <= before_restart + 1.0
        assert gap.gap_end >= before_restart
        assert gap.reconnects >= 1
        assert gap.channel is None and gap.data is None
        assert any("missed" in r.getMessage() for r in caplog.records)

        # Both kinds of subscription were replayed.
        with reactis.Client(server.url) as pub:
            assert pub.publish(channel + b".x", b"p") == 1
        assert _wait_for(sub, lambda m: m.kind == "pmessage")[-1].data == b"p"


def test_gap_after_kill(redis_factory, channel):
    """A server that vanishes without closing the link (SIGKILL) is noticed
    too, and the subscriber comes back once it is there again."""
    server = redis_factory()
    with reactis.Subscriber(server.url, reconnect_min=0.02, reconnect_max=0.2,
                            health_check_interval=0.3, health_check_timeout=0.3) as sub:
        sub.subscribe(channel)
        port = server.port
        server.kill()
        assert sub.get_message(timeout=0.5) is None  # still waiting, no error
        server.start(port=port)
        seen = _publish_until_received(server, channel, b"back", sub)
        assert [m.kind for m in seen].count("gap") == 1
