"""What needs no server: the module, errors, typemaps, argument checks."""

import pytest

import reactis
from reactis import cimpl, errors


def test_version():
    assert reactis.__version__ == reactis.core_version() == cimpl.version()
    assert reactis.__version__.count(".") == 2


def test_status_constants_match_names():
    assert cimpl.OK == 0 and cimpl.TIMEOUT > 0 and cimpl.EAUTH < 0
    assert cimpl.errname(cimpl.EAUTH) == "EAUTH"
    assert cimpl.errname(cimpl.OK) == "OK"
    assert cimpl.errname(-12345) == "UNKNOWN"
    assert "authentication" in cimpl.strerror(cimpl.EAUTH)


def test_every_error_code_has_a_specific_class():
    codes = [getattr(cimpl, n) for n in dir(cimpl)
             if n.isupper() and n.startswith("E") and isinstance(getattr(cimpl, n), int)
             and getattr(cimpl, n) < 0]
    assert len(codes) >= 25
    for code in codes:
        cls = errors.error_class(cimpl.errname(code))
        assert cls is not reactis.Error, cimpl.errname(code)
        assert issubclass(cls, reactis.Error)


def test_error_factory_builds_typed_errors():
    e = errors._from_status(cimpl.EAUTH, "EAUTH", "wrong password")
    assert isinstance(e, reactis.AuthenticationError)
    assert isinstance(e, reactis.ConnectionError)
    assert (e.code, e.name, str(e)) == (cimpl.EAUTH, "EAUTH", "wrong password")
    e = errors._from_status(cimpl.EREPLY, "EREPLY", "WRONGTYPE Operation against a key")
    assert isinstance(e, reactis.WrongTypeError)
    e = errors._from_status(-999, "UNKNOWN", "new")
    assert type(e) is reactis.Error
    assert issubclass(reactis.URLError, ValueError)
    assert issubclass(reactis.PayloadTooLargeError, ValueError)


def test_errors_pickle():
    import pickle

    e = pickle.loads(pickle.dumps(reactis.ConfigForbiddenError("no CONFIG", -15, "ECONFIG")))
    assert type(e) is reactis.ConfigForbiddenError
    assert (e.code, e.name, str(e)) == (-15, "ECONFIG", "no CONFIG")


@pytest.mark.parametrize("bad", [
    "bogus://localhost",
    "redis://localhost:notaport",
    "redis://localhost:99999",
    "redis://localhost/notadb",
    "redis://localhost/0?no_such_option=1",
    "redis://[::1",
])
def test_malformed_url_raises_url_error(bad):
    with pytest.raises(reactis.URLError) as ei:
        reactis.Client(bad)
    assert ei.value.code == cimpl.EURL and ei.value.name == "EURL"
    with pytest.raises(ValueError):
        reactis.Subscriber(bad)


def test_malformed_url_error_hides_password():
    with pytest.raises(reactis.URLError) as ei:
        reactis.Client("redis://user:hunter2@localhost:6379/0?bogus=1")
    assert "hunter2" not in str(ei.value)


def test_url_type_and_nul_checks():
    with pytest.raises(TypeError):
        reactis.Client(b"redis://localhost")
    with pytest.raises(ValueError):
        reactis.Client("redis://localhost\0:6379")


def test_options_are_checked():
    with pytest.raises(reactis.URLError):
        reactis.Client("redis://localhost", no_such_option=3)
    with pytest.raises(TypeError):
        reactis.Client("redis://localhost", timeout=[1])
    with pytest.raises(ValueError):
        reactis.Client("redis://localhost", timeout=-1)
    reactis.Client("redis://localhost", timeout=0.5, connect_timeout=2, client_name="t").close()
    with pytest.raises(ValueError):
        reactis.Subscriber("redis://localhost", batch_size=0)
    with pytest.raises(reactis.URLError):
        reactis.Subscriber("redis://localhost", bogus=1)
    s = reactis.Subscriber("redis://localhost", health_check_interval=0.5,
                           health_check_timeout=0.25, reconnect_min=0.01,
                           reconnect_max=0.5, reconnect_max_attempts=3)
    s.close()


def test_repr_hides_password():
    c = reactis.Client("redis://alice:s3cret@localhost:6379/2")
    assert "s3cret" not in repr(c) and "***" in repr(c)
    assert "s3cret" not in c.url
    c.close()
    assert "closed" in repr(c)
    s = reactis.Subscriber("redis://:s3cret@localhost:6379")
    assert "s3cret" not in repr(s)
    s.close()
    assert reactis.redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"


def test_closed_handles_raise_state_error():
    c = reactis.Client("redis://localhost")
    c.close()
    c.close()  # idempotent
    with pytest.raises(reactis.StateError):
        c.command("PING")
    s = reactis.Subscriber("redis://localhost")
    s.close()
    with pytest.raises(reactis.StateError):
        s.subscribe("x")
    with pytest.raises(reactis.StateError):
        s.get_message()


def test_command_argument_encoding():
    from reactis._util import encode_arg

    assert encode_arg(b"x") == b"x" and encode_arg("é") == "é"
    assert encode_arg(42) == "42" and encode_arg(-1) == "-1"
    assert encode_arg(1.5) == "1.5"
    for bad in (True, None, object(), [1]):
        with pytest.raises(TypeError):
            encode_arg(bad)
    c = reactis.Client("redis://localhost")
    with pytest.raises(ValueError):
        c.command()
    with pytest.raises(TypeError):
        c.command("SET", "k", None)
    c.close()


def test_cimpl_argv_typemap_rejects_wrong_types():
    conn = cimpl.Conn("redis://127.0.0.1:1")
    with pytest.raises(TypeError):
        conn.call("PING")  # one string is not an argv
    with pytest.raises(TypeError):
        conn.call(["SET", 1])
    with pytest.raises(ValueError):
        conn.call([])


def test_cimpl_bytes_typemap_accepts_bytes_like():
    for v in (b"__keyspace@0__:k", "__keyspace@0__:k", bytearray(b"__keyspace@0__:k"),
              memoryview(b"__keyspace@0__:k")):
        assert cimpl.keyspace_parse(v, b"del") == (cimpl.SPACE_KEYSPACE, 0, cimpl.keyspace_parse(
            b"__keyspace@0__:k", b"del")[2], b"del", b"k")
    with pytest.raises(TypeError):
        cimpl.keyspace_parse(12, b"x")


def test_message_object():
    m = reactis.Message("message", b"ch", b"\x00data")
    assert m.kind == "message" and m.channel == b"ch" and m.data == b"\x00data"
    assert m.key_event is None and m.gap_start is None
    assert m == reactis.Message("message", b"ch", b"\x00data")
    g = reactis.Message("gap", gap_start_ms=1000, gap_end_ms=3500, reconnects=2)
    assert g.is_gap and g.gap_start == 1.0 and g.gap_end == 3.5
    assert "gap" in repr(g)
    k = reactis.Message("pmessage", b"__keyevent@0__:expired", b"job:1", pattern=b"__keyevent@*")
    assert k.key_event == reactis.KeyEvent("keyevent", 0, "expired", b"job:1")
