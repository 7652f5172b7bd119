"""Redis Cluster through the Python binding: the same API as for one server,
only the URL changes (issue 7).

A module-scoped fixture starts 3 masters with one replica each on free
loopback ports (as tests/support/cluster.c does for the C tests) and creates
the cluster with ``redis-cli --cluster create``. The Client tests check
routing behind reactis's back (CLUSTER KEYSLOT and plain sockets to each
node), follow a slot migration (ASK, then MOVED) and a killed master. The
failover test runs last and restarts the killed node as a replica, so the
cluster has 3 masters and 3 replicas again for anything after it.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Dict, List, Optional, Tuple

import pytest

import reactis

from conftest import RedisServer, child_env, free_port, raw_command

MASTERS, REPLICAS = 3, 1


def _text(reply) -> str:
    if isinstance(reply, Exception):
        raise reply
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _view(port: int) -> List[dict]:
    """Node *port*'s CLUSTER NODES, parsed."""
    nodes = []
    for line in _text(raw_command(port, "CLUSTER", "NODES")).splitlines():
        tok = line.split()
        if len(tok) < 8:
            continue
        ranges = []
        for t in tok[8:]:
            if t.startswith("["):
                continue
            a, _, b = t.partition("-")
            ranges.append((int(a), int(b or a)))
        flags = tok[2].split(",")
        nodes.append({"id": tok[0], "port": int(tok[1].split("@")[0].rsplit(":", 1)[1]),
                      "master": "master" in flags, "fail": "fail" in flags,
                      "myself": "myself" in flags, "ranges": ranges})
    return nodes


def _slot_map(port: int) -> Dict[Tuple[int, int], int]:
    return {r: n["port"] for n in _view(port) if n["master"] and not n["fail"]
            for r in n["ranges"]}


class Cluster:
    def __init__(self, servers: List[RedisServer]) -> None:
        self.servers = servers

    @property
    def ports(self) -> List[int]:
        return [s.port for s in self.servers]

    @property
    def url(self) -> str:
        return "redis://" + ",".join("127.0.0.1:%d" % p for p in self.ports)

    def masters(self) -> Dict[int, List[Tuple[int, int]]]:
        """Master port -> its slot ranges."""
        out: Dict[int, List[Tuple[int, int]]] = {}
        for (a, b), port in _slot_map(self.ports[0]).items():
            out.setdefault(port, []).append((a, b))
        return out

    def key_on(self, port: int, prefix: str) -> str:
        """A key named prefix... whose slot is served by master *port*."""
        ranges = self.masters()[port]
        for i in range(100000):
            key = "%s:%d" % (prefix, i)
            slot = raw_command(port, "CLUSTER", "KEYSLOT", key)
            if any(a <= slot <= b for a, b in ranges):
                return key
        raise AssertionError("no key found for port %d" % port)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def _ours(s: RedisServer) -> bool:
    """The server answering on s.port is the process we started (two tests
    picking the same free port at once could otherwise mix clusters)."""
    try:
        info = _text(raw_command(s.port, "INFO", "server"))
    except OSError:
        return False
    return ("process_id:%d\r\n" % s.proc.pid) in info


def _start_node(workdir) -> RedisServer:
    for attempt in range(3):
        # The cluster bus port is given: port + 10000 may be taken or > 65535.
        s = RedisServer(workdir / ("try%d" % attempt), [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000", "--cluster-port", str(free_port()),
            "--repl-diskless-sync-delay", "0"])
        atexit.register(s.stop)
        try:
            s.start()
        except RuntimeError:
            continue
        if _ours(s):
            return s
        s.stop()
    raise RuntimeError("could not start a cluster node in %s" % workdir)


def _wait_ok(c: Cluster, timeout: float = 30.0) -> None:
    """Every node says cluster_state:ok, sees every slot served by a running
    node, the same map everywhere, no master without slots (a replica whose
    role has not spread yet: redis-cli returns before it has), and every
    replica is linked."""
    deadline = time.monotonic() + timeout
    ports = set(c.ports)
    while True:
        try:
            maps = [_slot_map(p) for p in c.ports]
            ok = all("cluster_state:ok" in _text(raw_command(p, "CLUSTER", "INFO"))
                     for p in c.ports)
            ok = ok and all(m == maps[0] for m in maps) and set(maps[0].values()) <= ports
            ok = ok and sum(b - a + 1 for a, b in maps[0]) == 16384
            ok = ok and len(set(maps[0].values())) == MASTERS
            ok = ok and not any(n["master"] and not n["ranges"] and not n["fail"]
                                for p in c.ports for n in _view(p))
            ok = ok and all(
                "role:master" in info or "master_link_status:up" in info
                for info in (_text(raw_command(p, "INFO", "replication")) for p in c.ports))
        except (OSError, RuntimeError):
            ok = False
        if ok:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster did not become ok within %.0f s" % timeout)
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cli = shutil.which("redis-cli")
    if not cli:
        pytest.skip("redis-cli not found")
    base = tmp_path_factory.mktemp("cluster")
    c = Cluster([])
    try:
        for i in range(MASTERS * (1 + REPLICAS)):
            c.servers.append(_start_node(base / ("node%d" % i)))
        cmd = [cli, "--cluster", "create", *("127.0.0.1:%d" % p for p in c.ports),
               "--cluster-replicas", str(REPLICAS), "--cluster-yes"]
        r = subprocess.run(cmd, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        _wait_ok(c)
        yield c
    finally:
        c.stop()


def _drain_expired(sub: reactis.Subscriber, want: set, timeout: float) -> set:
    """Reads until every key of *want* had its expired event or timeout."""
    got = set()
    deadline = time.monotonic() + timeout
    while not want <= got and time.monotonic() < deadline:
        m = sub.get_message(timeout=0.5)
        if m is None or m.kind == "gap":
            continue
        ev = m.key_event
        if ev is not None and ev.event == "expired":
            got.add(ev.key)
    return got


# ------------------------------------------------------------ tests

def _enable_per_node(cluster, flags="Ex"):
    """What rx_cluster_notify_ensure does in C: every node, replicas too (a
    promoted replica keeps notifying), through a reactis.Client per node."""
    for port in cluster.ports:
        effective = reactis.enable_keyspace_events("redis://127.0.0.1:%d" % port, flags)
        assert "E" in effective and "x" in effective, (port, effective)


def _notify_flags(port: int) -> str:
    return _text(raw_command(port, "CONFIG", "GET", "notify-keyspace-events")[1])


def test_enable_keyspace_events_on_cluster_url(cluster):
    # From nothing, so the call must set every node, replicas included.
    for port in cluster.ports:
        assert raw_command(port, "CONFIG", "SET", "notify-keyspace-events", "") == "OK"
    flags = reactis.enable_keyspace_events(cluster.url, "Ex")
    assert "E" in flags and "x" in flags
    for port in cluster.ports:
        value = _notify_flags(port)
        assert "E" in value and "x" in value, (port, value)
    # Through a cluster Client too; flags are only ever added.
    with reactis.Client(cluster.url) as c:
        flags = c.enable_keyspace_events("g")
    assert set("Exg") <= set(flags), flags
    for port in cluster.ports:
        assert set("Exg") <= set(_notify_flags(port)), port
    with pytest.raises(reactis.InvalidArgumentError):
        reactis.enable_keyspace_events(cluster.url, "Q")


def test_enable_keyspace_events_on_every_node(cluster):
    _enable_per_node(cluster)
    for port in cluster.ports:
        value = _text(raw_command(port, "CONFIG", "GET", "notify-keyspace-events")[1])
        assert "E" in value and "x" in value, (port, value)


def test_subscriber_gets_expired_events_of_every_master(cluster):
    _enable_per_node(cluster)
    masters = cluster.masters()
    assert len(masters) == MASTERS
    with reactis.Subscriber(cluster.url) as sub:
        sub.psubscribe(b"__keyevent@0__:expired")
        # Subscribed everywhere before the keys expire: a probe key per master
        # until its event arrives, bounded.
        deadline = time.monotonic() + 15
        round_ = 0
        while True:
            round_ += 1
            batch = set()
            for port in masters:
                key = cluster.key_on(port, "probe%d" % round_)
                with reactis.Client("redis://127.0.0.1:%d" % port) as c:
                    assert c.command("SET", key, b"x", "PX", 1) == "OK"
                batch.add(key.encode())
            got = _drain_expired(sub, batch, 2.0)
            if batch <= got:
                break
            assert time.monotonic() < deadline, "not subscribed on every master: %r" % (
                batch - got)
        keys = set()
        for port in masters:
            for i in range(3):
                key = cluster.key_on(port, "exp%d" % i)
                with reactis.Client("redis://127.0.0.1:%d" % port) as c:
                    assert c.command("SET", key, b"v", "PX", 50) == "OK"
                keys.add(key.encode())
        got = _drain_expired(sub, keys, 10.0)
        assert keys <= got, "missing: %r" % (keys - got)
        assert len(keys) == 3 * MASTERS


def test_partitioned_queue_delivers_everything(cluster):
    # Partition i gets a name whose slot is in the i-th sixth of the slots
    # (queue_cluster.c), so 6 partitions cover every master of 3.
    name = "sms"
    n = 300
    with reactis.Queue(name, url=cluster.url, partitions=6) as q:
        out = q.schedule_many({"payload": b"p%d" % i, "id": b"m%d" % i} for i in range(n))
        assert [s.outcome for s in out] == ["added"] * n
        st = q.stats()
        assert st.scheduled + st.ready == n
        # The partitions are spread over the masters.
        holders = {port for port in cluster.masters()
                   if raw_command(port, "KEYS", "rx:{%s*" % name)}
        assert len(holders) == MASTERS, holders
        with reactis.Queue(name, url=cluster.url, partitions=6) as consumer:
            seen: Dict[bytes, bytes] = {}
            deadline = time.monotonic() + 20
            while len(seen) < n and time.monotonic() < deadline:
                for job in consumer.fetch(100, timeout=1.0):
                    assert job.attempt == 1
                    assert job.id not in seen
                    seen[job.id] = job.payload
                    job.ack()
        assert seen == {b"m%d" % i: b"p%d" % i for i in range(n)}
        st = q.stats()
        assert (st.scheduled, st.ready, st.in_flight, st.dead) == (0, 0, 0, 0)
        assert st.acked == n


def test_timers_on_a_cluster_url(cluster):
    # Timers are a queue underneath: with partitions they spread over the
    # masters and keep every promise (re-touch moves the deadline and replaces
    # the data, a stopped timer never fires, the others fire once each).
    n = 40
    with reactis.Timers("ctm", url=cluster.url, partitions=3) as t:
        assert t.touch_many({b"d%d" % i: b"v%d" % i for i in range(n)}, ttl=0.3) == n
        assert t.touch(b"d0", 1.2, b"late") is False  # armed already: moved
        assert t.stop(b"d1") is True
        assert t.stop(b"d1") is False
        holders = {port for port in cluster.masters()
                   if raw_command(port, "KEYS", "rx:{timer:ctm*")}
        assert len(holders) >= 2, holders
        seen: Dict[bytes, bytes] = {}
        deadline = time.monotonic() + 10
        while len(seen) < n - 1 and time.monotonic() < deadline:
            for f in t.fetch(20, timeout=0.5):
                assert f.id not in seen
                assert f.fired_ms >= f.deadline_ms - 2
                seen[f.id] = f.data
                f.ack()
        expected = {b"d%d" % i: b"v%d" % i for i in range(2, n)}
        expected[b"d0"] = b"late"
        assert seen == expected
        assert t.fetch(5, timeout=0.3) == []


# ------------------------------------------------------------ Client

def _owner(port: int, slot: int) -> Optional[int]:
    """The master port serving *slot* in node *port*'s view."""
    for (a, b), p in _slot_map(port).items():
        if a <= slot <= b:
            return p
    return None


def _key_in(lo: int, hi: int, prefix: str) -> str:
    for i in range(1000000):
        key = "%s:%d" % (prefix, i)
        if lo <= reactis.keyslot(key) <= hi:
            return key
    raise AssertionError("no key for slots %d-%d" % (lo, hi))


def _node_id(port: int) -> str:
    return _text(raw_command(port, "CLUSTER", "MYID"))


def _live_ports(cluster) -> List[int]:
    return [s.port for s in cluster.servers if s.proc is not None and s.proc.poll() is None]


def _wait_owner(cluster, slot: int, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(_owner(p, slot) == port for p in _live_ports(cluster)):
        assert time.monotonic() < deadline, "slot %d did not move to %d everywhere" % (slot, port)
        time.sleep(0.02)


def test_client_routes_every_slot_range_to_its_owner(cluster):
    masters = cluster.masters()
    assert len(masters) == MASTERS
    with reactis.Client(cluster.url) as c:
        assert c.cluster and c.ping()
        st0 = c.stats()
        ranges = 0
        for port, owned in masters.items():
            for lo, hi in owned:
                ranges += 1
                for key in {_key_in(lo, hi, "route"), _key_in(hi, hi, "edge"),
                            _key_in(lo, lo, "edge")}:
                    # The slot as the server computes it, not as reactis does.
                    slot = raw_command(port, "CLUSTER", "KEYSLOT", key)
                    assert lo <= slot <= hi
                    value = b"v\x00\xff" + key.encode()
                    assert c.command("SET", key, value) == "OK"
                    # On its owner, read behind reactis's back; the others
                    # redirect to it.
                    assert raw_command(port, "GET", key) == value
                    for other in masters:
                        if other != port:
                            reply = raw_command(other, "GET", key)
                            assert isinstance(reply, RuntimeError), (other, reply)
                            assert str(reply).startswith("MOVED %d " % slot), reply
                    assert c.command("GET", key) == value
        assert ranges >= MASTERS
        # A binary key with a hash tag lands where its tag says.
        key = b"\x00bin{route}\xff"
        slot = raw_command(cluster.ports[0], "CLUSTER", "KEYSLOT", key)
        assert slot == raw_command(cluster.ports[0], "CLUSTER", "KEYSLOT", "route")
        owner = _owner(cluster.ports[0], slot)
        assert c.command("SET", key, b"b") == "OK"
        assert raw_command(owner, "GET", key) == b"b"
        # Commands whose key is not the first argument.
        assert c.command("EVAL", "return redis.call('GET', KEYS[1])", 1, key) == b"b"
        assert c.command("MSET", "{t}a", 1, "{t}b", 2) == "OK"
        assert c.command("MGET", "{t}a", "{t}b") == [b"1", b"2"]
        # Keys of two slots: the server's CROSSSLOT, an ordinary ReplyError.
        a, b = (_key_in(lo, hi, "x") for lo, hi in (next(iter(masters.values()))[0],
                                                       list(masters.values())[1][0]))
        with pytest.raises(reactis.ReplyError) as ei:
            c.command("MGET", a, b)
        assert "CROSSSLOT" in str(ei.value)
        assert not isinstance(ei.value, reactis.ClusterError)
        # Typed errors of the owner come back as with one server.
        with pytest.raises(reactis.WrongTypeError):
            c.command("LPUSH", key, b"x")
        assert c.stats().moved == st0.moved  # the map was right all along


def test_keyslot_matches_cluster_keyslot(cluster):
    import random

    rnd = random.Random(7)
    keys: List = [b"", b"foo", "123456789", "{user1000}.following", "{user1000}.followers",
                  "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{}x", "{", "}{", "{a",
                  b"\x00{\xff}\x00", b"\xff\xfe", "ключ", "{ключ}.a", b"{\x00}", "x" * 1000]
    keys += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40))) for _ in range(150)]
    keys += [bytes(rnd.randrange(256) for _ in range(3)) + b"{" +
             bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 5))) + b"}" +
             bytes(rnd.randrange(256) for _ in range(3)) for _ in range(100)]
    port = cluster.ports[0]
    for k in keys:
        want = raw_command(port, "CLUSTER", "KEYSLOT", k)
        assert reactis.keyslot(k) == want, k
        assert reactis.Client.keyslot(k) == want, k
    assert reactis.keyslot("{user1}.a") == reactis.keyslot(b"{user1}.b") == reactis.keyslot("user1")
    assert reactis.keyslot(bytearray(b"foo")) == reactis.keyslot(memoryview(b"foo")) == 12182
    with pytest.raises(TypeError):
        reactis.keyslot(5)


def test_nodes_lists_three_masters_and_three_replicas(cluster):
    view = cluster.masters()
    with reactis.Client(cluster.url) as c:
        nodes = c.nodes()
        masters, replicas = c.nodes("master"), c.nodes("replica")
        with pytest.raises(ValueError):
            c.nodes("primary")
    assert len(masters) == MASTERS and len(replicas) == MASTERS * REPLICAS
    assert nodes == masters + replicas
    assert {n.port for n in nodes} == set(cluster.ports)
    assert [n.ranges[0][0] for n in masters] == sorted(n.ranges[0][0] for n in masters)
    assert sum(b - a + 1 for n in masters for a, b in n.ranges) == 16384
    for n in masters:
        assert (n.is_master, n.failed, n.role, n.host) == (True, False, "master", "127.0.0.1")
        assert sorted(n.ranges) == sorted(view[n.port])
        assert n.id == _node_id(n.port) and len(n.id) == 40
    master_ports = {n.port for n in masters}
    for n in replicas:
        assert (n.is_master, n.failed, n.role, n.ranges) == (False, False, "replica", [])
        info = _text(raw_command(n.port, "INFO", "replication"))
        assert "role:slave" in info
        assert int(info.split("master_port:")[1].split()[0]) in master_ports
    # A node's own URL gives a plain Client, for per-node commands.
    with reactis.Client(masters[0].url) as one:
        assert not one.cluster
        assert one.command("CLUSTER", "MYID") == masters[0].id.encode()
        with pytest.raises(reactis.StateError):
            one.nodes()
        with pytest.raises(reactis.StateError):
            one.stats()


def test_client_api_on_a_cluster_url(cluster, channel):
    c = reactis.Client(cluster.url, client_name="rx-cluster", timeout=10)
    try:
        assert repr(c) == "<reactis.Client cluster %s (not connected)>" % cluster.url
        assert c.url == cluster.url and not c.connected
        c.connect()  # loads the topology
        assert c.connected and c.ping()
        assert repr(c).endswith("(connected)>")
        # CLIENT SETNAME on each node it talks to.
        assert c.command("CLIENT", "GETNAME") == b"rx-cluster"
        with reactis.Subscriber(cluster.url) as sub:
            sub.subscribe(channel)
            # PUBLISH goes to one master and the cluster forwards it.
            deadline = time.monotonic() + 10
            msg = None
            while msg is None and time.monotonic() < deadline:
                assert isinstance(c.publish(channel, b"hi"), int)
                m = sub.get_message(timeout=0.5)
                if m is not None and m.kind == "message":
                    msg = m
            assert msg is not None and (msg.channel, msg.data) == (channel, b"hi")
        # wakeup() from another thread ends a blocking command at once: the
        # GIL is released while it waits, or this thread could not call it.
        got: List[BaseException] = []

        def blocked():
            try:
                c.command("BLPOP", "{w}nothing", 2)
            except BaseException as e:  # noqa: B902 - recorded for the assertion
                got.append(e)

        t = threading.Thread(target=blocked)
        t0 = time.monotonic()
        t.start()
        time.sleep(0.3)
        # A command under way: the state is answered at once, not after it.
        assert c.connected and repr(c).endswith("(connected)>")
        c.wakeup()
        t.join(5)
        assert not t.is_alive() and time.monotonic() - t0 < 1.5
        assert len(got) == 1 and isinstance(got[0], reactis.Interrupted), got
        assert c.command("SET", "{w}after", 1) == "OK"  # usable afterwards
    finally:
        c.close()
    c.close()  # idempotent
    assert c.closed and repr(c).endswith("(closed)>")
    with pytest.raises(reactis.StateError):
        c.command("PING")
    with reactis.Client(cluster.url) as c2:
        assert c2.ping()
    assert c2.closed
    # The password never shows (nothing is connected here).
    secret = reactis.Client("redis://user:s3cret@127.0.0.1:%d,127.0.0.1:%d?timeout=1"
                            % tuple(cluster.ports[:2]))
    assert "s3cret" not in repr(secret) and "s3cret" not in secret.url
    assert secret.url == "redis://user:***@127.0.0.1:%d,127.0.0.1:%d" % tuple(cluster.ports[:2])
    assert reactis.redact_url("rediss://:s3cret@a:1,b:2") == "rediss://:***@a:1,b:2"
    secret.close()


@pytest.mark.parametrize("url", [
    "redis://a:1,,b:2", "redis://a:1,b:2/3", "redis://a:1,b:2?db=2", "redis://a:1,b:99999",
    "redis://a:1,b:2?bogus=1", "redis://u:s3cret@a:1,b:x", "redis://,a:1",
    "rediss://u:s3cret@a:1,b:2?cluster=maybe"])
def test_bad_cluster_urls_raise_url_error(url):
    with pytest.raises(reactis.URLError) as ei:
        reactis.Client(url)
    assert "s3cret" not in str(ei.value)
    with pytest.raises(reactis.URLError):
        reactis.enable_keyspace_events(url, "Ex")
    with pytest.raises(reactis.URLError):
        reactis.Client("redis://127.0.0.1:1,127.0.0.1:2", bogus=1)


def test_cluster_yes_on_a_standalone_server_is_a_cluster_error(redis_server):
    url = "redis://127.0.0.1:%d" % redis_server.port
    with reactis.Client(url) as plain:
        assert not plain.cluster and plain.ping()
    with reactis.Client(url + "?cluster=yes") as c:
        assert c.cluster
        t0 = time.monotonic()
        with pytest.raises(reactis.ClusterError) as ei:
            c.ping()
        assert "not a Redis Cluster" in str(ei.value)
        assert time.monotonic() - t0 < 2  # a clear error, not endless retries
        with pytest.raises(reactis.ClusterError):
            c.nodes()


def test_moved_after_a_slot_migration_is_followed(cluster):
    slot = reactis.keyslot("mig")
    src = _owner(cluster.ports[0], slot)
    dst = next(p for p in cluster.masters() if p != src)
    with reactis.Client(cluster.url) as c:
        assert c.command("SET", "{mig}one", "v1") == "OK"
        assert c.command("SET", "{mig}two", "v2") == "OK"
        st0 = c.stats()
        assert raw_command(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(src)) == "OK"
        assert raw_command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(dst)) == "OK"
        # Migrating: a key still on the source is served there; a new one is
        # sent to the target with ASKING.
        assert c.command("GET", "{mig}one") == b"v1"
        assert c.command("SET", "{mig}new", "v3") == "OK"
        st = c.stats()
        assert st.ask > st0.ask and st.moved == st0.moved
        keys = raw_command(src, "CLUSTER", "GETKEYSINSLOT", slot, 100)
        assert sorted(keys) == [b"{mig}one", b"{mig}two"]
        assert raw_command(src, "MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys) == "OK"
        assert c.command("GET", "{mig}one") == b"v1"  # moved mid-way: ASK again
        assert c.stats().ask >= st0.ask + 2
        dst_id = _node_id(dst)
        for port in [dst, src] + [p for p in cluster.masters() if p not in (src, dst)]:
            assert raw_command(port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id) == "OK"
        _wait_owner(cluster, slot, dst)
        # The source says MOVED now; the client follows and reloads its map.
        assert c.command("GET", "{mig}two") == b"v2"
        st = c.stats()
        assert st.moved > st0.moved
        time.sleep(0.15)  # past the core's refresh rate limit
        assert [c.command("GET", "{mig}%s" % k) for k in ("one", "two", "new")] == [
            b"v1", b"v2", b"v3"]
        st2 = c.stats()
        assert st2.moved == st.moved and st2.refreshes > st0.refreshes
        assert raw_command(dst, "GET", "{mig}one") == b"v1"  # behind reactis's back
        owners = [n.port for n in c.nodes("master") if any(a <= slot <= b for a, b in n.ranges)]
        assert owners == [dst]
    _wait_ok(cluster)


def test_a_killed_master_is_a_typed_error_then_followed_after_failover(cluster):
    # Last in this file: it kills a master, and restarts it as a replica.
    slot = reactis.keyslot("fo")
    old = _owner(cluster.ports[0], slot)
    victim = next(s for s in cluster.servers if s.port == old)
    replica = next(p for p in cluster.ports if p != old and "master_port:%d\r" % old in
                   _text(raw_command(p, "INFO", "replication")))
    with reactis.Client(cluster.url) as c, reactis.Client(cluster.url, timeout=0.5) as quick:
        assert c.command("SET", "{fo}kept", "v") == "OK"
        assert quick.command("GET", "{fo}kept") == b"v"
        # Asynchronous replication: WAIT on the master's own link makes sure
        # the replica has the write before the master dies.
        with reactis.Client("redis://127.0.0.1:%d" % old) as node:
            assert node.command("SET", "{fo}kept", "v") == "OK"
            assert node.command("WAIT", 1, 2000) == 1
        try:
            victim.kill()  # SIGKILL
            # Nothing serves the slot until the replica is promoted: within
            # its 0.5 s the quick client gets a typed connection error.
            t0 = time.monotonic()
            with pytest.raises((reactis.ConnectionError, reactis.TimeoutError)) as ei:
                quick.command("GET", "{fo}kept")
            assert time.monotonic() - t0 < 2.0, ei.value
            # The replica takes over 0.5 s later, while a command is already
            # retrying: the client refreshes its map and follows (all within
            # its 5 s command timeout).
            said: List = []

            def takeover():
                time.sleep(0.5)
                said.append(raw_command(replica, "CLUSTER", "FAILOVER", "TAKEOVER"))

            th = threading.Thread(target=takeover)
            st0 = c.stats()
            th.start()
            t0 = time.monotonic()
            assert c.command("SET", "{fo}after", "w") == "OK"
            took = time.monotonic() - t0
            th.join()
            assert said == ["OK"]
            assert 0.4 <= took < 5.0, took
            sys.stderr.write("  a SET issued right after the kill succeeded after %.3f s "
                             "(promotion at 0.5 s)\n" % took)
            assert c.command("GET", "{fo}kept") == b"v"
            st = c.stats()
            assert st.refreshes > st0.refreshes and st.retries > st0.retries
            owners = [n.port for n in c.nodes("master")
                      if any(a <= slot <= b for a, b in n.ranges)]
            assert owners == [replica]
            assert raw_command(replica, "GET", "{fo}after") == b"w"
        finally:
            if victim.proc is None:
                victim.start(port=old)  # rejoins as the new master's replica
    _wait_ok(cluster)


def test_sigint_stops_a_blocked_cluster_command(cluster):
    # The GIL is released while the core waits, and poll() returns EINTR,
    # so the handler runs at once (the wait is not sliced here).
    code = textwrap.dedent("""
        import sys, reactis
        c = reactis.Client(sys.argv[1], timeout=30)
        c.ping()
        print("ready", flush=True)
        try:
            c.command("BLPOP", "{sig}never", 20)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(3)
        """)
    env = child_env()
    # Under tests/python/run_asan.sh the extension is instrumented, and a
    # child Python needs the ASan runtime that the runner preloaded here.
    with open("/proc/self/maps") as maps:
        asan = next((line.split()[-1] for line in maps if "/libasan.so" in line), None)
    if asan:
        env["LD_PRELOAD"] = asan
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    proc = subprocess.Popen([sys.executable, "-c", code, cluster.url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.poll() is not None else line
        time.sleep(0.3)
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in out and proc.returncode == 3, (out, err)
    assert elapsed < 0.5, elapsed
