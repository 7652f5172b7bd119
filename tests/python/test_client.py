"""Client: commands, replies, errors, publishing."""

import threading

import pytest

import reactis


def test_reply_types(client):
    assert client.ping() is True
    assert client.command("SET", "rt:k", "v") == "OK"
    assert client.command("GET", "rt:k") == b"v"
    assert client.command("GET", "rt:missing") is None
    assert client.command("DEL", "rt:n") in (0, 1)
    assert client.command("INCRBY", "rt:n", 41) == 41
    assert client.command("INCRBYFLOAT", "rt:f", 1.5) == b"1.5"
    client.command("DEL", "rt:l")
    assert client.command("RPUSH", "rt:l", "a", b"b", 3) == 3
    assert client.command("LRANGE", "rt:l", 0, -1) == [b"a", b"b", b"3"]
    assert client.execute_command("ECHO", "é") == "é".encode()


def test_binary_values_round_trip(client):
    value = bytes(range(256)) * 4 + b"\x00\xff\x00"
    key = b"bin:\x00\xff\r\n"
    assert client.command("SET", key, value) == "OK"
    got = client.command("GET", key)
    assert isinstance(got, bytes) and got == value
    assert client.command("SET", key, bytearray(b"\x00ba")) == "OK"
    assert client.command("GET", memoryview(key)) == b"\x00ba"


def test_error_replies_raise_typed_errors(client):
    client.command("SET", "err:str", "x")
    with pytest.raises(reactis.WrongTypeError) as ei:
        client.command("LPUSH", "err:str", "y")
    assert ei.value.name == "EWRONGTYPE" and "WRONGTYPE" in str(ei.value)
    with pytest.raises(reactis.ReplyError) as ei:
        client.command("NO_SUCH_COMMAND")
    assert "unknown command" in str(ei.value).lower()
    # The connection is still usable after an error reply.
    assert client.ping()


def test_error_inside_array_is_returned(client):
    client.command("SET", "tx:str", "x")
    assert client.command("MULTI") == "OK"
    assert client.command("INCR", "tx:n") == "QUEUED"
    assert client.command("LPUSH", "tx:str", "y") == "QUEUED"
    result = client.command("EXEC")
    assert isinstance(result[0], int)
    assert isinstance(result[1], reactis.WrongTypeError)


def test_publish_counts_receivers(url, channel):
    with reactis.Client(url) as c, reactis.Subscriber(url) as s:
        assert c.publish(channel, b"nobody") == 0
        s.subscribe(channel)
        assert c.publish(channel, b"one") == 1
        assert c.publish(channel.decode(), "str too") == 1
        with pytest.raises(TypeError):
            c.publish(channel, 5)


def test_context_manager_closes(url):
    with reactis.Client(url) as c:
        c.ping()
        assert c.connected
    assert c.closed and not c.connected
    with pytest.raises(reactis.StateError):
        c.ping()


def test_connection_refused():
    from conftest import free_port

    with reactis.Client("redis://127.0.0.1:%d" % free_port(), connect_timeout=2) as c:
        with pytest.raises(reactis.ConnectionError) as ei:
            c.ping()
    assert ei.value.code < 0


def test_wrong_password(redis_factory):
    server = redis_factory(password="right-password-123")
    port = server.port
    with reactis.Client("redis://:right-password-123@127.0.0.1:%d" % port) as ok:
        assert ok.ping()
    wrong = "wrong-password-456"
    with reactis.Client("redis://:%s@127.0.0.1:%d" % (wrong, port)) as c:
        with pytest.raises(reactis.AuthenticationError) as ei:
            c.ping()
    e = ei.value
    assert e.name == "EAUTH"
    assert wrong not in str(e) and wrong not in repr(e)
    assert "right-password" not in str(e)
    with reactis.Client("redis://127.0.0.1:%d" % port) as c:  # no password at all
        with pytest.raises(reactis.AuthenticationError):
            c.ping()


def test_wrong_password_subscriber(redis_factory):
    server = redis_factory(password="pw-right")
    with reactis.Subscriber("redis://:pw-wrong@127.0.0.1:%d" % server.port) as s:
        with pytest.raises(reactis.AuthenticationError) as ei:
            s.subscribe("x")
    assert "pw-wrong" not in str(ei.value)


def test_select_db_from_url(redis_server):
    with reactis.Client(redis_server.url.rsplit("/", 1)[0] + "/3") as c:
        c.command("SET", "db3key", "here")
    assert redis_server.command("GET", "db3key") is None
    assert redis_server.command("SELECT", 3) == "OK"


def test_client_shared_by_threads(url):
    errors = []
    with reactis.Client(url) as c:
        c.command("DEL", "threads:n")

        def work():
            try:
                for _ in range(200):
                    c.command("INCR", "threads:n")
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert c.command("GET", "threads:n") == b"800"


def test_wakeup_interrupts_a_blocking_command(url):
    with reactis.Client(url, timeout=0) as c:
        c.ping()
        threading.Timer(0.2, c.wakeup).start()
        with pytest.raises(reactis.Interrupted) as ei:
            c.command("BLPOP", "wake:never", 1)
        assert ei.value.name == "WOKEN"
        assert c.ping()  # the late reply is skipped, the link stays usable
