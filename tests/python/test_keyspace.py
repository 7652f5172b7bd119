"""Keyspace notifications: parsing (no server) and enabling (servers)."""

import time

import pytest

import reactis
from reactis import KeyEvent


# ------------------------------------------------------------ parsing

def test_parse_keyspace_channel():
    ev = KeyEvent.parse(b"__keyspace@0__:user:42", b"expired")
    assert ev == KeyEvent("keyspace", 0, "expired", b"user:42")
    assert ev.known
    assert ev.channel() == b"__keyspace@0__:user:42"


def test_parse_keyevent_channel():
    ev = KeyEvent.parse(b"__keyevent@15__:del", b"some key")
    assert ev == KeyEvent("keyevent", 15, "del", b"some key")
    assert ev.channel() == b"__keyevent@15__:del"


def test_parse_accepts_str():
    assert KeyEvent.parse("__keyevent@2__:set", "k") == KeyEvent("keyevent", 2, "set", b"k")


@pytest.mark.parametrize("key", [b"a\x00b", b"\xff\xfe", b"with:colons:and@ats", b"",
                                 bytes(range(256))])
def test_parse_binary_keys(key):
    ev = KeyEvent.parse(b"__keyevent@3__:expired", key)
    if key == b"":
        # An empty key cannot be set in Redis; either answer is fine, but
        # never a misparse.
        assert ev is None or ev.key == b""
        return
    assert ev == KeyEvent("keyevent", 3, "expired", key)
    ev = KeyEvent.parse(b"__keyspace@3__:" + key, b"set")
    assert ev == KeyEvent("keyspace", 3, "set", key)


def test_parse_unknown_event_is_kept():
    ev = KeyEvent.parse(b"__keyevent@0__:json.set", b"doc")
    assert ev is not None and ev.event == "json.set" and not ev.known


@pytest.mark.parametrize("channel,data", [
    (b"news", b"hello"),
    (b"__keyspace@__:k", b"del"),
    (b"__keyspace@x__:k", b"del"),
    (b"__keyspace@0_:k", b"del"),
    (b"__keyspace@0__k", b"del"),
    (b"__keyspace@-1__:k", b"del"),
    (b"__keyevent@0__:", b"k"),
    (b"__keyspace@0__:k", b""),
    (b"__keyspace@99999999999999999999__:k", b"del"),
    (b"__KEYSPACE@0__:k", b"del"),
    (b"", b""),
])
def test_parse_rejects_other_shapes(channel, data):
    assert KeyEvent.parse(channel, data) is None


def test_parse_type_errors():
    with pytest.raises(TypeError):
        KeyEvent.parse(None, b"x")
    with pytest.raises(TypeError):
        KeyEvent.parse(b"__keyevent@0__:del", 5)


# ------------------------------------------------------------ enabling

def _flags(server):
    return server.command("CONFIG", "GET", "notify-keyspace-events")[1].decode()


def test_enable_returns_effective_flags(redis_factory):
    server = redis_factory()
    flags = reactis.enable_keyspace_events(server.url, "Ex")
    assert set("Ex") <= set(flags)
    assert set("Ex") <= set(_flags(server))


def test_enable_merges_and_never_removes(redis_factory):
    server = redis_factory("--notify-keyspace-events", "Kg")
    flags = reactis.enable_keyspace_events(server.url, "Ex")
    assert set("KgEx") <= set(flags)
    assert set("KgEx") <= set(_flags(server))
    # Asking for what is there already changes nothing.
    with reactis.Client(server.url) as c:
        again = c.enable_keyspace_events("x")
    assert set(again) == set(flags)


def test_enable_with_client_and_A(redis_factory):
    server = redis_factory()
    with reactis.Client(server.url) as c:
        flags = c.enable_keyspace_events("KEA")
    assert "A" in flags or set("g$lshzxet") <= set(flags)


def test_enable_unknown_flag(redis_factory):
    server = redis_factory()
    with pytest.raises(reactis.InvalidArgumentError):
        reactis.enable_keyspace_events(server.url, "E?")
    with pytest.raises(TypeError):
        reactis.enable_keyspace_events(server.url, 5)


def test_config_forbidden(redis_factory):
    server = redis_factory("--rename-command", "CONFIG", "")
    with pytest.raises(reactis.ConfigForbiddenError) as ei:
        reactis.enable_keyspace_events(server.url, "Ex")
    e = ei.value
    assert e.name == "ECONFIG" and e.code == reactis.cimpl.ECONFIG
    assert isinstance(e, reactis.ReplyError)
    assert str(e)  # guidance for managed services


def test_expired_events_end_to_end(redis_factory):
    server = redis_factory()
    reactis.enable_keyspace_events(server.url, "Ex")
    key = b"job:\x00\xff:1"
    with reactis.Subscriber(server.url) as sub, reactis.Client(server.url) as c:
        sub.psubscribe(b"__keyevent@0__:expired")
        c.command("SET", key, "v", "PX", 30)
        deadline = time.monotonic() + 10
        ev = None
        while time.monotonic() < deadline and ev is None:
            msg = sub.get_message(timeout=0.5)
            if msg is not None and msg.kind == "pmessage":
                ev = msg.key_event
        assert ev == KeyEvent("keyevent", 0, "expired", key)
