"""rediss:// with certificate and host name verification (on by default)."""

import pytest

import reactis


def q(server, **opts):
    query = "&".join("%s=%s" % kv for kv in opts.items())
    return server.tls_url + ("?" + query if query else "")


def test_verified_round_trip(tls_server, channel):
    url = q(tls_server, ssl_ca_certs=tls_server.tls["ca"], ssl_server_name="localhost")
    with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
        sub.subscribe(channel)
        assert pub.publish(channel, b"\x00secret\xff") == 1
        msg = sub.get_message(timeout=5)
        assert msg is not None and msg.data == b"\x00secret\xff"
        assert pub.command("SET", "tls:k", b"v") == "OK"


def test_options_as_keywords(tls_server):
    with reactis.Client(tls_server.tls_url, ssl_ca_certs=tls_server.tls["ca"],
                        ssl_check_hostname=False) as c:
        assert c.ping()


def test_unknown_ca_is_refused(tls_server):
    with reactis.Client(tls_server.tls_url) as c:
        with pytest.raises(reactis.TLSVerifyError) as ei:
            c.ping()
    assert ei.value.name == "ETLSVERIFY"
    assert isinstance(ei.value, reactis.TLSError)


def test_host_name_mismatch_is_refused(tls_server):
    # The certificate names "localhost"; we connect to 127.0.0.1.
    with reactis.Client(q(tls_server, ssl_ca_certs=tls_server.tls["ca"])) as c:
        with pytest.raises(reactis.TLSVerifyError):
            c.ping()


def test_cert_reqs_none_skips_verification(tls_server):
    """What Heroku Redis needs (self-signed certificates)."""
    with reactis.Client(q(tls_server, ssl_cert_reqs="none")) as c:
        assert c.ping()


def test_plain_client_on_tls_port_fails(tls_server):
    with reactis.Client("redis://127.0.0.1:%d" % tls_server.tls_port, timeout=2) as c:
        with pytest.raises(reactis.Error):
            c.ping()


def test_queue_over_tls(tls_server):
    url = q(tls_server, ssl_ca_certs=tls_server.tls["ca"], ssl_server_name="localhost")
    with reactis.Queue("tls.queue", url) as queue:
        queue.schedule(b"over tls")
        (job,) = queue.fetch(timeout=5)
        assert job.payload == b"over tls"
        job.ack()
