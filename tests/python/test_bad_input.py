"""The bad-input catalog (docs/bad-input.md) from Python: one test per row,
named test_row_NN_..., with the row numbers of the C test
(tests/c/test_bad_input.c).

Every bad input must raise a typed error (a reactis.Error subclass chosen by
the C core, or the Python exception the row names), never crash, never put a
password in a message, and lose nothing. Servers: one redis-server with a
password, an ACL user and CONFIG renamed away; the shared TLS server; and
tiny fake servers (one thread, a few connections) that send what Redis never
sends.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

import reactis

from conftest import RedisServer, make_certs

PW = "s3cr3t-pw"


def no_pw(text: str) -> None:
    assert "s3cr3t" not in text, text


def no_pw_in(err: BaseException) -> None:
    no_pw(str(err))
    no_pw(repr(err))


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path_factory.mktemp("redis-bad"),
                    ["--rename-command", "CONFIG", "",
                     "--user", "alice", "on", ">alice-" + PW, "~*", "&*", "+@all"],
                    password=PW)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def base(srv: RedisServer) -> str:
    return "redis://:%s@127.0.0.1:%d" % (PW, srv.port)


_n = [0]


@pytest.fixture
def qname(request) -> str:
    _n[0] += 1
    return "bad.%s.%d" % (request.node.name, _n[0])


# ------------------------------------------------------------ fake servers

class Fake:
    """A loopback listener served by a thread: for each connection (at most
    4, one at a time) it waits for the request's first bytes (up to 2 s),
    sends `reply`, holds the connection for `hold` seconds (or until the
    client closes it) and closes it. Bounded in time."""

    def __init__(self, reply: bytes, hold: float = 0.0) -> None:
        self.reply, self.hold = reply, hold
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for i in range(4):
            self.sock.settimeout(5.0 if i == 0 else 0.1)
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(2.0)
                try:
                    c.recv(4096)
                    if self.reply:
                        c.sendall(self.reply)
                    until = time.monotonic() + self.hold
                    c.settimeout(0.05)
                    while time.monotonic() < until:
                        try:
                            if not c.recv(4096):
                                break
                        except socket.timeout:
                            pass
                except OSError:
                    pass

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d" % self.port

    def __enter__(self) -> "Fake":
        return self

    def __exit__(self, *exc) -> None:
        self.thread.join(10)
        self.sock.close()


def fake_ping(reply: bytes, hold: float = 0.0, **options) -> reactis.Error:
    with Fake(reply, hold) as f, reactis.Client(f.url, **options) as c:
        with pytest.raises(reactis.Error) as ei:
            c.ping()
    return ei.value


# ------------------------------------------------------------ URLs, options

BAD_URLS = [
    (1, "", "empty"),
    (2, "http://127.0.0.1:6379", "scheme"),
    (3, "redis://:%s@127.0.0.1:99999" % PW, "bad port"),
    (4, "redis://[::1:6379", "IPv6"),
    (5, "redis://:s3cr3t%zz@127.0.0.1:6379", "%-escape"),
    (6, "redis://127.0.0.1:6379?tiemout=5", 'unknown option "tiemout"'),
    (7, "redis://:%s@127.0.0.1:6379?timeout=1e10" % PW, 'invalid value "1e10" for option timeout'),
    (7, "redis://127.0.0.1:6379?ssl_cert_reqs=maybe", "invalid value"),
    (8, "redis://127.0.0.1:6379?client_name=a%0D%0APING", "invalid value"),
    (8, "redis://127.0.0.1:6379?client_name=a%20b", "invalid value"),
]


@pytest.mark.parametrize("row,url,gist", BAD_URLS)
def test_rows_01_to_08_bad_urls(row, url, gist):
    for make in (reactis.Client, reactis.Subscriber, lambda u: reactis.Queue("q", url=u)):
        with pytest.raises(reactis.URLError) as ei:
            make(url)
        err = ei.value
        assert err.name == "EURL" and isinstance(err, ValueError)
        assert gist in str(err)
        no_pw_in(err)


def test_rows_06_07_bad_keyword_options():
    with pytest.raises(reactis.URLError, match='unknown option "tiemout"'):
        reactis.Client("redis://127.0.0.1:6379", tiemout=5)
    with pytest.raises(reactis.URLError, match="invalid value"):
        reactis.Client("redis://127.0.0.1:6379", ssl_cert_reqs="maybe")
    with pytest.raises(ValueError):  # negative numbers are refused in Python first
        reactis.Client("redis://127.0.0.1:6379", timeout=-1)


def test_row_08_text_that_cannot_be_sent():
    # Not encodable as UTF-8, or with NUL: refused before the core sees it.
    with pytest.raises(UnicodeEncodeError):
        reactis.Client("redis://127.0.0.1:6379?client_name=\ud800")
    with pytest.raises(ValueError, match="NUL"):
        reactis.Client("redis://127.0.0.1:6379\0?x=1")


def test_row_09_long_host():
    url = "redis://:%s@%s:6379" % (PW, "h" * 5000)
    with reactis.Client(url) as c:
        t0 = time.monotonic()
        with pytest.raises(reactis.ResolveError) as ei:
            c.connect()
    assert time.monotonic() - t0 < 2
    assert "cannot resolve" in str(ei.value)
    no_pw_in(ei.value)


def test_row_10_database_out_of_range(base):
    with reactis.Client(base + "/99") as c:
        with pytest.raises(reactis.URLError) as ei:
            c.connect()
    assert "DB index is out of range" in str(ei.value)
    no_pw_in(ei.value)


# ------------------------------------------------------------ auth, TLS

def test_row_11_wrong_password(srv):
    with reactis.Client("redis://:s3cr3t-wrong@127.0.0.1:%d" % srv.port) as c:
        with pytest.raises(reactis.AuthenticationError) as ei:
            c.ping()
        no_pw(repr(c))
        no_pw(c.url)
    assert ei.value.name == "EAUTH" and isinstance(ei.value, reactis.ConnectionError)
    no_pw_in(ei.value)


def test_row_12_unknown_acl_user(srv):
    with reactis.Client("redis://nobody:%s@127.0.0.1:%d" % (PW, srv.port)) as c:
        with pytest.raises(reactis.AuthenticationError) as ei:
            c.ping()
    assert "nobody" in str(ei.value)
    no_pw_in(ei.value)
    with reactis.Client("redis://alice:alice-%s@127.0.0.1:%d" % (PW, srv.port)) as c:
        assert c.ping()


def test_row_13_tls_against_plain(tls_server):
    with reactis.Client("rediss://127.0.0.1:%d?ssl_cert_reqs=none&connect_timeout=0.5"
                        % tls_server.port) as c:
        with pytest.raises((reactis.TimeoutError, reactis.TLSError)) as ei:
            c.connect()
    assert "is the server using TLS" in str(ei.value)


def test_row_14_plain_against_tls(tls_server):
    with reactis.Client("redis://127.0.0.1:%d?timeout=2" % tls_server.tls_port) as c:
        with pytest.raises((reactis.ConnectionLostError, reactis.ProtocolError)):
            c.ping()


def test_row_15_wrong_ca(tls_server, tmp_path):
    other = make_certs(tmp_path / "other")
    url = "rediss://:%s@localhost:%d?ssl_ca_certs=%s" % (PW, tls_server.tls_port, other["ca"])
    with reactis.Client(url) as c:
        with pytest.raises(reactis.TLSVerifyError) as ei:
            c.connect()
    assert "not accepted" in str(ei.value)
    no_pw_in(ei.value)


def test_row_16_host_name_mismatch(tls_server):
    # The certificate names "localhost" only; 127.0.0.1 is another name.
    url = "rediss://127.0.0.1:%d?ssl_ca_certs=%s" % (tls_server.tls_port, tls_server.tls["ca"])
    with reactis.Client(url) as c:
        with pytest.raises(reactis.TLSVerifyError) as ei:
            c.connect()
    assert "another host name" in str(ei.value)


def test_row_17_self_signed_without_ca(tls_server):
    with reactis.Client("rediss://localhost:%d" % tls_server.tls_port) as c:
        with pytest.raises(reactis.TLSVerifyError) as ei:
            c.connect()
    assert "ssl_cert_reqs=none" in str(ei.value)
    with reactis.Client("rediss://localhost:%d" % tls_server.tls_port,
                        ssl_cert_reqs="none") as c:
        assert c.ping()


# ------------------------------------------------------------ the server

def test_row_18_config_forbidden(base):
    with reactis.Client(base) as c:
        with pytest.raises(reactis.ConfigForbiddenError) as ei:
            c.enable_keyspace_events("Ex")
        assert "notify-keyspace-events" in str(ei.value)
        no_pw_in(ei.value)
        assert c.ping()  # the link still works


def test_row_19_unknown_notification_flags(base):
    with reactis.Client(base) as c:
        with pytest.raises(reactis.InvalidArgumentError, match="'q'"):
            c.enable_keyspace_events("Exq")
    with pytest.raises(reactis.InvalidArgumentError):
        reactis.enable_keyspace_events(base, "Exq")


def test_row_20_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with reactis.Client("redis://:%s@127.0.0.1:%d" % (PW, port)) as c:
        with pytest.raises(reactis.ConnectionError) as ei:
            c.ping()
    assert ei.value.name == "ECONNECT" and "refused" in str(ei.value)
    no_pw_in(ei.value)


def test_row_21_timeouts(qname):
    t0 = time.monotonic()
    err = fake_ping(b"", hold=0.8, timeout=0.3)
    assert isinstance(err, reactis.TimeoutError), repr(err)
    assert "did not reply within 300 ms" in str(err)
    assert 0.29 <= time.monotonic() - t0 < 1.4
    with Fake(b"", hold=0.8) as f:
        url = "redis://:%s@127.0.0.1:%d?connect_timeout=0.3" % (PW, f.port)
        with reactis.Client(url) as c:
            with pytest.raises(reactis.TimeoutError, match="handshake") as ei:
                c.connect()
        no_pw_in(ei.value)
    with Fake(b"", hold=0.8) as f, reactis.Queue(qname, url=f.url, timeout=0.3) as q:
        with pytest.raises(reactis.TimeoutError, match="queue '%s'" % qname):
            q.schedule(b"p")


def test_row_22_closed_mid_reply():
    err = fake_ping(b"$10\r\nhel", timeout=3)
    assert isinstance(err, reactis.ConnectionLostError), repr(err)
    assert "closed by the server" in str(err)


def test_row_23_not_redis(qname):
    http = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    err = fake_ping(http, hold=0.3, timeout=3)
    assert isinstance(err, reactis.ProtocolError), repr(err)
    assert "is it a Redis server?" in str(err)
    with Fake(http, hold=0.3) as f, reactis.Queue(qname, url=f.url, timeout=3) as q:
        with pytest.raises(reactis.ProtocolError):
            q.stats()


def test_row_24_hostile_array_length():
    arr = b"*2147483647\r\n:1\r\n:2\r\n"
    assert isinstance(fake_ping(arr, timeout=3), reactis.ConnectionLostError)
    assert isinstance(fake_ping(arr, hold=0.8, timeout=0.3), reactis.TimeoutError)


def test_row_25_lengths_out_of_range():
    for reply in (b"*99999999999\r\n", b"$-7\r\n"):
        err = fake_ping(reply, hold=0.3, timeout=3)
        assert isinstance(err, reactis.ProtocolError), (reply, repr(err))
        assert "protocol error" in str(err)
    err = fake_ping(b"$9223372036854775807\r\nabc", timeout=3)
    assert isinstance(err, (reactis.ProtocolError, reactis.ConnectionLostError)), repr(err)


def test_row_26_unknown_type_byte():
    assert isinstance(fake_ping(b"?what\r\n", hold=0.3, timeout=3), reactis.ProtocolError)


# ------------------------------------------------------------ the queue

def take(q: reactis.Queue, id: bytes, payload: bytes) -> None:
    jobs = q.fetch(10, timeout=2)
    found = [j for j in jobs if j.id == id and j.payload == payload]
    for j in jobs:
        j.ack()
    assert found, jobs


def test_row_27_payload_over_limit(base, qname):
    with reactis.Queue(qname, url=base) as q:
        with pytest.raises(reactis.PayloadTooLargeError, match="max_payload") as ei:
            q.schedule(b"\0" * 1048577, id=b"big")
        assert isinstance(ei.value, ValueError)
        with pytest.raises(reactis.PayloadTooLargeError):
            q.schedule_many([{"payload": b"\0" * 1048577, "id": b"big"}])
        q.schedule(b"\0" * 1048576, id=b"big")  # the limit itself is fine
        take(q, b"big", b"\0" * 1048576)
        with pytest.raises(TypeError):
            q.schedule(None)


def test_row_28_empty_id(base, qname):
    with reactis.Queue(qname, url=base) as q:
        q.schedule(b"g", id=b"")  # generates an id, as without one
        (job,) = q.fetch(1, timeout=2)
        assert len(job.id) == 12 and job.payload == b"g"
        job.ack()
        for call in (lambda: q.cancel(b""), lambda: q.reschedule(b"", delay=1),
                     lambda: q.run_now(b"")):
            with pytest.raises(reactis.InvalidArgumentError, match="no message id"):
                call()


def test_row_28_empty_id_returns_the_generated_id(base, qname):
    with reactis.Queue(qname, url=base) as q:
        s = q.schedule(b"g", id=b"")
        assert len(s.id) == 12


def test_row_29_id_too_long(base, qname):
    with reactis.Queue(qname, url=base) as q:
        with pytest.raises(reactis.InvalidArgumentError, match="at most 256"):
            q.schedule(b"p", id=b"i" * 257)
        q.schedule(b"p", id=b"i" * 256)
        take(q, b"i" * 256, b"p")


def test_row_30_binary_and_non_utf8_names(base):
    # Queue names are str (any Unicode; sent as UTF-8); ids and payloads
    # any bytes, NUL and invalid UTF-8 included, byte for byte.
    with reactis.Queue("bin.\u00e9\U0001F600", url=base) as q:
        assert q.name == "bin.\u00e9\U0001F600"
        bid, pl = b"id\0\xff\xfe\r\n end", b"\0\xff payload \0\x80"
        q.schedule(pl, id=bid)
        take(q, bid, pl)
        q.schedule(b"x", id=bid, delay=60)
        q.cancel(bid)
        q.schedule("caf\u00e9", id="\u00e9")  # str: UTF-8
        take(q, "\u00e9".encode(), "caf\u00e9".encode())
    with pytest.raises(TypeError):
        reactis.Queue(b"bytes-name", url=base)
    with pytest.raises(UnicodeEncodeError):
        reactis.Queue("a\ud800b", url=base)


def test_row_31_nul_bytes(base, srv):
    with reactis.Client(base) as c, reactis.Subscriber(base) as sub:
        assert c.command("SET", b"k\0\r\n\xff", b"\0v\0\r\n") == "OK"
        assert c.command("GET", b"k\0\r\n\xff") == b"\0v\0\r\n"
        ch = b"ch\0\xff\n"
        sub.subscribe(ch)
        assert c.publish(ch, b"\0v\0\r\n") == 1
        msg = sub.get_message(timeout=2)
        assert msg is not None and msg.channel == ch and msg.data == b"\0v\0\r\n"
        with pytest.raises(TypeError):
            c.command("GET", None)
        assert c.ping()
    # A queue name is a C string: NUL cannot be in it.
    with pytest.raises(ValueError, match="NUL"):
        reactis.Queue("a\0b", url=base)


@pytest.mark.parametrize("name", ["", "a{b", "a}b", "{tag}", "n" * 201])
def test_row_32_bad_queue_names(base, name):
    with pytest.raises(reactis.InvalidArgumentError, match="invalid queue name"):
        reactis.Queue(name, url=base)


def test_row_32_longest_name(base):
    with reactis.Queue("n" * 200, url=base) as q:
        assert q.name == "n" * 200


def test_row_33_wrong_type_key(base, srv, qname):
    with reactis.Queue(qname, url=base) as q:
        q.schedule(b"k", id=b"keep")
        srv.command("SET", "rx:{%s}:i" % qname, "not a hash")
        with pytest.raises(reactis.WrongTypeError) as ei:
            q.stats()
        assert "rx:{%s}:i" % qname in str(ei.value) and "holds a string" in str(ei.value)
        srv.command("DEL", "rx:{%s}:i" % qname)
        take(q, b"keep", b"k")  # nothing lost


def test_row_34_stale_and_malformed_tokens(base, qname):
    with reactis.Queue(qname, url=base) as q:
        with pytest.raises(reactis.StaleDeliveryError, match="no longer pending"):
            q.ack("1-1")
        with pytest.raises(reactis.StaleDeliveryError):
            q.extend("1-1", 1)
        for bad in ("", "x", "1-", "-1", "1-2-3", "18446744073709551616-0"):
            with pytest.raises(reactis.InvalidArgumentError):
                q.ack(bad)
        with pytest.raises(TypeError):
            q.ack(12)


def test_row_35_negative_delay(base, qname):
    with reactis.Queue(qname, url=base) as q:
        q.schedule(b"l", id=b"later")
        before = time.time() * 1000
        s = q.schedule(b"n", id=b"neg", delay=-5)
        assert before - 6000 <= s.due_ms <= before - 4000  # due in the past
        jobs = q.fetch(10, timeout=2)
        assert [j.id for j in jobs] == [b"neg", b"later"]  # first
        for j in jobs:
            j.ack()
        s = q.schedule(b"o", id=b"old", at=-0.001)  # before 1970
        assert s.due_ms == -1
        take(q, b"old", b"o")


def test_row_36_absurd_delays(base, qname):
    with reactis.Queue(qname, url=base) as q:
        for kw in ({"delay": 1e15}, {"delay": -1e15}, {"at": 253402300800.0},
                   {"at": -253402300800.0}):
            with pytest.raises(reactis.InvalidArgumentError, match="out of range"):
                q.schedule(b"a", id=b"abs", **kw)
        # Past what a C long long holds, or not a number: Python's own errors.
        with pytest.raises(OverflowError):
            q.schedule(b"a", id=b"abs", delay=1e300)
        with pytest.raises(OverflowError):
            q.schedule(b"a", id=b"abs", delay=float("inf"))
        with pytest.raises(TypeError):
            q.schedule(b"a", id=b"abs", delay=float("nan"))
        s = q.schedule(b"y", id=b"y9999", at=253402300799.999)
        assert s.due_ms == 253402300799999
        st = q.stats()
        assert st.scheduled == 1  # nothing absurd got in
        q.cancel(b"y9999")


def test_row_37_counts_out_of_range(base, qname):
    with reactis.Queue(qname, url=base) as q:
        for bad in (0, 1001, -1, True):
            with pytest.raises(ValueError):
                q.fetch(bad, timeout=0)


def test_row_38_queue_options(base, qname):
    with pytest.raises(reactis.InvalidArgumentError, match="10.."):
        reactis.Queue(qname, url=base, visibility_timeout_ms=5)
    with pytest.raises(ValueError):
        reactis.Queue(qname, url=base, visibility_timeout=-1)
    with pytest.raises(reactis.URLError, match="unknown option"):
        reactis.Queue(qname, url=base, visibility=1000)


BAD_TEMPLATES = [("user:{id", "unclosed"), ("{a}{b}", "touch"), ("{1a}", "bad placeholder name"),
                 ("{a}:{a}", "twice"), ("a}b", "unmatched"), ("{}", "bad placeholder name"),
                 ("", "empty")]


@pytest.mark.parametrize("tpl,gist", BAD_TEMPLATES)
def test_row_39_malformed_templates(tpl, gist):
    if not hasattr(reactis, "Template"):
        pytest.skip("this reactis has no Template")
    with pytest.raises(reactis.InvalidArgumentError, match=gist):
        reactis.Template(tpl)


def test_row_39_what_templates_accept():
    if not hasattr(reactis, "Template"):
        pytest.skip("this reactis has no Template")
    t = reactis.Template(b"rx:{{\xff\0}}:{id}")  # binary literals, "{{" braces
    assert t.match(b"rx:{\xff\0}:42") == {"id": b"42"}
    assert t.match(b"rx:{x}:") is None


def test_row_40_keyspace_garbage():
    for ch in (b"__keyspace@x__:k", b"__keyspace@0__", b"__keyevent@0__:",
               b"__keyspace@-1__:k", b"__keyspace@99999999999__:k", b"__KEYSPACE@0__:k", b""):
        assert reactis.KeyEvent.parse(ch, b"del") is None
    ke = reactis.KeyEvent.parse(b"__keyspace@3__:a:\0b", b"expired")
    assert ke is not None and ke.db == 3 and ke.key == b"a:\0b"


def test_row_41_after_close(base, qname):
    c = reactis.Client(base)
    c.close()
    c.close()  # idempotent
    for call in (c.ping, lambda: c.command("PING"), lambda: c.publish("a", "b"), c.connect):
        with pytest.raises(reactis.StateError):
            call()
    s = reactis.Subscriber(base)
    s.close()
    for call in (lambda: s.subscribe("x"), lambda: s.get_message(0.1),
                 lambda: next(s.listen())):
        with pytest.raises(reactis.StateError):
            call()
    q = reactis.Queue(qname, url=base)
    q.close()
    for call in (lambda: q.schedule(b"x"), q.stats, lambda: q.ack("1-1"),
                 lambda: q.cancel(b"x")):
        with pytest.raises(reactis.StateError):
            call()
    # fetch() on a closed queue returns [] (close() from another thread is
    # how a waiting fetch is ended), and wakeup() does nothing.
    assert q.fetch(1, timeout=0.1) == []
    q.wakeup()
