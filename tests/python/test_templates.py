"""Key templates and Subscriber.on routing through the Python wrapper."""

import threading
import time

import pytest

import reactis


def test_match_format_glob():
    t = reactis.Template("user:{user_id}:notifications")
    assert t.names == ("user_id",)
    assert t.source == b"user:{user_id}:notifications"
    assert t.glob == b"user:*:notifications"
    assert t.match(b"user:42:notifications") == {"user_id": b"42"}
    assert t.match("user:42:notifications") == {"user_id": b"42"}  # str as UTF-8
    assert t.match(b"user:42:settings") is None
    assert t.match(b"user::notifications") is None  # a placeholder is never empty
    assert b"user:7:notifications" in t and b"nope" not in t
    assert t.format(user_id=42) == b"user:42:notifications"
    assert t.format(b"\x00\xff") == b"user:\x00\xff:notifications"
    assert t.format({"user_id": "x"}) == b"user:x:notifications"
    assert str(t) == "user:{user_id}:notifications"
    assert "user_id" in repr(t)
    assert t == reactis.Template(b"user:{user_id}:notifications") and hash(t) == hash(t.source)


def test_several_placeholders_and_shortest_span():
    t = reactis.Template("{a}:{b}")
    assert t.names == ("a", "b")
    assert t.match(b"x:y:z") == {"a": b"x", "b": b"y:z"}
    assert t.format(a="1", b="2") == b"1:2"
    assert t.format("p", "q") == b"p:q"
    hashtag = reactis.Template("rx:{{{queue}}}:ready")
    assert hashtag.format(queue="sms") == b"rx:{sms}:ready"
    assert hashtag.match(b"rx:{sms}:ready") == {"queue": b"sms"}
    assert hashtag.glob == b"rx:{*}:ready"
    assert reactis.Template("a*b:{x}").glob == b"a\\*b:*"
    literal = reactis.Template("plain")
    assert literal.names == () and literal.format() == b"plain" and literal.match(b"plain") == {}


def test_binary_names():
    t = reactis.Template(b"k\x00:{id}")
    assert t.match(b"k\x00:\xff\xfe") == {"id": b"\xff\xfe"}


def test_errors():
    with pytest.raises(reactis.InvalidArgumentError) as ei:
        reactis.Template("user:{id")
    assert "offset" in str(ei.value)
    for bad in ("", "{a}{b}", "{1x}", "{a}:{a}", "x}"):
        with pytest.raises(reactis.InvalidArgumentError):
            reactis.Template(bad)
    t = reactis.Template("{a}:{b}")
    with pytest.raises(KeyError):
        t.format(a=1)
    with pytest.raises(TypeError):
        t.format(a=1, b=2, c=3)
    with pytest.raises(TypeError):
        t.format(1)
    with pytest.raises(TypeError):
        t.format(1, b=2)
    with pytest.raises(TypeError):
        t.format(a=None, b=1)
    with pytest.raises(reactis.InvalidArgumentError):
        t.format(a="", b="x")  # a placeholder is never empty
    with pytest.raises(TypeError):
        reactis.Template(42)


def test_on_routes_by_template(url, client):
    sub = reactis.Subscriber(url)
    got = []
    done = threading.Event()

    @sub.on("user:{user_id}:notifications")
    def note(msg, caps):
        got.append(("note", caps, msg.data))

    def chat(msg, caps):
        got.append(("chat", caps, msg.data))
        if caps["room"] == b"last":
            sub.wakeup()

    sub.on(reactis.Template("chat:{room}"), chat)
    others = []
    assert sub.subscription_count == 2
    client.publish("user:42:notifications", "hi")
    client.publish("user:7:settings", "not routed")
    client.publish("chat:a:b", "x")
    client.publish("chat:last", "bye")
    t0 = time.monotonic()
    routed = sub.run(timeout=5, default=others.append)
    assert time.monotonic() - t0 < 4
    assert routed == 3
    assert got == [("note", {"user_id": b"42"}, b"hi"),
                   ("chat", {"room": b"a:b"}, b"x"),
                   ("chat", {"room": b"last"}, b"bye")]
    assert others == []  # user:7:settings matches no subscribed pattern
    done.set()
    sub.close()


def test_route_on_messages_read_elsewhere(url, client, channel):
    sub = reactis.Subscriber(url)
    seen = []
    sub.on(b"%s:{x}" % channel, lambda m, c: seen.append(c))
    sub.subscribe(channel + b":plain")  # a channel message matching the template
    client.publish(channel + b":1", "a")
    client.publish(channel + b":plain", "b")
    msgs = []
    deadline = time.monotonic() + 5
    while len(msgs) < 3 and time.monotonic() < deadline:
        m = sub.get_message(timeout=1)
        if m is not None:
            msgs.append(m)
            sub.route(m)
    # chan:plain arrives twice (pattern and channel): routed both times.
    assert sorted(c["x"] for c in seen) == [b"1", b"plain", b"plain"]
    assert not sub.route(reactis.Message("gap"))
    sub.close()
    with pytest.raises(TypeError):
        reactis.Subscriber(url).on("x:{y}", 42)
